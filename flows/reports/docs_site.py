"""GX data docs that open from the Prefect UI: http(s) links to a validation's page, and pages that work offline.

Why: GX's own link to a page is a ``file://`` URL, which a browser refuses to open from an http page (the
Prefect UI) and which names a file on the machine that ran the audit only. And GX 1.24's page templates
(``render/view/templates/page.j2``, ``index_page.j2``, ``page_minimal.j2``, ``js_script_imports.j2``) load
about 15 CSS, JS and font files from CDNs, and the navbar logo from GX's S3 bucket: offline, or wherever those
hosts are blocked, a page is unstyled and its "Failed Only" filter (jQuery) does nothing.

So:
- ``CDN_ASSETS`` maps each CDN URL those templates reference to the same file at the same version, vendored
  under ``docs_assets/`` (each package with its license; ``docs_assets/README.md`` says where they come from);
  ``localize_html`` rewrites a page's CDN URLs to relative links to them under ``<site>/_wap_assets/``, so a
  page works wherever the site is served from (``wap docs serve`` rewrites at serve time, ``wap docs build``
  writes a rewritten copy for an object store or a shared directory);
- a validation's link is ``<base>/<the page's path under the site root>``, base being ``WAP_DOCS_URL`` or, by
  default, where ``wap docs serve`` listens by default (``docs_page_url``).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

import yaml

from flows.audit.gx_project import DATA_DOCS_SITE
from flows.datasets import gx_dir as configured_gx_dir

ASSETS_DIR = Path(__file__).resolve().parent / "docs_assets"
ASSETS_ROUTE = "_wap_assets"  # the assets' directory under the site root, served or written by `wap docs build`
DOCS_URL_ENV = "WAP_DOCS_URL"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8900
DEFAULT_DOCS_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

# Every asset URL in GX 1.24's data docs templates -> its vendored copy under docs_assets/ (npm package
# directory as `npm pack` names it, then the file's path in that package less a leading dist/, a name the
# repository's .gitignore ignores). "vega@5" and friends are
# unversioned major ranges on the CDN; the copies are the newest releases of those majors when vendored.
# tests/test_data_docs.py fails if a template references an asset missing here.
CDN_ASSETS: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table-1.19.1/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table-1.19.1/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0/js/bootstrap-datepicker.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "forevolve-bootstrap-dark-1.1.0/css/bootstrap-prefers-dark.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "fortawesome-fontawesome-free-6.6.0/css/all.min.css"  # its url(../webfonts/...) are vendored beside it
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/umd/popper.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/build/vega-embed.min.js",
}

# The navbar logo: top_navbar.j2 points it at GX's bucket with the data context id as query string (a page-view
# beacon). The site's own static/images/ holds the same images, so the page points there instead.
_GX_IMAGES = re.compile(r'"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/([\w.-]+)(?:\?[^"]*)?"')
# The site's own images, by a link relative to the page: GX's favicon link on a validation page climbs one level
# too few (favicon.j2 counts 3 levels, the page is 4 deep), so every such link is recomputed from the page's depth.
_SITE_IMAGES = re.compile(r'"(?:\./|(?:\.\./)*)static/images/([\w.-]+)"')
# What a page loads from elsewhere: scripts, stylesheets, images, icons (not the <a href> links a reader follows).
_EXTERNAL_LOAD = re.compile(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)\s*=\s*"((?:https?:)?//[^"]+)"', re.IGNORECASE)


class DocsSiteError(ValueError):
    """A bad data docs configuration (WAP_DOCS_URL, the GX site): bad input, exit 2."""


def external_loads(html: str) -> list[str]:
    """The URLs a page (or a template) would fetch from another host: what `localize_html` must leave none of."""
    return _EXTERNAL_LOAD.findall(html)


def localize_html(html: str, page: str) -> str:
    """``html`` of the page at ``page`` (its path under the site root, e.g. ``validations/a/r/t/b.html``) with
    each CDN asset and GX's logo pointing at the local copy, by a link relative to the page (so the site works
    under any base URL, from an object store or opened as a file)."""
    up = "../" * (len(PurePosixPath(page).parts) - 1)
    for url, local in CDN_ASSETS.items():
        html = html.replace(f'"{url}"', f'"{up}{ASSETS_ROUTE}/{local}"')
    html = _SITE_IMAGES.sub(lambda m: f'"{up}static/images/{m.group(1)}"', html)
    return _GX_IMAGES.sub(lambda m: f'"{up}static/images/{m.group(1)}"', html)


def docs_base_url(value: str | None = None) -> str:
    """The base URL of the served site (``value``, else ``WAP_DOCS_URL``, else ``wap docs serve``'s default
    address), without a trailing slash; DocsSiteError if it is no http(s) URL a browser can open."""
    raw = (value if value is not None else os.environ.get(DOCS_URL_ENV, "")).strip() or DEFAULT_DOCS_URL
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018  # raises ValueError on a port that is no number or out of range
    except ValueError:
        parts = parts._replace(netloc="")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "@" in parts.netloc  # credentials in a link artifact would be shown to everyone
        or any(c.isspace() for c in raw)
    ):
        raise DocsSiteError(
            f"{DOCS_URL_ENV}={raw!r} is not an http(s) base URL of the data docs site"
            f" (e.g. {DEFAULT_DOCS_URL}, where `wap docs serve` listens, or https://docs.example.com/wap)"
        )
    return raw.rstrip("/")


@dataclass(frozen=True)
class DocsPage:
    """A data docs page: where a browser opens it (``url``, http(s)) and its file on the auditing machine."""

    url: str
    file: str | None  # None when GX gave an http(s) URL (a site on an object store)


def site_directories(gx: Path | str | None = None) -> dict[str, Path]:
    """The GX project's data docs sites kept on the filesystem, by name: ``store_backend.base_directory`` of each
    ``data_docs_sites`` entry in great_expectations.yml, relative to the project (GX's own rule)."""
    root = Path(gx if gx is not None else configured_gx_dir()).expanduser().resolve()
    config_path = root / "great_expectations.yml"
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DocsSiteError(f"cannot read the GX project's data docs sites from {config_path}: {exc}") from exc
    sites = {}
    for name, site in (config.get("data_docs_sites") or {}).items():
        backend = (site or {}).get("store_backend") or {}
        if backend.get("class_name", "TupleFilesystemStoreBackend") == "TupleFilesystemStoreBackend":
            base = backend.get("base_directory") or f"uncommitted/data_docs/{name}"
            sites[name] = (root / base).resolve()
    return sites


def site_directory(site: str | None = None, gx: Path | str | None = None) -> Path:
    """The directory of one filesystem site (default: the one the gate's checkpoints build, ``local_site``)."""
    name = site or DATA_DOCS_SITE
    sites = site_directories(gx)
    if name not in sites:
        known = ", ".join(sorted(sites)) or "none"
        raise DocsSiteError(f"no data docs site {name!r} on the filesystem in the GX project (sites: {known})")
    return sites[name]


def docs_page(docs_url: str, *, base: str | None = None, gx: Path | str | None = None) -> DocsPage | None:
    """Where a browser opens the page GX gave as ``docs_url``: ``<base>/<path under its site>`` for a page in one
    of the project's filesystem sites, the URL itself if it is http(s) already; None for a file elsewhere."""
    scheme = urlsplit(docs_url).scheme
    if scheme in ("http", "https"):
        return DocsPage(docs_url, None)
    path = Path(unquote(urlsplit(docs_url).path)) if scheme == "file" else Path(docs_url)
    try:
        sites = site_directories(gx)
    except DocsSiteError:
        return None
    resolved = path.resolve()
    for root in sites.values():
        if resolved.is_relative_to(root):
            relative = resolved.relative_to(root).as_posix()
            return DocsPage(f"{docs_base_url(base)}/{quote(relative)}", str(path))
    return None


def docs_markdown(docs_url: str) -> str:
    """A page's link for the markdown report: the http(s) link a reader clicks, and the file on the auditing
    machine as code (the file URL as code when the page is in no site wap serves)."""
    page = docs_page(docs_url)
    if page is None:
        return f"`{docs_url}`"
    return f"[{page.url}]({page.url})" + (f" (file `{page.file}`)" if page.file else "")


def docs_text(docs_url: str) -> str:
    """A page's link for the CLI and error lines: the http(s) URL, then the file."""
    page = docs_page(docs_url)
    if page is None:
        return docs_url
    return page.url + (f" (file {page.file})" if page.file else "")


def build_site(site: Path, out: Path) -> int:
    """A self-contained copy of ``site`` in ``out``: every page localized, the assets under ``_wap_assets/``;
    for an object store or a shared directory, or to open as files. Returns the number of pages written."""
    site, out = site.resolve(), out.resolve()
    if out == site or out.is_relative_to(site) or site.is_relative_to(out):
        raise DocsSiteError(f"--out {out} must not contain the data docs site {site}, nor be inside it")
    if not (site / "index.html").is_file():
        raise DocsSiteError(f"no data docs site at {site} yet (no index.html): run an audit first")
    pages = 0
    for path in sorted(site.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue  # a link could point outside the site: it is not copied into a site that gets published
        relative = path.relative_to(site)
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".html":
            target.write_text(localize_html(path.read_text(encoding="utf-8"), relative.as_posix()), encoding="utf-8")
            pages += 1
        else:
            shutil.copyfile(path, target)
    shutil.copytree(ASSETS_DIR, out / ASSETS_ROUTE, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    return pages
