"""Helpers for the UI end-to-end test: a throwaway Prefect server, the gate CLI, headless Chromium, DOM parsing.

Standard library only (plus httpx, which Prefect brings): Chromium is driven through its own command line
(`--dump-dom` and `--screenshot` in one run), so no browser-automation package is needed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

# Services the test does not need: fewer background loops competing for the two CI cores.
_IDLE_SERVICES = ("SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS", "REPOSSESSOR")

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--window-size=1400,2200",
)


def tail(text: str | bytes | None, lines: int = 25) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_in_group(
    cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """`subprocess.run` in its own process group, so that a timeout also ends the command's children."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)  # still unreaped, so the group is ours
        out, err = proc.communicate()
        raise AssertionError(
            f"{Path(cmd[0]).name} did not finish within {timeout:.0f}s: {' '.join(cmd)}\n"
            f"stdout tail:\n{tail(out)}\nstderr tail:\n{tail(err)}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any inherited Prefect or gate configuration, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "WAP_"))}
    env.update(PYTHONUNBUFFERED="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


class PrefectServer:
    """`prefect server start` as a subprocess with its own PREFECT_HOME (and so its own SQLite database)."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.api_url = f"{self.url}/api"
        self.log_path = home / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            PREFECT_HOME=str(self.home),
            # Without this the UI calls the default port 4200: "Can't connect to Server API".
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_API_URL=self.api_url,
            **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in _IDLE_SERVICES},
        )
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return ""

    def wait_healthy(self, timeout: float = 150) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.api_url}/health", timeout=3)
                if response.status_code == 200 and response.json() is True:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"prefect server not healthy after {timeout:.0f}s at {self.api_url}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the whole process group (the CLI runs uvicorn in a child), then SIGKILL to what lingers.

        The CLI is only reaped after the SIGKILL: while it is unreaped its pid, and so the group id, cannot be
        reused by another process.
        """
        if self.proc is None:
            return
        _kill_group(self.proc.pid, signal.SIGTERM)
        _wait_unreaped(self.proc.pid, timeout=15)
        _kill_group(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait until child ``pid`` has exited, without reaping it; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        time.sleep(0.1)
    return False


def start_prefect_server(home: Path, attempts: int = 3) -> PrefectServer:
    """Start a server on a free port, retrying on another port if the chosen one was taken meanwhile."""
    error: Exception | None = None
    for attempt in range(attempts):
        server = PrefectServer(home / f"server{attempt}", free_port()).start()
        try:
            server.wait_healthy()
            return server
        except RuntimeError as exc:
            server.stop()
            error = exc
            if "address already in use" not in str(exc).lower():
                break
    raise AssertionError(f"could not start a Prefect server: {error}")


def artifacts(api_url: str, key: str) -> list[dict]:
    """Artifacts with ``key``, newest first, from the server's REST API."""
    response = httpx.post(
        f"{api_url}/artifacts/filter",
        json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 50, "offset": 0},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def find_chromium() -> str | None:
    """Debian's `chromium` (or another Chromium/Chrome on PATH; WAP_CHROMIUM names one explicitly)."""
    for name in (
        os.environ.get("WAP_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ):
        if name and (path := shutil.which(name)):
            return path
    return None


# --- DOM -----------------------------------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, *tags: str) -> list[Element]:
        return [e for e in self.iter() if e.tag in tags and e is not self]

    def raw_text(self) -> str:
        if self.tag in ("script", "style"):
            return ""
        return "".join(c if isinstance(c, str) else c.raw_text() for c in self.children)

    def text(self) -> str:
        """Text content with whitespace collapsed (what a reader sees, modulo CSS)."""
        return " ".join(self.raw_text().split())

    def words(self) -> str:
        """Every text node, space separated (for failure messages: block elements' texts do not run together)."""
        if self.tag in ("script", "style"):
            return ""
        parts = (" ".join(c.split()) if isinstance(c, str) else c.words() for c in self.children)
        return " ".join(p for p in parts if p)


class _TreeBuilder(HTMLParser):
    """Builds a tree from Chromium's serialised DOM (well formed: every non-void element is closed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


@dataclass
class RenderedMarkdown:
    """The markdown artifact as the UI rendered it (only its own container: not the sidebar, not the Raw tab)."""

    ui: str
    text: str
    headings: list[str]
    list_items: list[str]
    code: list[str]
    tables: list[list[list[str]]]  # table -> rows -> cell texts (header row included)
    td_count: int


def rendered_markdown(html: str) -> RenderedMarkdown | None:
    """The artifact's rendered markdown in Prefect's V1 UI (Vue) or V2 UI (React); None if not rendered yet."""
    for element in parse_html(html).iter():
        if "artifact-data-markdown" in element.classes:
            ui = "v1"
        elif element.attrs.get("data-testid") == "markdown-display":
            ui = "v2"
        else:
            continue
        tables = [
            [[cell.text() for cell in row.find_all("th", "td")] for row in table.find_all("tr")]
            for table in element.find_all("table")
        ]
        return RenderedMarkdown(
            ui=ui,
            text=element.text(),
            headings=[h.text() for h in element.find_all("h1", "h2", "h3")],
            list_items=[li.text() for li in element.find_all("li")],
            code=[c.text() for c in element.find_all("code")],
            tables=tables,
            td_count=len(element.find_all("td")),
        )
    return None


def page_summary(html: str, limit: int = 600) -> str:
    """What the page showed, for failure messages: its visible text, shortened."""
    body = next((e for e in parse_html(html).iter() if e.tag == "body"), None)
    text = body.words() if body is not None else " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return text[:limit] + ("…" if len(text) > limit else "")


# --- Chromium ------------------------------------------------------------------------------------------------------


@dataclass
class Page:
    url: str
    dom: str
    screenshot: Path
    attempts: int
    seconds: float


def load_page(
    chromium: str,
    url: str,
    *,
    screenshot: Path,
    profile_root: Path,
    ready: Callable[[str], bool],
    budgets_ms: tuple[int, ...] = (10_000, 20_000, 40_000),
    timeout: float = 90,
) -> Page:
    """Render ``url`` in headless Chromium until ``ready(dom)``: DOM dump and PNG screenshot in one run.

    ``--virtual-time-budget`` lets the single-page app fetch from the API and render before the dump; if the
    page is not ready yet (slow CI), try again with a larger budget and a fresh profile.
    """
    started = time.monotonic()
    problems = []
    for attempt, budget in enumerate(budgets_ms, start=1):
        screenshot.unlink(missing_ok=True)
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile_root / f'{screenshot.stem}-{attempt}'}",
            f"--virtual-time-budget={budget}",
            f"--screenshot={screenshot}",
            "--dump-dom",
            url,
        ]
        result = run_in_group(cmd, timeout=timeout)
        dom = result.stdout
        if result.returncode == 0 and ready(dom) and screenshot.is_file():
            return Page(url, dom, screenshot, attempt, time.monotonic() - started)
        problems.append(
            f"attempt {attempt} (virtual time {budget} ms): exit {result.returncode}, "
            f"screenshot {'written' if screenshot.is_file() else 'missing'}, page text: {page_summary(dom)!r}\n"
            f"chromium stderr tail (D-Bus noise left out):\n{tail(_without_dbus(result.stderr), 8)}"
        )
        time.sleep(1)
    raise AssertionError(f"{url} did not render the artifact in headless Chromium:\n" + "\n".join(problems))


def _without_dbus(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if "dbus" not in line.lower())


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
