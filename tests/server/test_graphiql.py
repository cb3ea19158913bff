"""GraphiQL is served by the API itself: the page, and every script and stylesheet it loads."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

from server.graphiql import ASSETS, PAGE
from tests.stack import Stack

REFERENCE = re.compile(r'(?:src|href)="([^"]+)"')


async def test_graphiql_page_loads_everything_from_this_server(stack: Stack) -> None:
    """A browser opening /graphql gets GraphiQL, and each file the page references is served here."""
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        references = [url for url in REFERENCE.findall(page.text) if not url.startswith("data:")]
        answers = {url: (await client.get(url)).status_code for url in references}
        start = await client.get("/graphiql/start.js")
    assert (200, "text/html") == (page.status_code, page.headers["content-type"].split(";")[0])
    assert "graphiql" in page.text.lower()
    assert len(references) == 7 and all(url.startswith("/graphiql/") for url in references), references
    assert {url: 200 for url in references} == answers
    # Subscriptions from GraphiQL carry the headers editor's Authorization in connection_init.
    assert "wsConnectionParams" in start.text and "graphiql:headers" in start.text


def test_vendored_assets_are_the_published_files() -> None:
    """Each vendored file matches the Subresource Integrity hash the page pins it with."""
    pinned = re.findall(r'(?:src|href)="\{\{assets\}\}/([^"]+)"\s+integrity="sha384-([^"]+)"', PAGE.read_text())
    actual = {name: base64.b64encode(hashlib.sha384((ASSETS / name).read_bytes()).digest()).decode()
              for name, _ in pinned}
    assert 6 == len(pinned)
    assert dict(pinned) == actual
    assert (ASSETS / "LICENSE.react.txt").exists() and (ASSETS / "LICENSE.graphiql.txt").exists()


async def test_graphiql_assets_are_not_served_when_graphiql_is_off() -> None:
    """With GRAPHIQL off, neither the page nor its assets are routed."""
    from server.app import create_app
    from server.settings import Settings

    settings = Settings.from_env({"GRAPHIQL": "0", "DATABASE_URL": "postgresql://unused/x",
                                  "REDIS_URL": "redis://unused"})
    # Without the lifespan: nothing below needs PostgreSQL or Redis.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://rushcart") as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        asset = await client.get("/graphiql/start.js")
    assert 400 == page.status_code and "query" in page.json()["errors"][0]["message"]
    assert 404 == asset.status_code
