"""The Bauplan API key never appears in output, errors, artifacts, events or the Prefect database.

The hosted service is unreachable here, so the gate's Bauplan error paths are what runs: connection
failures (retried, then reported) and a bad profile. A recognisable fake key is planted and searched for.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from gate_fixtures import run_cli, run_cli_process

FAKE_KEY = "bpk-FAKE-SECRET-SENTINEL-7f3a9c"


def _prefect_db_text() -> str:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    path = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        dump = []
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):
                dump.append(repr(row))
    finally:
        con.close()
    return "\n".join(dump)


@pytest.mark.subprocess
def test_fake_key_never_leaks_from_bauplan_error_paths(prefect_api, tmp_path, monkeypatch):
    env = {"PREFECT_API_URL": prefect_api, "BAUPLAN_API_KEY": FAKE_KEY, "WAP_USER": "tester"}
    # One real process (what the SDK and Prefect print at start-up and exit is there too), the rest in-process.
    runs = [
        run_cli_process(
            "run", "titanic", "--backend", "bauplan", "--source", "s3://no-such-bucket/titanic.csv", env=env
        ),
        run_cli("branches", "--backend", "bauplan", env=env),
        run_cli("query", "select 1", "--backend", "bauplan", env=env),
        run_cli(
            "run",
            "titanic",
            "--backend",
            "bauplan",
            env={**env, "BAUPLAN_PROFILE": "no-such-profile", "HOME": str(tmp_path)},
        ),
    ]
    for result in runs:
        assert result.returncode in (2, 3), result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert FAKE_KEY not in result.stdout + result.stderr
        assert result.stderr.strip(), "an error message is expected"

    # In process: the exception the flow raises, and every artifact and event it left on the server.
    from flows.gate import wap
    from flows.lakehouse import LakehouseError

    monkeypatch.setenv("BAUPLAN_API_KEY", FAKE_KEY)
    with pytest.raises(LakehouseError) as raised:
        wap("titanic", source="s3://no-such-bucket/titanic.csv", backend="bauplan", branch="tester.wap_secret_check")
    assert FAKE_KEY not in str(raised.value) and FAKE_KEY not in repr(raised.value)

    artifacts = httpx.post(f"{prefect_api}/artifacts/filter", json={"limit": 200, "offset": 0}, timeout=30).json()
    assert any("titanic" in (a.get("key") or "") for a in artifacts)
    assert FAKE_KEY not in str(artifacts)
    events = httpx.post(f"{prefect_api}/events/filter", json={"limit": 200}, timeout=30).json()
    assert FAKE_KEY not in str(events)
    logs = httpx.post(f"{prefect_api}/logs/filter", json={"limit": 200, "offset": 0}, timeout=30).json()
    assert logs and FAKE_KEY not in str(logs)
    assert FAKE_KEY not in _prefect_db_text()
