"""The OpenAPI document is valid OpenAPI 3, describes exactly the routes the server serves, every
status each route can answer, and the bodies it really sends (checked with the 3.0 schema rules)."""

from __future__ import annotations

import re

import yaml
from api_helpers import NOW, T0, Answer
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

JSON = {"Content-Type": "application/json"}

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def documented_routes(document: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_document_is_served_and_valid(client) -> None:
    answer = client.get("/v1/openapi.yaml")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/yaml")
    document = yaml.safe_load(answer.raw)
    validate(document)
    assert document["openapi"].startswith("3.")


def test_every_served_route_is_documented_and_every_documented_route_is_served(client) -> None:
    document = yaml.safe_load(client.get("/v1/openapi.yaml").raw)
    served = {(r.method, r.template) for r in client.server.api.routes}
    documented = documented_routes(document)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"

    # and the server really answers each documented route (not "no such resource", not 405)
    for method, template in sorted(documented):
        path = template.replace("{", "").replace("}", "") if "{" in template else template
        answer = client.call(method, path, body={} if method == "POST" else None)
        assert answer.status != 405, (method, template)
        if answer.status == 404:
            assert "field" in answer.error, f"{method} {template} is not routed"


def test_documented_query_parameters_are_the_accepted_ones(client) -> None:
    document = yaml.safe_load(client.get("/v1/openapi.yaml").raw)
    parameters = document["components"]["parameters"]
    for route in client.server.api.routes:
        operation = document["paths"][route.template][route.method.lower()]
        declared = set()
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                parameter = parameters[parameter["$ref"].rsplit("/", 1)[-1]]
            if parameter["in"] == "query":
                declared.add(parameter["name"])
        assert declared == set(route.query), f"{route.method} {route.template}"


# real answers against the document ------------------------------------------------------------

GHOST = "ghost-id"
#: a successful call of every route: (method, template, path, body)
EXAMPLES = [
    ("GET", "/v1", "/v1", None),
    ("GET", "/v1/openapi.yaml", "/v1/openapi.yaml", None),
    ("GET", "/v1/hosts", "/v1/hosts", None),
    ("GET", "/v1/hosts/{host_id}", "/v1/hosts/h1", None),
    ("GET", "/v1/vms", "/v1/vms?host_id=h1", None),
    ("GET", "/v1/vms/{vm_id}", "/v1/vms/web-1", None),  # no limit: allocation.limit is null
    ("GET", "/v1/plans", "/v1/plans", None),
    ("GET", "/v1/plans/{plan_id}", "/v1/plans/plan-old", None),
    ("GET", "/v1/events", f"/v1/events?since={T0}", None),
    ("GET", "/v1/predictions/pairs", "/v1/predictions/pairs", None),
    ("GET", "/v1/predictions/forecast/{vm_id}", "/v1/predictions/forecast/web-1?horizon=2", None),
]
BODIES = {
    "hints": {"vm_ids": ["web-1"], "start": NOW, "end": NOW + 3600, "demand": {"cpu": 2.0}},
    "rules": {"type": "anti_affinity", "vm_ids": ["web-1", "web-2"], "name": "apart"},
    "drains": {"host_id": "h2", "reason": "BIOS update", "expires_at": NOW + 3600},
    "critical": {"vm_id": "db-1", "created_by": "jdoe"},
}


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def check_answer(document: dict, method: str, template: str, answer: Answer) -> None:
    """The status is documented for this operation and the body has the documented media type
    and, for JSON, validates against the documented schema (OpenAPI 3.0 rules)."""
    responses = document["paths"][template][method.lower()]["responses"]
    code = str(answer.status)
    assert code in responses, f"{method} {template} answered undocumented {code}: {answer.raw[:200]!r}"
    pointer = ["paths", template, method.lower(), "responses", code]
    response = responses[code]
    if "$ref" in response:
        pointer = [_unescape(s) for s in response["$ref"].removeprefix("#/").split("/")]
        response = document
        for segment in pointer:
            response = response[segment]
    content = response.get("content", {})
    if not content:
        assert answer.raw == b"", f"{method} {template} {code} has an undocumented body"
        return
    media = answer.headers["content-type"].split(";")[0].strip()
    assert media in content, f"{method} {template} {code} answered undocumented {media}"
    if media != "application/json":
        return
    pointer += ["content", media, "schema"]
    # the whole document as the root schema, so the "#/components/..." references inside resolve
    schema = document | {"$ref": "#/" + "/".join(_escape(s) for s in pointer)}
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in OAS30Validator(schema).iter_errors(answer.json)
    ]
    assert errors == [], f"{method} {template} {code}"


def test_real_answers_of_every_route_validate_against_the_documented_schemas(client) -> None:
    document = yaml.safe_load(client.get("/v1/openapi.yaml").raw)
    exercised = set()
    for method, template, path, body in EXAMPLES:
        answer = client.call(method, path, body=body)
        assert answer.status == 200, (path, answer.raw[:200])
        check_answer(document, method, template, answer)
        exercised.add((method, template))
    for collection, body in BODIES.items():
        many, one = f"/v1/{collection}", f"/v1/{collection}/{{request_id}}"
        created = client.post(many, body)
        assert created.status == 201, created.raw
        check_answer(document, "POST", many, created)
        location = created.headers["location"]
        for method, template, path in [
            ("GET", many, many),
            ("GET", many, f"{many}?all=true"),
            ("GET", one, location),
            ("DELETE", one, location),
            ("GET", one, location),  # 404 once withdrawn
            ("DELETE", one, location),
        ]:
            check_answer(document, method, template, client.call(method, path))
            exercised.add((method, template))
        exercised.add(("POST", many))
    assert exercised == {(r.method, r.template) for r in client.server.api.routes}


def test_duplicates_and_unknown_ids_answer_as_documented(client) -> None:
    document = yaml.safe_load(client.get("/v1/openapi.yaml").raw)
    for collection in ("drains", "critical"):
        assert client.post(f"/v1/{collection}", BODIES[collection]).status == 201
        duplicate = client.post(f"/v1/{collection}", BODIES[collection])
        assert duplicate.status == 409
        check_answer(document, "POST", f"/v1/{collection}", duplicate)
    for method, template in sorted({(r.method, r.template) for r in client.server.api.routes}):
        if "{" in template:
            path = re.sub(r"\{\w+\}", GHOST, template)
            answer = client.call(method, path)
            assert answer.status == 404, (method, path)
            check_answer(document, method, template, answer)


def test_every_status_a_route_can_answer_is_documented(start_server) -> None:
    """Each way a request can be refused or fail, tried on every route."""
    client = start_server()
    document = yaml.safe_load(client.get("/v1/openapi.yaml").raw)
    failing = start_server()
    for route in failing.server.api.routes:
        route.handler = _explode
    guarded = start_server(auth_token="a-token-long-enough-to-be-real")  # overrides stay: start last
    for route in client.server.api.routes:
        method, template = route.method, route.template
        path = re.sub(r"\{\w+\}", GHOST, template)
        body = {} if method == "POST" else None
        answers = {
            "unknown query parameter": client.call(method, f"{path}?no_such_parameter=1", body=body),
            "no bearer token": guarded.call(method, path, body=body, headers={"Authorization": ""}),
            "internal failure": failing.call(method, path, body=body),
        }
        if method == "POST":
            answers |= {
                "invalid body": client.call(method, path, raw=b"{", headers=JSON),
                "not JSON": client.call(method, path, raw=b"{}", headers={"Content-Type": "text/plain"}),
                "chunked": client.call(method, path, headers=JSON | {"Transfer-Encoding": "chunked"}),
                "too large": client.call(method, path, raw=b" " * 70_000, headers=JSON),
            }
        expected = {
            "unknown query parameter": 400,
            "no bearer token": 401,
            "internal failure": 500,
            "invalid body": 400,
            "not JSON": 415,
            "chunked": 411,
            "too large": 413,
        }
        for case, answer in answers.items():
            assert answer.status == expected[case], (method, template, case)
            check_answer(document, method, template, answer)


def _explode(call: object) -> None:
    raise RuntimeError("a fault inside a handler")


def test_idempotency_key_answers_are_documented(client) -> None:
    """A replayed answer, a key reused with another body (422) and a malformed key (400), on
    every POST route, and each POST declares the header."""
    document = yaml.safe_load(client.get("/v1/openapi.yaml").raw)
    parameters = document["components"]["parameters"]
    for collection, body in BODIES.items():
        path = f"/v1/{collection}"
        operation = document["paths"][path]["post"]
        declared = [parameters[p["$ref"].rsplit("/", 1)[-1]] for p in operation.get("parameters", [])]
        assert [(p["name"], p["in"]) for p in declared] == [("Idempotency-Key", "header")], path
        key = {"Idempotency-Key": f"doc-{collection}"}
        first = client.post(path, body, headers=key)
        replayed = client.post(path, body, headers=key)
        assert replayed.status == 201 and replayed.headers["idempotent-replayed"] == "true"
        assert "Idempotent-Replayed" in document["components"]["responses"]["Created"]["headers"]
        reused = client.post(path, body | {"created_by": "someone else"}, headers=key)
        malformed = client.post(path, body, headers={"Idempotency-Key": ""})
        assert (reused.status, malformed.status) == (422, 400)
        for answer in (first, replayed, reused, malformed):
            check_answer(document, "POST", path, answer)
