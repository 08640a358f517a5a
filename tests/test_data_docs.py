"""GX data docs over HTTP: the link artifacts' URLs, the assets served locally, `wap docs serve|build`.

Fast tier: the URL mapping (WAP_DOCS_URL), the asset routing (every CSS/JS URL in GX's own templates is served
from docs_assets/ with status 200, with the bytes its SRI hash names), a real GX page (`wap validate`) served
by a real DocsServer loading nothing from another host, the server's refusals, `wap docs build`.

Browser tier (`browser`): a real `prefect server start`, a real blocked `wap run` (subprocess) whose
`titanic-data-docs` link artifact points at a real `wap docs serve` (subprocess); Chromium (Debian's, driven by
playwright) opens the artifact in the Prefect UI, clicks the link, and the GX page must be styled (every
stylesheet loaded, Bootstrap's button colours, Font Awesome's font), load nothing from another host, and its
"Failed Only" filter must hide the passed rows. Screenshots land in the test's tmp dir and $WAP_UI_SCREENSHOTS.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import great_expectations
import httpx
import pytest
from cli_runner import run_cli
from ui_helpers import REPO, artifacts, clean_env, find_chromium, free_port, start_prefect_server, tail

from flows.reports.docs_server import make_server, resolve_request
from flows.reports.docs_site import (
    ASSETS_DIR,
    ASSETS_ROUTE,
    CDN_ASSETS,
    DEFAULT_DOCS_URL,
    DocsSiteError,
    build_site,
    docs_base_url,
    docs_markdown,
    docs_page,
    docs_text,
    external_loads,
    localize_html,
    site_directory,
)

TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
# Any absolute URL in a src or href attribute of a tag that loads it (script, link, img): independent of the
# module's own pattern, so a new kind of reference in a GX upgrade is caught here too.
LOADED = re.compile(r"<(script|link|img)\b([^>]*)>", re.IGNORECASE | re.DOTALL)
ATTR = re.compile(r"""\b(src|href|integrity)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")


def template_loads() -> dict[str, str | None]:
    """Every absolute URL GX's data docs templates load, with its SRI hash if the tag has one."""
    found: dict[str, str | None] = {}
    for template in sorted(TEMPLATES.glob("*.j2")):
        for _, attrs in LOADED.findall(template.read_text()):
            values = {name.lower(): value for name, value in ATTR.findall(attrs)}
            for name in ("src", "href"):
                url = values.get(name, "")
                if url.startswith(("http:", "https:", "//")):
                    found[url] = values.get("integrity")
    return found


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A tiny site: index.html, a page four levels down, a stylesheet, a file outside it and a link out."""
    root = tmp_path / "gx" / "uncommitted" / "data_docs" / "local_site"
    page = root / "validations" / "titanic" / "run 1" / "20261202T000000Z" / "pandas-titanic.html"
    page.parent.mkdir(parents=True)
    (root / "index.html").write_text('<link rel="stylesheet" href="https://code.jquery.com/jquery-3.7.1.min.js">')
    page.write_text('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>')
    (root / "static").mkdir()
    (root / "static" / "a.css").write_text("body{}")
    (root / ".hidden").write_text("secret")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "static" / "out").symlink_to(tmp_path)
    (tmp_path / "gx" / "great_expectations.yml").write_text(
        "data_docs_sites:\n  local_site:\n    class_name: SiteBuilder\n    store_backend:\n"
        "      class_name: TupleFilesystemStoreBackend\n      base_directory: uncommitted/data_docs/local_site/\n"
        "  s3_site:\n    class_name: SiteBuilder\n    store_backend:\n      class_name: TupleS3StoreBackend\n"
        "      bucket: docs\n"
    )
    return root


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    """A real DocsServer on a free port, in a thread of this process; yields its base URL."""
    server = make_server(site, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _raw_get(base: str, path: str) -> int:
    """GET with the path sent exactly as given (httpx would normalise the dots away)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


# --- the asset routing --------------------------------------------------------------------------------------------


def test_every_asset_gx_templates_load_is_vendored_with_the_bytes_its_sri_hash_names() -> None:
    loads = template_loads()
    assert len(loads) >= 15, f"expected GX 1.24's ~17 CDN assets in {TEMPLATES}, found {sorted(loads)}"
    missing = sorted(set(loads) - set(CDN_ASSETS))
    assert not missing, f"GX's data docs templates load assets wap does not serve (add them to CDN_ASSETS): {missing}"
    for url, integrity in loads.items():
        local = ASSETS_DIR / CDN_ASSETS[url]
        assert local.is_file(), f"{url}: its copy {local} is missing"
        if integrity:  # the browser refuses a script whose bytes do not match: the copy must be the CDN's file
            algorithm, _, expected = integrity.partition("-")
            digest = base64.b64encode(hashlib.new(algorithm, local.read_bytes()).digest()).decode()
            assert digest == expected, f"{local} is not the file {url} names by its integrity {integrity}"
    for package in {CDN_ASSETS[url].split("/")[0] for url in loads}:
        assert list((ASSETS_DIR / package).glob("LICENSE*")), f"docs_assets/{package} has no license file"


def test_every_asset_and_what_its_css_loads_is_served_locally(served: str) -> None:
    wanted = {f"{served}/{ASSETS_ROUTE}/{local}" for local in CDN_ASSETS.values()}
    for local in CDN_ASSETS.values():  # fonts and images a stylesheet loads, relative to it
        if local.endswith(".css"):
            for ref in CSS_URL.findall((ASSETS_DIR / local).read_text()):
                if not ref.startswith(("data:", "#")):
                    wanted.add(urljoin(f"{served}/{ASSETS_ROUTE}/{local}", ref.split("?")[0].split("#")[0]))
    assert any(url.endswith(".woff2") for url in wanted), "Font Awesome's fonts should be among the assets"
    with httpx.Client(timeout=10) as client:
        for url in sorted(wanted):
            response = client.get(url)
            assert response.status_code == 200, f"{url}: {response.status_code}"
            local = ASSETS_DIR / unquote(urlsplit(url).path).split(f"/{ASSETS_ROUTE}/", 1)[1]
            assert response.content == local.read_bytes(), url
            assert response.headers["content-type"].split(";")[0] in (
                "text/css",
                "text/javascript",
                "font/woff2",
                "font/ttf",
            ), (url, response.headers["content-type"])


def test_a_localized_template_loads_nothing_from_elsewhere() -> None:
    page = "validations/titanic/run/20261202T000000Z/pandas-titanic.html"
    for template in ("page.j2", "index_page.j2", "page_minimal.j2", "js_script_imports.j2"):
        html = (TEMPLATES / template).read_text()
        assert external_loads(html), f"{template} loaded nothing from a CDN: the test's premise is gone"
        assert external_loads(localize_html(html, page)) == [], template
    logo = '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&x=2">'
    assert localize_html(logo, page) == '<img src="../../../../static/images/logo-long.png">'
    # GX's favicon link on a validation page climbs one level too few: recomputed from the page's depth.
    favicon = '<link rel="shortcut icon" href="../../../static/images/favicon.ico">'
    assert localize_html(favicon, page) == '<link rel="shortcut icon" href="../../../../static/images/favicon.ico">'
    assert localize_html('<a href="./static/images/x.png">', "index.html") == '<a href="static/images/x.png">'
    jquery = '<script src="https://code.jquery.com/jquery-3.7.1.min.js">'
    assert localize_html(jquery, "expectations/titanic.html") == (
        f'<script src="../{ASSETS_ROUTE}/jquery-3.7.1/jquery.min.js">'
    )


# --- the URL mapping ----------------------------------------------------------------------------------------------


def test_docs_base_url_default_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAP_DOCS_URL", raising=False)
    assert docs_base_url() == DEFAULT_DOCS_URL == "http://127.0.0.1:8900"
    monkeypatch.setenv("WAP_DOCS_URL", "  ")
    assert docs_base_url() == DEFAULT_DOCS_URL
    monkeypatch.setenv("WAP_DOCS_URL", "https://docs.example.com/wap/")
    assert docs_base_url() == "https://docs.example.com/wap"
    assert docs_base_url("http://[::1]:8900") == "http://[::1]:8900"
    for bad in (
        "ftp://docs.example.com",
        "docs.example.com:8900",
        "file:///tmp/site",
        "http://",
        "http://user:secret@docs.example.com",
        "http://docs.example.com:99999",
        "http://docs.example.com:port",
        "http://docs.example.com/?q=1",
        "http://docs.example.com/#top",
        "http://docs example.com",
    ):
        with pytest.raises(DocsSiteError, match="WAP_DOCS_URL="):
            docs_base_url(bad)


def test_a_page_maps_to_its_path_under_the_site_at_the_base_url(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAP_GX_DIR", str(site.parents[2]))
    monkeypatch.delenv("WAP_DOCS_URL", raising=False)
    page = next(site.glob("validations/*/*/*/*.html"))
    file_url = page.as_uri()  # what GX gives: percent-encoded
    assert "run%201" in file_url
    expected = "validations/titanic/run%201/20261202T000000Z/pandas-titanic.html"
    assert docs_page(file_url) is not None and docs_page(file_url).url == f"{DEFAULT_DOCS_URL}/{expected}"
    assert docs_page(file_url).file == str(page)
    monkeypatch.setenv("WAP_DOCS_URL", "https://docs.example.com/wap/")
    assert docs_page(file_url).url == f"https://docs.example.com/wap/{expected}"
    assert docs_markdown(file_url) == (
        f"[https://docs.example.com/wap/{expected}](https://docs.example.com/wap/{expected}) (file `{page}`)"
    )
    assert docs_text(file_url) == f"https://docs.example.com/wap/{expected} (file {page})"
    # A site on an object store gives an https URL already; a file in no site of the project stays a file.
    assert docs_page("https://bucket.example.com/index.html").url == "https://bucket.example.com/index.html"
    elsewhere = (site.parents[3] / "outside.txt").as_uri()
    assert docs_page(elsewhere) is None and docs_markdown(elsewhere) == f"`{elsewhere}`"
    assert site_directory() == site.resolve()
    with pytest.raises(DocsSiteError, match="no data docs site 's3_site' on the filesystem"):
        site_directory("s3_site")


# --- the server ---------------------------------------------------------------------------------------------------


def test_the_server_serves_the_site_read_only_and_nothing_outside_it(site: Path, served: str) -> None:
    page = "validations/titanic/run%201/20261202T000000Z/pandas-titanic.html"
    with httpx.Client(timeout=10) as client:
        response = client.get(f"{served}/{page}")
        assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.text == f'<script src="../../../../{ASSETS_ROUTE}/jquery-3.7.1/jquery.min.js"></script>'
        root = client.get(f"{served}/")
        assert root.status_code == 200 and f'"{ASSETS_ROUTE}/jquery-3.7.1/jquery.min.js"' in root.text
        assert client.get(f"{served}/static/a.css").text == "body{}"
        assert client.head(f"{served}/static/a.css").status_code == 200
        assert client.post(f"{served}/static/a.css").status_code == 501
        assert client.put(f"{served}/static/a.css", content=b"x").status_code == 501
        assert client.get(f"{served}/static/").status_code == 404  # no listings
    for refused in (
        "/../outside.txt",
        "/static/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/static/%2e%2e/%2e%2e/outside.txt",
        "/static/..%2f..%2foutside.txt",
        "/static/out/outside.txt",  # a symbolic link out of the site
        "/.hidden",
        "/static\\..\\..\\outside.txt",
        "/index.html%00.css",
        f"/{ASSETS_ROUTE}/../docs_site.py",
        f"/{ASSETS_ROUTE}/%2e%2e/docs_site.py",
        "/missing.html",
    ):
        assert _raw_get(served, refused) == 404, refused
    assert resolve_request(site, "/static/out/outside.txt") is None
    assert resolve_request(site, "/index.html?x=1") == ((site / "index.html").resolve(), "index.html")


def test_wap_docs_serve_rejects_a_bad_base_url_and_an_unknown_site(site: Path) -> None:
    env = {"WAP_GX_DIR": str(site.parents[2]), "WAP_DOCS_URL": "ftp://docs.example.com"}
    for args in (("docs", "serve", "--port", "0"), ("run", "titanic", "--source", "nowhere.csv")):
        result = run_cli(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines == [
            "error: WAP_DOCS_URL='ftp://docs.example.com' is not an http(s) base URL of the data docs site"
            " (e.g. http://127.0.0.1:8900, where `wap docs serve` listens, or https://docs.example.com/wap)"
        ], (args, result.stderr)
    unknown = run_cli("docs", "serve", "--site", "nope", env={"WAP_GX_DIR": str(site.parents[2])})
    assert unknown.returncode == 2 and unknown.stderr.strip().startswith("error: no data docs site 'nope'")


def test_wap_docs_serve_on_a_port_in_use_exits_3(site: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("docs", "serve", "--port", port, env={"WAP_GX_DIR": str(site.parents[2])})
    assert result.returncode == 3, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: "), lines
    assert "in use" in lines[0], lines


# --- a real GX page -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data docs `wap validate` builds (real GX, in this process) for a corrupted Titanic file."""
    from flows.demo.data import corrupt, generate_titanic, write_csv

    work = tmp_path_factory.mktemp("real-docs")
    gx_dir = work / "gx"
    shutil.copytree(REPO / "gx", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    source = write_csv(corrupt(generate_titanic(891), "unknown_sex"), work / "bad.csv")
    env = {"WAP_GX_DIR": str(gx_dir)}
    result = run_cli("validate", "titanic", "--source", str(source), "--lakehouse", str(work / "lake"), env=env)
    assert result.returncode == 1, tail(result.stdout + result.stderr)
    return gx_dir / "uncommitted" / "data_docs" / "local_site"


def test_a_real_gx_page_served_loads_nothing_from_elsewhere(real_site: Path) -> None:
    server = make_server(real_site, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        pages = [p.relative_to(real_site).as_posix() for p in real_site.rglob("*.html")]
        assert any(p.startswith("validations/") for p in pages) and "index.html" in pages
        with httpx.Client(timeout=10) as client:
            for page in pages:
                html = client.get(f"{base}/{page}").text
                assert external_loads(html) == [], (page, external_loads(html))
                refs = {v for tag, attrs in LOADED.findall(html) for n, v in ATTR.findall(attrs) if n != "integrity"}
                for ref in refs:
                    url = urljoin(f"{base}/{page}", ref)
                    assert client.get(url).status_code == 200, f"{page} loads {ref}: not served"
    finally:
        server.shutdown()
        server.server_close()


def test_wap_docs_build_writes_a_self_contained_copy(real_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "published"
    result = run_cli("docs", "build", "--out", str(out), env={"WAP_GX_DIR": str(real_site.parents[2])})
    assert result.returncode == 0, result.stderr
    pages = list(out.rglob("*.html"))
    assert result.stdout.startswith(f"wrote {len(pages)} data docs pages of {real_site}")
    for page in pages:
        html = page.read_text()
        assert external_loads(html) == [], page
        for _, attrs in LOADED.findall(html):
            for name, ref in ATTR.findall(attrs):
                if name != "integrity" and not ref.startswith(("http", "#", "data:")):
                    assert (page.parent / unquote(ref)).resolve().is_file(), f"{page} loads {ref}: not in the copy"
    with pytest.raises(DocsSiteError, match="must not contain the data docs site"):
        build_site(real_site, real_site / "copy")


# --- in Chromium, from the Prefect UI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium on PATH: install Debian's chromium (apt-get install chromium) or set WAP_CHROMIUM")
    pytest.importorskip("playwright.sync_api", reason="the dev group's playwright drives Chromium")
    return path


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`wap docs serve` exited {proc.returncode}:\n{tail(log.read_text())}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"`wap docs serve` not answering at {url}:\n{tail(log.read_text())}")


@pytest.mark.browser
@pytest.mark.subprocess
@pytest.mark.timeout(480)
@pytest.mark.xdist_group("ui")
def test_from_the_prefect_ui_artifact_to_a_styled_data_docs_page(chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from flows.demo.data import corrupt, generate_titanic, write_csv

    shots = [tmp_path / name for name in ("artifact.png", "docs.png", "failed-only.png", "artifact-v2.png")]
    gx_dir = tmp_path / "gx"
    shutil.copytree(REPO / "gx", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    source = write_csv(corrupt(generate_titanic(891), "unknown_sex"), tmp_path / "bad.csv")
    port = free_port()
    docs_url = f"http://127.0.0.1:{port}"
    server = start_prefect_server(tmp_path / "prefect-home")
    serve_log = tmp_path / "docs-serve.log"
    env = clean_env(PREFECT_API_URL=server.api_url, WAP_GX_DIR=str(gx_dir), WAP_DOCS_URL=docs_url, COLUMNS="200")
    with open(serve_log, "wb") as log:
        docs = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "docs", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        _wait_http(f"{docs_url}/", docs, serve_log)
        run = subprocess.run(
            [sys.executable, "-m", "flows.cli", "run", "titanic", "--source", str(source), "--backend", "local",
             "--lakehouse", str(tmp_path / "lake")],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert run.returncode == 1, tail(run.stdout + run.stderr, 30)
        links = artifacts(server.api_url, "titanic-data-docs")
        # Prefect keeps a link artifact as the markdown "[text](url)" (LinkArtifact's type is "markdown").
        assert len(links) == 1 and links[0]["type"] == "markdown", links
        link = re.fullmatch(r"\[GX data docs: titanic validation [^]]+\]\((\S+)\)", links[0]["data"]).group(1)
        assert link.startswith(f"{docs_url}/validations/titanic/") and link.endswith("/pandas-titanic.html"), link
        page_file = gx_dir / "uncommitted" / "data_docs" / "local_site" / unquote(link.removeprefix(docs_url + "/"))
        assert page_file.is_file(), page_file
        assert f"served by `wap docs serve` at {docs_url}" in links[0]["description"], links[0]["description"]
        assert str(page_file) in links[0]["description"], links[0]["description"]

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            elsewhere: list[str] = []  # what a page tried to fetch from another host (refused: no network here)

            def local_only(route) -> None:
                url = route.request.url
                if url.startswith((server.url, docs_url, "data:", "blob:")):
                    route.continue_()
                else:
                    elsewhere.append(url)
                    route.abort()

            context.route("**/*", local_only)
            ui = context.new_page()
            ui.goto(f"{server.url}/artifacts/artifact/{links[0]['id']}", wait_until="domcontentloaded")
            anchor = ui.locator(f'a[href="{link}"]').first
            anchor.wait_for(state="visible", timeout=60_000)
            ui.screenshot(path=str(shots[0]))
            opens_tab = anchor.get_attribute("target") == "_blank"

            failed: list[str] = []
            context.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            context.on("response", lambda r: failed.append(f"{r.url}: {r.status}") if r.status >= 400 else None)
            if opens_tab:
                with context.expect_page() as opened:
                    anchor.click()
                page = opened.value
            else:
                anchor.click()
                page = ui
            page.wait_for_url(link, timeout=30_000)
            page.wait_for_load_state("load")
            page.evaluate("document.fonts.ready")
            page.screenshot(path=str(shots[1]))
            docs_failed = [f for f in failed if f.startswith(docs_url)]
            docs_elsewhere = list(elsewhere)

            # Styled: every stylesheet the page links came from wap's server and has its rules; Bootstrap's
            # classes and Font Awesome's font are in effect.
            sheets = page.evaluate(
                "[...document.styleSheets].filter(s => s.href).map(s => [s.href, s.cssRules.length])"
            )
            ours = [href for href, _ in sheets if href.startswith(f"{docs_url}/{ASSETS_ROUTE}/")]
            assert len(sheets) >= 6 and len(ours) == len(sheets), sheets
            assert all(rules > 0 for _, rules in sheets), sheets
            button = page.locator("label.btn-primary", has_text="Failed Only")
            style = button.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
            assert style == ["rgb(0, 123, 255)", "rgb(255, 255, 255)"], f"Bootstrap's .btn-primary not applied: {style}"
            assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("-apple-system"), "Bootstrap"
            assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 6 Free\"')"), "Font Awesome not loaded"
            assert page.evaluate("typeof jQuery === 'function' && typeof jQuery.fn.bootstrapTable === 'function'")
            assert not docs_failed, f"requests of the docs page failed: {docs_failed}"
            assert not docs_elsewhere, f"the docs page fetched from other hosts: {docs_elsewhere}"

            # The filter: "Failed Only" hides the passed rows, keeps the failed one.
            passed = page.locator(".hide-succeeded-validation-target-child")
            assert passed.count() >= 30 and all(passed.nth(i).is_visible() for i in range(passed.count()))
            sex = page.locator("td", has_text="unexpected values found")  # the failed Sex rule's row
            assert sex.first.is_visible()
            button.click()
            page.wait_for_function(
                "[...document.querySelectorAll('.hide-succeeded-validation-target-child')]"
                ".every(e => e.closest('tr').offsetParent === null)",
                timeout=10_000,
            )
            page.screenshot(path=str(shots[2]))
            assert sex.first.is_visible(), "Failed Only hid the failed expectation too"
            assert page.get_by_role("link", name="Sex", exact=True).is_visible(), "its column's entry in the contents"
            assert not any(passed.nth(i).is_visible() for i in range(passed.count()))

            # The V2 UI (where the dashboard opens by default) links the same page, and the click opens it.
            v2 = context.new_page()
            v2.goto(f"{server.url}/v2/artifacts/artifact/{links[0]['id']}", wait_until="domcontentloaded")
            v2_anchor = v2.locator(f'a[href="{link}"]').first
            v2_anchor.wait_for(state="visible", timeout=60_000)
            v2.screenshot(path=str(shots[3]))
            if v2_anchor.get_attribute("target") == "_blank":
                with context.expect_page() as opened:
                    v2_anchor.click()
                again = opened.value
            else:
                v2_anchor.click()
                again = v2
            again.wait_for_url(link, timeout=30_000)
            again.locator("label.btn-primary", has_text="Failed Only").wait_for(state="visible", timeout=30_000)
            browser.close()
    finally:
        if target := os.environ.get("WAP_UI_SCREENSHOTS"):
            Path(target).mkdir(parents=True, exist_ok=True)
            for shot in shots:
                if shot.is_file():
                    shutil.copy(shot, Path(target) / f"data-docs-{shot.name}")
        os.killpg(docs.pid, 15)
        docs.wait(timeout=20)
        server.stop()
