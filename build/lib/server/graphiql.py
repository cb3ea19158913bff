"""GraphiQL served by the server itself: the page and its assets, nothing fetched from elsewhere.

The assets are copied unchanged from their npm packages into `server/static/graphiql/` (versions,
sources and licences in its README); the page pins each with its Subresource Integrity hash.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS", "ASSETS_ROUTE", "PAGE", "assets_mount", "render_page"]

ASSETS = Path(__file__).with_name("static") / "graphiql"
PAGE = Path(__file__).with_name("graphiql.html")
ASSETS_ROUTE = "graphiql-assets"


def assets_mount() -> Mount:
    return Mount("/graphiql", StaticFiles(directory=ASSETS), name=ASSETS_ROUTE)


@cache
def _template() -> str:
    return PAGE.read_text(encoding="utf-8")


def render_page(request: Request) -> Response:
    """The GraphiQL page for the endpoint `request` was sent to, its assets under /graphiql."""
    # Paths, not absolute URLs: behind a proxy the scheme and host the server sees may not be the client's.
    assets = request.url_for(ASSETS_ROUTE, path="/").path.rstrip("/")
    page = _template().replace("{{assets}}", html.escape(assets)).replace("{{endpoint}}", html.escape(request.url.path))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
