"""`wap docs serve`: the GX data docs site over HTTP, read-only, with its CDN assets served from docs_assets/.

GET and HEAD only. A request maps to a file under the site root (or under docs_assets/ for ``/_wap_assets/``)
after percent-decoding; ``..``, hidden names, NUL bytes and backslashes are refused, and the resolved path (links
followed) must still be inside its root, so nothing outside the site is ever read. A directory serves its
index.html (no listings). Pages are rewritten by `localize_html` as they are served, so a site GX keeps building
is always served current and offline-ready.
"""

from __future__ import annotations

import mimetypes
import shutil
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flows.reports.docs_site import ASSETS_DIR, ASSETS_ROUTE, localize_html

# mimetypes reads the machine's tables, which differ (a bare container may lack woff2): the ones the site needs.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
}


def resolve_request(site: Path, url_path: str) -> tuple[Path, str] | None:
    """The file a request path names and its path under its root (for the page rewrite), or None: not found or
    refused (outside the site, hidden, malformed). ``/_wap_assets/...`` names the vendored assets."""
    decoded = unquote(urlsplit(url_path).path)
    if "\x00" in decoded or "\\" in decoded:
        return None
    parts = [part for part in decoded.split("/") if part]
    if any(part.startswith(".") for part in parts):  # "..", ".", and hidden files alike
        return None
    root = site
    if parts and parts[0] == ASSETS_ROUTE:
        root, parts = ASSETS_DIR, parts[1:]
    root = root.resolve()
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root):  # a symbolic link out of the site
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    if not candidate.is_file():
        return None
    return candidate, candidate.relative_to(root).as_posix()


class DocsHandler(BaseHTTPRequestHandler):
    """Serves ``self.server.site`` (a DocsServer); everything but GET and HEAD gets 501 from the base class."""

    server: DocsServer

    def version_string(self) -> str:
        return "wap-docs"  # no Python version in the Server header

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _respond(self, *, body: bool) -> None:
        found = resolve_request(self.server.site, self.path)
        if found is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", body=body)
            return
        path, relative = found
        content_type = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
        content_type = content_type or "application/octet-stream"
        try:
            if path.suffix.lower() == ".html" and not path.is_relative_to(ASSETS_DIR):
                page = localize_html(path.read_text(encoding="utf-8", errors="replace"), relative).encode()
                self._send(HTTPStatus.OK, page, content_type, body=body, cache="no-cache")
                return
            with path.open("rb") as handle:
                size = path.stat().st_size
                # The vendored files never change under their versioned paths; GX's own files may.
                cache = "public, max-age=86400" if path.is_relative_to(ASSETS_DIR) else "no-cache"
                self._headers(HTTPStatus.OK, content_type, size, cache)
                if body:
                    shutil.copyfileobj(handle, self.wfile)
        except OSError:  # removed or unreadable between the lookup and the read
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", body=body)

    def _headers(self, status: HTTPStatus, content_type: str, length: int, cache: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()

    def _send(self, status: HTTPStatus, data: bytes, content_type: str, *, body: bool, cache: str = "no-cache") -> None:
        self._headers(status, content_type, len(data), cache)
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # the base class's signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class DocsServer(ThreadingHTTPServer):
    daemon_threads = True  # a browser's open keep-alive connection must not hold up Ctrl-C

    def __init__(self, site: Path, host: str, port: int) -> None:
        self.site = site.resolve()
        if ":" in host:  # an IPv6 address such as ::1 or ::
            self.address_family = socket.AF_INET6
        super().__init__((host, port), DocsHandler)


def make_server(site: Path, host: str, port: int) -> DocsServer:
    """A server bound to ``host:port`` (port 0: any free one, see ``server_address``); OSError if it cannot bind."""
    return DocsServer(site, host, port)
