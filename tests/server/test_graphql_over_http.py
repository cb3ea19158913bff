"""The GraphQL-over-HTTP spec audit (the npm package graphql-http's `serverAudits`) against the live server.

Needs Node.js and npm: the package is installed at a pinned version into the data folder
(`<RUSHCART_DATA_DIR>/node`) on first use. Skipped, with the reason, where either is missing or
the install fails (no network and nothing installed yet).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.settings import SettingsError
from tests.stack import ROOT, Stack

GRAPHQL_HTTP = "graphql-http@1.23.1"
# graphql-http's entry module imports graphql-js (its peer dependency) even when only the audits run.
GRAPHQL_JS = "graphql@16.15.0"
AUDIT_SCRIPT = Path(__file__).with_name("graphql_http_audit.cjs")


def _node_folder() -> Path:
    return Path(os.environ.get("RUSHCART_DATA_DIR") or ROOT / ".data") / "node"


def _installed_version(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / "node_modules" / "graphql-http" / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def audit_tool() -> Path:
    """The folder holding node_modules/graphql-http at the pinned version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("graphql-http audit skipped: Node.js and npm are not installed (apt-get install nodejs npm)")
    folder = _node_folder()
    if _installed_version(folder) != GRAPHQL_HTTP.rpartition("@")[2]:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                # One retry: offline, npm would otherwise back off for minutes before giving up.
                [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--loglevel=error",
                 "--fetch-retries=1", GRAPHQL_HTTP, GRAPHQL_JS],
                check=True, capture_output=True, text=True, timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = (getattr(exc, "stderr", None) or "").strip().splitlines()[-3:]
            pytest.skip(f"graphql-http audit skipped: `npm install {GRAPHQL_HTTP}` failed: {' | '.join(output)}")
    return folder


def run_audits(folder: Path, url: str) -> list[dict[str, str | None]]:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, str(AUDIT_SCRIPT), str(folder), url], capture_output=True, text=True, timeout=300)
    assert 0 == done.returncode, done.stderr
    return list(json.loads(done.stdout))


def test_graphql_over_http_audit_passes_without_errors_or_warnings(audit_tool: Path, stack: Stack) -> None:
    """Every audit of the GraphQL-over-HTTP spec's server suite passes: no error, no warning."""
    results = run_audits(audit_tool, stack.graphql_url)
    counts = Counter(str(result["status"]) for result in results)
    failures = [f"{r['status']}: {r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] != "ok"]
    print(f"graphql-http audit: {counts['ok']} ok, {counts['warn']} warnings, {counts['error']} errors, "
          f"{counts['notice']} notices")
    assert results, "the audit ran no audit"
    assert ([], 0, 0) == ([f for f in failures if not f.startswith("notice")], counts["warn"], counts["error"]), \
        "\n".join(failures)


# The rules the audit samples, stated for this server's own documents.

RESPONSE_JSON = "application/graphql-response+json"


async def post(stack: Stack, body: dict[str, Any], accept: str | None, **headers: str) -> httpx.Response:
    if accept is not None:
        headers["Accept"] = accept
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(stack.graphql_url, json=body, headers=headers)


@pytest.mark.parametrize(("accept", "media_type"), [
    (RESPONSE_JSON, RESPONSE_JSON),
    (f"{RESPONSE_JSON}, application/json;q=0.9", RESPONSE_JSON),
    (f"application/json, {RESPONSE_JSON}", "application/json"),
    (f"application/json;q=0.5, {RESPONSE_JSON};q=0.8", RESPONSE_JSON),
    (f"{RESPONSE_JSON};q=0, */*", "application/json"),
    ("application/json", "application/json"),
    ("*/*", "application/json"),
    (None, "application/json"),
    ("text/html", "application/json"),
])
async def test_the_answer_has_the_media_type_the_client_prefers(stack: Stack, accept: str | None,
                                                                media_type: str) -> None:
    """graphql-response+json when the client prefers it, application/json otherwise (also with no Accept)."""
    response = await post(stack, {"query": "{ products(first: 1) { edges { node { id } } } }"}, accept)
    assert (200, media_type) == (response.status_code, response.headers["content-type"].split(";")[0])
    assert "errors" not in response.json()


REQUEST_ERRORS = [
    pytest.param({"query": "{ products(first: 1) { edges { node { id } } }"}, id="does not parse"),
    pytest.param({"query": "{ noSuchField }"}, id="does not validate"),
    pytest.param({"query": "query($id: ID!) { product(id: $id) { id } }", "variables": {"id": None}},
                 id="variables do not coerce"),
    pytest.param({"query": "query($id: ID!) { product(id: $id) { id } }"}, id="variable missing"),
    pytest.param({"query": "{ products(first: 1) { edges { " + "cursor " * 2100 + "} } }"}, id="guard: tokens"),
]


@pytest.mark.parametrize("body", REQUEST_ERRORS)
async def test_request_errors_are_400_without_data_for_graphql_response_json(stack: Stack,
                                                                             body: dict[str, Any]) -> None:
    """A document that does not parse or validate, or variables that do not coerce: 400 and no `data`."""
    response = await post(stack, body, RESPONSE_JSON)
    answer = response.json()
    assert (400, RESPONSE_JSON) == (response.status_code, response.headers["content-type"])
    assert "data" not in answer and answer["errors"][0]["message"]


@pytest.mark.parametrize("body", REQUEST_ERRORS)
async def test_request_errors_stay_200_with_null_data_for_application_json(stack: Stack,
                                                                           body: dict[str, Any]) -> None:
    """For application/json clients nothing changes: 200, `data: null` and the errors."""
    response = await post(stack, body, "application/json")
    answer = response.json()
    assert (200, None) == (response.status_code, answer["data"])
    assert answer["errors"][0]["message"]


async def test_executed_operations_are_200_whatever_their_errors(stack: Stack) -> None:
    """An operation that ran is a 200 in either media type: expected failures live in the payload."""
    body = {"query": 'mutation { login(email: "nobody@example.com", password: "wrong password") '
                     "{ token errors { code } } }"}
    for accept in (RESPONSE_JSON, "application/json"):
        response = await post(stack, body, accept)
        assert (200, {"login": {"token": None, "errors": [{"code": "INVALID_CREDENTIALS"}]}}) == (
            response.status_code, response.json()["data"])


async def test_a_mutation_over_get_is_405_with_allow_post(stack: Stack) -> None:
    """GET may only read: a mutation sent by GET is refused with 405 and `Allow: POST`, in JSON."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(stack.graphql_url, params={"query": "mutation { startSession { sessionId } }"},
                                    headers={"Accept": RESPONSE_JSON})
        query = await client.get(stack.graphql_url, params={"query": "{ products(first: 1) { edges { cursor } } }"})
    assert (405, "POST", RESPONSE_JSON) == (response.status_code, response.headers["allow"],
                                            response.headers["content-type"])
    assert "POST" in response.json()["errors"][0]["message"]
    assert (200, "application/json") == (query.status_code, query.headers["content-type"])


async def test_an_unknown_operation_name_is_a_json_400(stack: Stack) -> None:
    """Strawberry's own refusals (here: no operation of that name) come back as JSON, not text."""
    response = await post(stack, {"query": "query A { me { id } }", "operationName": "B"}, None)
    assert (400, "application/json") == (response.status_code, response.headers["content-type"])
    assert '"B"' in response.json()["errors"][0]["message"]


def test_cors_is_off_unless_origins_are_configured() -> None:
    """No CORS_ORIGINS: no CORS header; with it, the listed origins (only) may call the API from a page."""
    from server.settings import Settings

    assert () == Settings.from_env({}).cors_origins
    settings = Settings.from_env({"CORS_ORIGINS": " https://shop.example, http://localhost:5173 ,"})
    assert ("https://shop.example", "http://localhost:5173") == settings.cors_origins
    for bad in ("shop.example", "https://shop.example/", "ftp://shop.example"):
        with pytest.raises(SettingsError, match="CORS_ORIGINS"):
            Settings.from_env({"CORS_ORIGINS": bad})


async def preflight(settings_env: dict[str, str], origin: str) -> httpx.Response:
    from server.app import create_app
    from server.settings import Settings

    settings = Settings.from_env({"DATABASE_URL": "postgresql://unused/x", "REDIS_URL": "redis://unused",
                                  **settings_env})
    # Without the lifespan: a preflight is answered by the middleware alone.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example") as client:
        return await client.options("/graphql", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})


async def test_cors_preflight_follows_cors_origins() -> None:
    """A listed origin's preflight is allowed with credentials; another origin, or none configured, is not."""
    allowed = await preflight({"CORS_ORIGINS": "https://shop.example"}, "https://shop.example")
    other = await preflight({"CORS_ORIGINS": "https://shop.example"}, "https://evil.example")
    off = await preflight({}, "https://shop.example")
    assert (200, "https://shop.example", "true") == (allowed.status_code,
                                                     allowed.headers["access-control-allow-origin"],
                                                     allowed.headers["access-control-allow-credentials"])
    assert 400 == other.status_code and "access-control-allow-origin" not in other.headers
    assert 405 == off.status_code and "access-control-allow-origin" not in off.headers
