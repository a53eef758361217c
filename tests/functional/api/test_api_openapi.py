"""The OpenAPI document is valid OpenAPI 3 and describes exactly the routes the server serves."""

from __future__ import annotations

import yaml
from openapi_spec_validator import validate

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
