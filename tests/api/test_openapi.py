"""/api/openapi.json: exactly the routes the gateway serves, a valid OpenAPI document, and the
answers fit it (every test gateway checks each answer it gives; see openapi_check.py)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeGateway
from ipunkt.api.openapi import document
from ipunkt.api.settings import ApiSettings
from ipunkt.app import create_app
from ipunkt.config import parse_settings
from ipunkt.plugins import PluginHost
from openapi_check import OpenApiCheck
from openapi_spec_validator import validate

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def shape(path: str) -> str:
    """A path with its parameters unnamed, so that {id} and {messageId} compare equal."""
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), shape(path)) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


def served(tmp_path: Path) -> set[tuple[str, str]]:
    settings = parse_settings({"organisation": {"number": "910077473"},
                               "store": {"path": str(tmp_path / "store")}})
    app = create_app(settings, PluginHost(), {})
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD to every GET; not an operation of ours
            continue
        routes.add((route.method, shape(route.resource.canonical)))  # type: ignore[union-attr]
    return routes


def test_every_route_is_documented_and_every_documented_operation_is_served(
    tmp_path: Path,
) -> None:
    doc = document(basic_auth=False)
    routes = served(tmp_path)
    assert routes - documented(doc) == set(), "served but not documented"
    assert documented(doc) - routes == set(), "documented but not served"
    assert ("POST", "/api/messages/out/{}") in routes  # the shapes are compared, not names


@pytest.mark.parametrize("basic_auth", [False, True])
def test_the_document_is_valid_openapi(basic_auth: bool) -> None:
    doc = document(basic_auth=basic_auth)
    validate(doc)
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["basicAuth"] == {
        "type": "http", "scheme": "basic", "description": doc["components"][
            "securitySchemes"]["basicAuth"]["description"]}
    assert ("security" in doc) is basic_auth
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"timestamp", "status", "error", "path"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            if path.startswith("/manage"):
                assert operation["security"] == []
            else:
                assert ("401" in operation["responses"]) is basic_auth, (method, path)


async def test_the_api_serves_it_behind_its_authentication(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(api=ApiSettings(username="user", password="secret"))  # type: ignore[arg-type]
    refused = await gw.client.get("/api/openapi.json")
    assert refused.status == 401
    token = base64.b64encode(b"user:secret").decode()
    response = await gw.client.get("/api/openapi.json",
                                   headers={"Authorization": f"Basic {token}"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    served_doc = await response.json()
    assert served_doc == document(basic_auth=True)
    assert gw.openapi.checked == 2 and gw.openapi.problems == []


def test_an_answer_that_breaks_the_document_is_caught() -> None:
    check = OpenApiCheck(document(basic_auth=False))
    good = b'{\n  "capabilities" : [ ]\n}'
    assert check.check("GET", "/api/capabilities/910075918", {}, 200, "application/json", {},
                       good) == []
    assert check.check("GET", "/api/capabilities/910075918", {}, 200, "application/json", {},
                       b'{"capabilities": [{"process": "p"}]}')  # serviceIdentifier missing
    assert check.check("GET", "/api/statuses/peek", {}, 418, "application/json", {},
                       b'{"status": "teapot"}')  # not the error body
    assert check.check_streamed("GET", "/api/messages/in/pop/{messageId}", 200,
                                "text/plain")
    assert len(check.problems) == 3


async def test_replayed_answers_were_checked(make_gateway: MakeGateway, specs_dir: Path) -> None:
    from restdocs import load

    examples = load(specs_dir)
    gw = await make_gateway()
    create = examples[("Create message", "Example 1 - Creating an arkivmelding message")]
    body = create.request.json()  # type: ignore[union-attr]
    for scope in body["standardBusinessDocumentHeader"]["businessScope"]["scope"]:
        scope.pop("scopeInformation", None)  # the documented lifetime has long passed
    response = await gw.client.post("/api/messages/out", json=body)
    assert response.status == 200
    missing = await gw.client.get("/api/messages/out/00000000-0000-4000-8000-000000000000")
    assert missing.status == 404
    assert gw.openapi.checked == 2 and gw.openapi.problems == []
