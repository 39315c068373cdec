"""`GET /`: the live web view (issue 15), a page and its assets served from the package's static folder, never from a client's path.

The files served are a fixed manifest read once at import (name → bytes, content type, ETag): what a
client sends only ever looks a name up in it, so `..`, absolute paths and encoded slashes find nothing
(the API's JSON 404). Every response carries a strict Content-Security-Policy (the page runs only its
own scripts and styles and talks only to this server) and is refused for a Host that is not this server,
as the API is. The page and its assets are open on loopback (or with `public_read`), else the token is
needed: the same rule as `/metrics`.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.http.api import Api, HttpError, error_response

# Content type per file suffix; a file of any other suffix is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "",  # set below, once the manifest is read
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on every load (the ETag answers 304 when unchanged): a daemon upgraded serves its new page at once.
    "Cache-Control": "no-cache",
}
INDEX = "index.html"
CHART_LIBRARY = "vendor/lightweight-charts.standalone.production.js"
# What the page cannot work without (index.html names each, and the library's licence travels with it).
REQUIRED = (INDEX, "app.js", "app.css", "favicon.svg", CHART_LIBRARY, "vendor/lightweight-charts.LICENSE.txt")


class MissingAsset(RuntimeError):
    """A file the web view needs is not in the package's static folder (a broken install or wheel)."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the web view: its bytes, content type and ETag."""

    body: bytes
    content_type: str
    etag: str


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found |= _walk(entry, f"{name}/")
            continue
        suffix = "." + entry.name.rpartition(".")[2]
        if suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            found[name] = Asset(body, CONTENT_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def load_manifest(folder: Traversable) -> dict[str, Asset]:
    """Every servable file under `folder` by its relative name; MissingAsset naming each required file that is absent."""
    found = _walk(folder) if folder.is_dir() else {}
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        raise MissingAsset(f"the web view's static files are incomplete, missing from {folder}: {', '.join(missing)} (reinstall the package)")
    return found


# Read once: the package's static folder, name (relative, "/"-separated) to its file.
MANIFEST: dict[str, Asset] = load_manifest(files("bot.http") / "static")


def _attribution_style_hashes(library: bytes) -> list[str]:
    """CSP hashes of the one <style> the chart library writes: its TradingView attribution logo's rules (the licence notice asks for the credit).

    Read from the vendored file itself, so an update that changes the rules changes the hash with them;
    nothing else inline is allowed.
    """
    found = re.findall(rb'createElement\("style"\),this\.\w+\.innerText="([^"\\]*)"', library)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(text).digest()).decode()}'" for text in found]


# Nothing but this server's own scripts, styles, images and API (and the attribution's rules); no frames, forms elsewhere or plugins.
CSP = "; ".join([
    "default-src 'self'",
    " ".join(["style-src 'self'", *_attribution_style_hashes(MANIFEST[CHART_LIBRARY].body)]),
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS["Content-Security-Policy"] = CSP


def _served(request: Request, asset: Asset) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if asset.etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def page_routes(api: Api) -> list[Route]:
    """`GET /` (the page) and `GET /static/{name}` (its assets, only the manifest's); HEAD too. Open on loopback or with public_read, else the token."""

    def refused(request: Request) -> Response | None:
        try:
            api.check_open_read(request)
        except HttpError as exc:
            return error_response(exc.code, exc.message)
        return None

    def not_found(request: Request) -> Response:
        return error_response("unknown_command", f"no route {request.method} {request.url.path}")

    async def index(request: Request) -> Response:
        return refused(request) or _served(request, MANIFEST[INDEX])

    async def static(request: Request) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        name = request.path_params["name"]
        asset = MANIFEST.get(name)
        # The name exactly as sent: an escaped character (an encoded slash or dot) names no file, even when it decodes to one.
        if asset is None or name == INDEX or request.scope.get("raw_path", b"").split(b"?", 1)[0] != f"/static/{name}".encode():
            return not_found(request)
        return _served(request, asset)

    return [Route("/", index, methods=["GET"]), Route("/static/{name:path}", static, methods=["GET"])]
