#!/usr/bin/env bash
# PostgreSQL for the history-store tests: Debian's server, a cluster on 127.0.0.1, a role and a
# database owned by it, and the SQLAlchemy URL in .cache/postgres.url for the tests to read.
# Idempotent: a re-run starts a stopped cluster and keeps the existing role and password.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
URL_FILE="$ROOT/.cache/postgres.url"
ROLE="cotenancy"
DATABASE="cotenancy_test"

if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing postgresql from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

# First existing cluster, or a new one for the newest installed server version.
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters -h | head -n 1 || true) || true
if [[ -z "${VERSION:-}" ]]; then
  VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  CLUSTER="main"
  pg_createcluster "$VERSION" "$CLUSTER" -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters -h "$VERSION" "$CLUSTER")
fi

if [[ "$STATUS" != online* ]]; then
  echo "starting postgresql cluster $VERSION/$CLUSTER on port $PORT"
  # listen on loopback only, whatever the cluster's config says
  pg_ctlcluster "$VERSION" "$CLUSTER" start -o "-c listen_addresses=127.0.0.1"
fi

psql_admin() {
  runuser -u postgres -- psql --port "$PORT" --no-psqlrc --quiet --tuples-only --no-align \
    --set ON_ERROR_STOP=1 "$@"
}

for _ in $(seq 1 30); do
  if psql_admin -c "select 1" >/dev/null 2>&1; then break; fi
  sleep 1
done
psql_admin -c "select 1" >/dev/null

mkdir -p "$ROOT/.cache"
PASSWORD=""
if [[ -f "$URL_FILE" ]]; then
  PASSWORD="$(sed -n 's#^postgresql+psycopg://[^:]*:\([^@]*\)@.*#\1#p' "$URL_FILE")"
fi
if [[ -z "$PASSWORD" ]]; then
  PASSWORD="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
fi

if [[ "$(psql_admin -c "select 1 from pg_roles where rolname = '$ROLE'")" != "1" ]]; then
  psql_admin -c "create role $ROLE login"
fi
psql_admin -c "alter role $ROLE with login password '$PASSWORD'" >/dev/null
if [[ "$(psql_admin -c "select 1 from pg_database where datname = '$DATABASE'")" != "1" ]]; then
  psql_admin -c "create database $DATABASE owner $ROLE"
fi

umask 077
printf 'postgresql+psycopg://%s:%s@127.0.0.1:%s/%s\n' "$ROLE" "$PASSWORD" "$PORT" "$DATABASE" >"$URL_FILE.tmp"
mv "$URL_FILE.tmp" "$URL_FILE"
echo "postgresql ready ($VERSION/$CLUSTER, port $PORT); URL in .cache/postgres.url"
