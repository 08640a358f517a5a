"""The README's automation recipe, as written there, against a real `prefect server start`: a blocked `wap run`
fires `wap.audit.failed`, the automation's send-notification action renders its subject and body and delivers them
through a notification block (a custom webhook pointing at an HTTP server in this test)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml
from ui_helpers import REPO, clean_env, start_prefect_server

from flows.demo.data import corrupt, generate_titanic

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(600)]


def readme_recipe() -> str:
    """The `wap-blocked.yaml` block of the README, verbatim."""
    text = (REPO / "README.md").read_text()
    found = re.search(r"```yaml\n(# wap-blocked\.yaml.*?)```", text, re.S)
    assert found, "the README lost its automation recipe"
    return found.group(1)


class Received(BaseHTTPRequestHandler):
    posts: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Received.posts.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


def test_the_readme_recipe_notifies_on_a_blocked_run(tmp_path: Path, isolated_gx: Path) -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Received)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    server = start_prefect_server(tmp_path / "prefect")
    try:
        env = clean_env(PREFECT_API_URL=server.api_url, WAP_GX_DIR=str(isolated_gx))

        def run(*cmd: str) -> subprocess.CompletedProcess:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)

        save = run(
            sys.executable,
            "-c",
            "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B;"
            f"print(B(name='wap-alerts', url='http://127.0.0.1:{hook.server_port}/hook', allow_private_urls=True,"
            " json_data={'subject': '{{subject}}', 'body': '{{body}}'}).save('wap-alerts'))",
        )
        assert save.returncode == 0, save.stderr
        block_id = save.stdout.strip().splitlines()[-1]
        recipe = readme_recipe().replace("BLOCK_ID", block_id)
        assert yaml.safe_load(recipe)["trigger"]["expect"] == ["wap.audit.failed"]
        (tmp_path / "wap-blocked.yaml").write_text(recipe)
        created = run(sys.executable, "-m", "prefect", "automation", "create", "--from-file", "wap-blocked.yaml")
        assert created.returncode == 0, created.stdout + created.stderr
        automations = httpx.post(f"{server.api_url}/automations/filter", json={}, timeout=30).json()
        assert [a["name"] for a in automations] == ["wap blocked a publish"]

        bad = tmp_path / "bad.parquet"
        pq.write_table(corrupt(generate_titanic(300, seed=5), "bad_pclass"), bad)
        lake = str(tmp_path / "lake")
        blocked = run(sys.executable, "-m", "flows.cli", "run", "titanic", "--source", str(bad), "--lakehouse", lake)
        assert blocked.returncode == 1, blocked.stdout + blocked.stderr
        branch = re.search(r"[\w-]+\.wap_titanic_\d{8}t\d{6}z_[0-9a-f]{8}", blocked.stdout + blocked.stderr)

        deadline = time.monotonic() + 120
        while not Received.posts and time.monotonic() < deadline:
            time.sleep(0.5)
        assert Received.posts, f"no notification within 120 s; server log:\n{server.log_tail(40)}"
        [note] = Received.posts
        assert note["subject"] == "WAP blocked titanic"
        assert re.fullmatch(r"\d+ of \d+ rules failed on branch \S+\.wap_titanic_\S+: .*expect_\w+.*", note["body"])
        assert branch is not None and f"on branch {branch.group(0)}:" in note["body"]
    finally:
        server.stop()
        hook.shutdown()
