"""`wap suite diff` shows an added rule with its arguments, and a removed one with its own (issue 15 item 10), as it
shows a changed rule's changed arguments. A private copy of gx/ in its own git repository, `wap suite diff` in
process."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from gate_fixtures import REPO, run_cli


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True, capture_output=True
    )


def test_diff_shows_the_arguments_of_added_and_removed_rules(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    gx = repo / "gx"
    shutil.copytree(REPO / "gx", gx, ignore=shutil.ignore_patterns("uncommitted"))
    _git(repo, "init", "-q")
    _git(repo, "add", "gx")
    _git(repo, "commit", "-q", "-m", "suites")

    path = gx / "expectations" / "titanic.json"
    suite = json.loads(path.read_text())
    exps = suite["expectations"]
    removed = next(
        e for e in exps if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "Age"
    )
    exps.remove(removed)
    exps.append(
        {
            "type": "expect_column_most_common_value_to_be_in_set",
            "kwargs": {"column": "Embarked", "value_set": ["S", "C"], "ties_okay": True},
            "severity": "warning",
        }
    )
    exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Cabin", "mostly": 0.2}})
    path.write_text(json.dumps(suite, indent=2))

    result = run_cli("suite", "diff", "titanic", env={"WAP_GX_DIR": str(gx), "WAP_DATASETS": str(gx / "datasets.yml")})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # A rule's details span lines of its table row: the rows from its "added"/"removed" line to the next change.
    rows = [line for line in out.splitlines() if line.startswith("│")]

    def cell(kind: str, type_: str) -> str:
        start = next(i for i, r in enumerate(rows) if kind in r and type_ in r)
        end = next((i for i in range(start + 1, len(rows)) if rows[i].split("│")[1].strip()), len(rows))
        return "\n".join(rows[start:end])

    added = cell("added", "expect_column_most_common_value_to_be_in_set")
    assert "Embarked" in added and 'value_set: ["S", "C"]' in added and "ties_okay: true" in added, out
    assert 'severity: "warning"' in added, out
    assert "mostly: 0.2" in cell("added", "expect_column_values_to_not_be_null"), out
    gone = cell("removed", "expect_column_values_to_be_between")
    assert "Age" in gone, out
    for key in ("min_value", "max_value"):
        assert f"{key}: {json.dumps(removed['kwargs'][key])}" in gone, out
    assert "2 added, 1 removed, 0 changed" in out
