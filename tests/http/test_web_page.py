"""`GET /` and `/static/{name}` over real HTTP: only the package's manifest is served, with its security headers, behind the API's host check.

A client's path only ever looks a name up in the manifest: `..`, absolute paths, encoded slashes or dots
and anything else get the API's JSON 404. The page is open on loopback (as /metrics), the token needed
elsewhere unless public_read.
"""
from __future__ import annotations

import http.client
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path, PurePosixPath

import pytest

from bot.http.page import CHART_LIBRARY, CSP, INDEX, MANIFEST, REQUIRED, MissingAsset, load_manifest
from tests.daemon.process import DaemonProcess, short_tmp, write_daemon_config
from tests.http.test_api import BEARER, TOKEN, TOKEN_ENV, TOKEN_REQUIRED, Served, served

__all__ = ["served", "short_tmp"]

STATIC = Path(__file__).resolve().parents[2] / "bot" / "http" / "static"


@dataclass(frozen=True, slots=True)
class Raw:
    """A response of any content type: its status, body and headers."""

    status: int
    body: bytes
    headers: http.client.HTTPMessage

    def getheader(self, name: str) -> str | None:
        """The header's value (None when absent)."""
        return self.headers.get(name)


def _raw(served: Served, method: str, path: str, headers: dict[str, str] | None = None) -> Raw:
    """One request as `path` is written (nothing normalised), on a fresh connection."""
    connection = served.connection()
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Raw(response.status, response.read(), response.headers)
    finally:
        connection.close()


def _security_headers(response: Raw) -> None:
    assert response.getheader("Content-Security-Policy") == CSP
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "no-referrer"
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("Cache-Control") == "no-cache"


def test_the_manifest_is_the_static_folder() -> None:
    on_disk = {str(path.relative_to(STATIC)) for path in STATIC.rglob("*") if path.is_file() and path.suffix in (".html", ".js", ".css", ".svg", ".txt", ".md")}
    assert set(MANIFEST) == on_disk
    assert {INDEX, "app.js", "app.css", "vendor/lightweight-charts.standalone.production.js", "vendor/lightweight-charts.LICENSE.txt"} <= set(MANIFEST)


def test_the_csp_allows_nothing_inline_but_the_chart_attribution_style() -> None:
    directives = dict(part.split(" ", 1) for part in CSP.split("; "))
    assert directives["default-src"] == "'self'"
    assert re.fullmatch(r"'self' 'sha256-[A-Za-z0-9+/]{43}='", directives["style-src"]), directives["style-src"]
    assert "unsafe" not in CSP and "script-src" not in CSP


def test_the_page_is_served_on_loopback_without_the_token_with_its_security_headers(served: Served) -> None:
    response = _raw(served, "GET", "/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.body == MANIFEST[INDEX].body
    _security_headers(response)
    assert response.getheader("ETag") == MANIFEST[INDEX].etag


@pytest.mark.parametrize("name", sorted(name for name in MANIFEST if name != INDEX))
def test_every_asset_is_served_as_the_package_holds_it(served: Served, name: str) -> None:
    response = _raw(served, "GET", f"/static/{name}")
    assert response.status == 200
    assert response.body == (STATIC / name).read_bytes()
    assert response.getheader("Content-Type") == MANIFEST[name].content_type
    _security_headers(response)


def test_head_answers_the_headers_without_a_body(served: Served) -> None:
    response = _raw(served, "HEAD", "/static/app.js")
    assert response.status == 200
    assert response.body == b""
    assert response.getheader("Content-Length") == str(len(MANIFEST["app.js"].body))
    _security_headers(response)


def test_an_unchanged_asset_is_304_by_its_etag(served: Served) -> None:
    etag = MANIFEST["app.css"].etag
    response = _raw(served, "GET", "/static/app.css", {"If-None-Match": etag})
    assert (response.status, response.body, response.getheader("ETag")) == (304, b"", etag)
    assert _raw(served, "GET", "/static/app.css", {"If-None-Match": '"other"'}).status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/../pyproject.toml",
        "/static/../api.py",
        "/static/%2e%2e/api.py",
        "/static/..%2fapi.py",
        "/static/vendor%2Flightweight-charts.standalone.production.js",
        "/static/%61pp.js",
        "/static//etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/static/page.py",
        "/static/vendor",
        "/static/vendor/",
        "/static/",
        "/static/index.html",
        "/static/APP.JS",
        "/static/app.js/",
        "/index.html",
        "/app.js",
    ],
)
def test_a_name_outside_the_manifest_is_a_json_404(served: Served, path: str) -> None:
    reply = served.get(path, auth=None)
    assert (reply.status, reply.error[0]) == (404, "unknown_command"), reply


def test_another_host_is_403_forbidden_host(served: Served) -> None:
    for path in ("/", "/static/app.js"):
        reply = served.get(path, auth=None, headers={"Host": f"rebind.example:{served.port}"})
        assert (reply.status, reply.error[0]) == (403, "forbidden_host"), reply


def test_a_post_to_the_page_is_a_json_405(served: Served) -> None:
    reply = served.post("/", auth=None)
    # Starlette names the methods from a set: their order varies.
    assert reply.status == 405 and set(reply.headers["allow"].split(", ")) == {"GET", "HEAD"}, reply


@pytest.fixture(scope="module")
def remote() -> Iterator[Served]:
    """Listening on every address (allow_remote, allowed_hosts naming 127.0.0.1), no public_read: the page needs the token."""
    folder = Path(tempfile.mkdtemp(prefix="webr-", dir="/tmp"))
    http = {"listen": "0.0.0.0:0", "allow_remote": True, "allowed_hosts": ["127.0.0.1"], "token_env": TOKEN_ENV}
    daemon = DaemonProcess(write_daemon_config(folder, http=http), {TOKEN_ENV: TOKEN}, stepped=True)
    try:
        daemon.wait_ready()
        (port,) = re.findall(r"http: serving http://0\.0\.0\.0:(\d+) \(pid \d+\)", daemon.log.read_text())
        yield Served(daemon, int(port))
    finally:
        code = daemon.stop()
        log = daemon.log.read_text()
        shutil.rmtree(folder, ignore_errors=True)
    assert code == 0, log[-3000:]


def test_off_loopback_the_page_needs_the_token_unless_public_read(remote: Served) -> None:
    for path in ("/", "/static/app.js"):
        reply = remote.get(path, auth=None)
        assert (reply.status, reply.error) == (401, ("unauthorized", TOKEN_REQUIRED)), reply
        response = _raw(remote, "GET", path, BEARER)
        assert response.status == 200
        _security_headers(response)


def _package_data() -> list[str]:
    """The package-data globs pyproject.toml gives bot.http: what a built wheel or sdist holds of the static folder."""
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns: list[str] = config["tool"]["setuptools"]["package-data"]["bot.http"]
    return patterns


def _shipped(name: str, patterns: list[str]) -> bool:
    """Whether `static/<name>` matches one of setuptools' globs (a `*` never crosses a folder)."""
    path = PurePosixPath("static", name)
    return any(len(PurePosixPath(pattern).parts) == len(path.parts) and path.match(pattern) for pattern in patterns)


def test_the_package_ships_every_file_the_manifest_serves() -> None:
    patterns = _package_data()
    assert [name for name in MANIFEST if not _shipped(name, patterns)] == []
    assert set(REQUIRED) <= set(MANIFEST)
    # The installed package's resources (what the daemon reads, wheel or not) hold each file the page needs.
    for name in REQUIRED:
        assert (files("bot.http") / "static" / name).read_bytes() == MANIFEST[name].body, name


def test_a_missing_vendored_file_is_an_error_naming_it(tmp_path: Path) -> None:
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy)
    (copy / CHART_LIBRARY).unlink()
    with pytest.raises(MissingAsset, match=re.escape(CHART_LIBRARY)) as raised:
        load_manifest(copy)
    assert "reinstall" in str(raised.value)
    assert set(load_manifest(STATIC)) == set(MANIFEST)
    with pytest.raises(MissingAsset, match=re.escape(INDEX)):
        load_manifest(tmp_path / "nowhere")
