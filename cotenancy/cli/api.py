"""``cotenancy api``: serve the open API (predictions, plans, events; hints, rules, drains,
critical VMs) over HTTP until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading

from oslo_config import cfg

from cotenancy.api.server import make_server
from cotenancy.cli.common import open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "api",
        help="serve the open API (read predictions, steer allocation) over HTTP",
        description="Serve the versioned JSON API under /v1 on loopback (default [api] listen). "
        "Set [api] auth_token to require a bearer token, [api] cert_file/key_file for HTTPS. "
        "The OpenAPI document is at /v1/openapi.yaml.",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on (default: [api] listen, 127.0.0.1:8780; port 0 picks a free one)",
    )
    parser.add_argument("--store", metavar="URL", help="history store URL (default: [store])")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    store = open_store(conf, args.store)
    try:
        server = make_server(conf, store, listen=args.listen)
    except Exception:
        store.close()
        raise

    def stop(_signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must not run in serve_forever's thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    print(f"cotenancy API serving on {server.url}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        store.close()
    return 0
