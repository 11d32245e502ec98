"""``/docs``: Swagger UI served by the gateway itself, with no CDN and no inline script.

FastAPI's own page loads Swagger UI from a public CDN and its favicon from
another host: a gateway on a closed network shows a blank page, and a
browser that can reach them runs script the operator never vetted. The
assets here come from the ``fastapi-offline`` package (Swagger UI 5, which
reads OpenAPI 3.1), are read once when the app is built, and are served
under a Content-Security-Policy that allows nothing from elsewhere.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from gateway.errors import NotFound

DOCS = "/docs"
ASSETS = "/docs/assets/"
# Swagger UI sets inline styles as it renders; scripts come only from here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_PACKAGED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
# In a file of its own rather than inline, so the policy needs no 'unsafe-inline' script.
_START = b"""\
"use strict";
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapi,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
});
"""


def _page(openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>weightgate API</title>
<link rel="icon" href="{ASSETS}favicon.png">
<link rel="stylesheet" href="{ASSETS}swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi_url}"></div>
<script src="{ASSETS}swagger-ui-bundle.js"></script>
<script src="{ASSETS}start.js"></script>
</body>
</html>
"""


def _assets() -> dict[str, tuple[bytes, str]]:
    static = resources.files("fastapi_offline").joinpath("static")
    found = {name: (static.joinpath(name).read_bytes(), kind) for name, kind in _PACKAGED.items()}
    found["start.js"] = (_START, "text/javascript")
    return found


def install(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Serve ``/docs`` and its assets; build the app with ``docs_url=None, redoc_url=None``."""
    assets = _assets()
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
    page = _page(openapi_url)

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={**headers, "Cache-Control": "no-cache"})

    @app.get(ASSETS + "{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in assets:
            raise NotFound(f"no documentation asset {name!r}")
        body, media_type = assets[name]
        return Response(
            body,
            media_type=media_type,
            headers={**headers, "Cache-Control": "public, max-age=86400"},
        )
