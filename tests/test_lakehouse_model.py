"""A stateful model test of the embedded lakehouse: random operation sequences against an in-memory model.

Hypothesis drives `flows.lakehouse.connect("local", DIR)` (real files, real SQLite, real processes) with
random sequences of branch creation (from a head or from `branch@hash` of a past commit) and deletion,
table creation (replace or not), appends from Parquet/CSV files (columns sometimes in another order,
sometimes zero rows), merges (fast-forward, three-way, conflicting), reads (`scan`, `query`,
`get_tables`, `get_commits`) at heads and past commits, `wap gc` of gate-named branches, two clients
writing together, and SIGKILLed writer processes. The model is a plain dict: refs -> commit, commit ->
parents and {table: version}, version -> (columns, multiset of rows).

Semantics the model encodes (README "Lakehouse backends"):
- a write on `branch` (or on `branch@<its head>`) adds one commit whose parent is the head; a write on
  a past commit is refused (InvalidNameError); an append of zero rows adds no commit;
- a writer whose branch head moved while it worked is rebased when the table it changes is still the
  same table version it started from, else ConcurrentUpdateError and nothing changes;
- a merge is a no-op when the source is already in the target, a fast-forward (one commit carrying the
  source's tables, parents [target, source]) when the target is an ancestor of the source, otherwise
  three-way against the newest common ancestor: a table changed on both sides to different versions
  is a conflict (MergeConflictError naming them) and the target is exactly unchanged;
- a SIGKILLed write leaves the catalog in exactly the state before or after that write.

After every step: the branch list and heads, every distinct head's tables (names, record counts,
metadata locations) and full commit log (order, parents), main's history only grows, one sampled
past commit's table scans the same rows. Writes scan what they wrote; a delete re-reads every other
head. Teardown reads every reachable commit and scans every table version once.

Budget (defaults keep this file near a minute on 2 shared cores):
    WAP_MODEL_EXAMPLES=12 WAP_MODEL_STEPS=20  sequences and steps per sequence
    WAP_MODEL_CRASH_PERCENT=20                share of crash-rule picks that really start and kill a worker
    WAP_MODEL_DB=DIR                          Hypothesis example database (default: a temp folder)
Long run, e.g.: `WAP_MODEL_EXAMPLES=500 WAP_MODEL_STEPS=60 nice -n 10 uv run pytest tests/test_lakehouse_model.py -q
-p no:cacheprovider -s`. The figures (sequences, steps, per-operation counts, failures) are printed at the end.
"""

from __future__ import annotations

import collections
import functools
import http.server
import inspect
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from lakehouse_worker import worker_env

import flows.lakehouse.errors as lakehouse_errors
from flows.gate.gc import collect_stale_branches
from flows.gate.naming import is_gate_branch
from flows.lakehouse import (
    MAIN,
    BranchExistsError,
    BranchNotFoundError,
    ConcurrentUpdateError,
    InvalidNameError,
    LakehouseError,
    MergeConflictError,
    SourceError,
    TableExistsError,
    TableNotFoundError,
    connect,
)

EXAMPLES = int(os.environ.get("WAP_MODEL_EXAMPLES", "12"))
STEPS = int(os.environ.get("WAP_MODEL_STEPS", "20"))
CRASH_PERCENT = int(os.environ.get("WAP_MODEL_CRASH_PERCENT", "20"))
WORKER = Path(__file__).with_name("model_worker.py")

# Two column sets with different names: an append of the other kind is refused by name, deterministically.
KINDS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "A": (("id", pa.int64()), ("name", pa.string())),
    "B": (("id", pa.int64()), ("score", pa.float64())),
}
# Values that read back the same from CSV (no numeric-looking text, no null markers, exact floats).
SECOND = {"A": st.sampled_from(["a", "b", "xy", "n1", None]), "B": st.sampled_from([0.5, 1.25, -3.5, 2.75])}
# "main.t1": a namespace named like DuckDB's own schema, next to the default namespace's t1.
TABLE_KEYS = ("bauplan.t1", "bauplan.t2", "main.t1")
GATE_BRANCHES = ("alice.wap_orders_0123abcd", "bob.wap_titanic_deadbeef")
BRANCH_POOL = ("dev", "alice.feature", "bob.x-1", "alice.wap_orders_0123abcdx", *GATE_BRANCHES)

FIGURES: Counter[str] = Counter()


# --------------------------------------------------------------------------------------------- model
@dataclass
class Version:
    """One state of one table: what a metadata file holds. `location` is learnt when it lands."""

    kind: str
    rows: Counter
    location: str = ""


@dataclass
class MCommit:
    parents: tuple[str, ...]
    tree: dict[str, int]  # table key -> version id
    seq: int  # creation order (get_commits lists newest first)


@dataclass
class Outcome:
    """What a write should do: raise `exc`, or succeed with one of the effects below."""

    exc: type[BaseException] | None = None
    branch: str | None = None  # the branch that gets a new commit
    parents: list[str] = field(default_factory=list)
    tree: dict[str, int] | None = None
    noop: bool = False  # succeeds without any change
    ref_create: tuple[str, str] | None = None
    ref_delete: str | None = None
    conflicts: list[str] | None = None
    label: str = ""  # for the figures: which kind of merge


class Model:
    def __init__(self, root_hash: str) -> None:
        self.commits: dict[str, MCommit] = {root_hash: MCommit((), {}, 0)}
        self.refs: dict[str, str] = {MAIN: root_hash}
        self.versions: list[Version] = []
        self.main_heads: list[str] = [root_hash]
        self._ancestors: dict[str, frozenset[str]] = {}

    def add_commit(self, commit_hash: str, parents: list[str], tree: dict[str, int]) -> None:
        assert commit_hash not in self.commits, f"commit {commit_hash} reused"
        self.commits[commit_hash] = MCommit(tuple(parents), dict(tree), len(self.commits))

    def ancestors(self, commit_hash: str) -> frozenset[str]:
        if commit_hash not in self._ancestors:  # commits are immutable: memoized forever
            seen, todo = set(), [commit_hash]
            while todo:
                h = todo.pop()
                if h not in seen:
                    seen.add(h)
                    todo.extend(self.commits[h].parents)
            self._ancestors[commit_hash] = frozenset(seen)
        return self._ancestors[commit_hash]

    def tree(self, commit_hash: str) -> dict[str, int]:
        return self.commits[commit_hash].tree

    def version(self, commit_hash: str, key: str) -> Version | None:
        vid = self.tree(commit_hash).get(key)
        return None if vid is None else self.versions[vid]

    def new_version(self, kind: str, rows: Counter) -> int:
        self.versions.append(Version(kind, Counter(rows)))
        return len(self.versions) - 1

    def reachable(self) -> dict[str, str]:
        """Every commit some ref can read, with one branch that reaches it."""
        out: dict[str, str] = {}
        for branch, head in sorted(self.refs.items()):
            for h in self.ancestors(head):
                out.setdefault(h, branch)
        return out

    # -- predictions
    def predict_import(self, branch: str, is_head: bool, base: str, key: str, kind: str, rows: list) -> Outcome:
        if not is_head:
            return Outcome(InvalidNameError)
        current = self.tree(base).get(key)
        if current is None:
            return Outcome(TableNotFoundError)
        if self.versions[current].kind != kind:
            return Outcome(SourceError)
        if not rows:
            return Outcome(noop=True)  # nothing appended, no commit
        head = self.refs.get(branch)
        if head is None:
            return Outcome(BranchNotFoundError)
        if head != base and self.tree(head).get(key) != current:
            return Outcome(ConcurrentUpdateError)
        vid = self.new_version(kind, self.versions[current].rows + Counter(rows))
        return Outcome(branch=branch, parents=[head], tree={**self.tree(head), key: vid})

    def predict_create(self, branch: str, is_head: bool, base: str, key: str, kind: str, replace: bool) -> Outcome:
        if not is_head:
            return Outcome(InvalidNameError)
        if key in self.tree(base) and not replace:
            return Outcome(TableExistsError)
        head = self.refs.get(branch)
        if head is None:
            return Outcome(BranchNotFoundError)
        if head != base and self.tree(head).get(key) != self.tree(base).get(key):
            return Outcome(ConcurrentUpdateError)
        vid = self.new_version(kind, Counter())
        return Outcome(branch=branch, parents=[head], tree={**self.tree(head), key: vid})

    def predict_merge(self, source: str, into: str) -> Outcome:
        target = self.refs.get(into)
        if target is None:
            return Outcome(BranchNotFoundError)
        if source in self.ancestors(target):
            return Outcome(noop=True)
        if target in self.ancestors(source):
            return Outcome(branch=into, parents=[target, source], tree=dict(self.tree(source)), label="fast-forward")
        common = self.ancestors(source) & self.ancestors(target)
        base = max(common, key=lambda h: self.commits[h].seq)  # the newest common ancestor
        base_tree, ours, theirs = self.tree(base), self.tree(target), self.tree(source)
        keys = set(base_tree) | set(ours) | set(theirs)
        changed_ours = {k for k in keys if ours.get(k) != base_tree.get(k)}
        changed_theirs = {k for k in keys if theirs.get(k) != base_tree.get(k)}
        conflicts = sorted(k for k in changed_ours & changed_theirs if ours.get(k) != theirs.get(k))
        if conflicts:
            return Outcome(MergeConflictError, conflicts=conflicts)
        tree = dict(ours)
        for k in changed_theirs:
            if theirs.get(k) is None:
                tree.pop(k, None)
            else:
                tree[k] = theirs[k]
        return Outcome(branch=into, parents=[target, source], tree=tree, label="three-way")

    def predict_create_branch(self, name: str, commit_hash: str) -> Outcome:
        if name in self.refs:
            return Outcome(BranchExistsError)
        return Outcome(ref_create=(name, commit_hash))

    def predict_delete_branch(self, name: str) -> Outcome:
        if name == MAIN:
            return Outcome(InvalidNameError)
        if name not in self.refs:
            return Outcome(BranchNotFoundError)
        return Outcome(ref_delete=name)


# -------------------------------------------------------------------------- real parts: sources, server
def write_source(directory: Path, kind: str, rows: list, fmt: str, reverse: bool) -> Path:
    columns = KINDS[kind]
    table = pa.table({name: pa.array([r[i] for r in rows], type_) for i, (name, type_) in enumerate(columns)})
    if reverse:
        table = table.select(list(reversed(table.column_names)))
    path = directory / f"{uuid.uuid4().hex[:10]}.{fmt}"
    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def chance(data, probability: float, label: str) -> bool:
    # Integers, not floats: Hypothesis draws 0.0 and other edge floats far more often than their share.
    return data.draw(st.integers(0, 99), label=label) < probability * 100


def rows_of(table: pa.Table, kind: str) -> Counter:
    names = [name for name, _ in KINDS[kind]]
    assert sorted(table.column_names) == sorted(names), f"columns {table.column_names}, expected {names}"
    return Counter(zip(table.column(names[0]).to_pylist(), table.column(names[1]).to_pylist(), strict=True))


class GatedServer:
    """A real HTTP server on localhost whose answers wait for a gate: a source download that holds a
    writer still, after it pinned its base commit and before it commits, while another client writes."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[Path, threading.Event, threading.Event]] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                token = self.path.strip("/").split("/", 1)[0]
                entry = outer.files.get(token)
                if entry is None:
                    self.send_error(404)
                    return
                path, arrived, gate = entry
                arrived.set()
                gate.wait(60)
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def gated(self, path: Path) -> tuple[str, threading.Event, threading.Event]:
        token = uuid.uuid4().hex
        arrived, gate = threading.Event(), threading.Event()
        self.files[token] = (path, arrived, gate)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{token}/{path.name}", arrived, gate


class Standby:
    """One warm writer process (tests/model_worker.py) waiting for an operation; a new one warms up
    in the background after each use, while the next steps run."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def spawn(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=worker_env(),
        )

    def take(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.spawn()
        proc, self.proc = self.proc, None
        line = read_line(proc, 120)
        assert line and json.loads(line).get("warm"), f"worker did not warm up: {line!r}"
        return proc

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


SERVER: GatedServer | None = None
STANDBY = Standby()
# Running estimate of how long each operation takes in a warm worker: kills land in [0, 1.3 x that].
OP_SECONDS: dict[str, float] = collections.defaultdict(lambda: 0.15)
BASE_DIR: list[Path] = []


def counted(fn):
    """Count each step, and the steps and sequences that fail (Hypothesis re-runs failures to shrink them)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        FIGURES["steps" if not fn.__name__.startswith("inv_") else "invariant_checks"] += 1
        try:
            return fn(self, *args, **kwargs)
        except Exception:  # not BaseException: Hypothesis ends a sequence with its own StopTest
            if not self.failed:
                FIGURES["failing_sequences"] += 1
            self.failed = True
            raise

    return wrapper


# ------------------------------------------------------------------------------------- the state machine
class LakehouseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        FIGURES["sequences"] += 1
        self.failed = False
        self.dir = Path(tempfile.mkdtemp(prefix="seq-", dir=BASE_DIR[0]))
        self.sources = self.dir / "sources"
        self.sources.mkdir()
        self.client = connect("local", self.dir / "lakehouse", author="model")
        self.model = Model(self.client.get_branch(MAIN).hash)
        self.rng = random.Random(0)  # picks the past commit each step re-reads: the same for the same sequence

    # -- drawing helpers
    def draw_ref(self, data, *, past_share: float = 0.3) -> tuple[str, str, str, bool]:
        """(ref, branch, commit, is_head): a branch name, or branch@hash of a commit in its history."""
        branch = data.draw(st.sampled_from(sorted(self.model.refs)), label="branch")
        head = self.model.refs[branch]
        if not chance(data, past_share, "past?"):
            return branch, branch, head, True
        history = sorted(self.model.ancestors(head), key=lambda h: self.model.commits[h].seq)
        commit = data.draw(st.sampled_from(history), label="commit")
        width = data.draw(st.sampled_from([8, 12, 64]), label="prefix")
        if sum(h.startswith(commit[:width]) for h in self.model.commits) > 1:
            width = 64  # an ambiguous prefix is no ref; keep the draw meaningful
        return f"{branch}@{commit[:width]}", branch, commit, commit == head

    def draw_table_args(self, data, key: str) -> tuple[str, str | None]:
        namespace, name = key.split(".")
        form = data.draw(st.sampled_from(["qualified", "namespace=", "default"]), label="table form")
        if form == "qualified":
            return key, None
        if form == "default" and namespace == "bauplan":
            return name, None
        return name, namespace

    def draw_rows(self, data, kind: str, min_size: int, max_size: int) -> list:
        return data.draw(
            st.lists(st.tuples(st.integers(0, 20), SECOND[kind]), min_size=min_size, max_size=max_size), label="rows"
        )

    def draw_source(self, data, kind: str, rows: list) -> Path:
        fmt = "parquet" if not rows else data.draw(st.sampled_from(["csv", "parquet"]), label="format")
        return write_source(self.sources, kind, rows, fmt, data.draw(st.booleans(), label="reversed columns"))

    def draw_kind_for(self, data, commit_hash: str, key: str) -> str:
        current = self.model.version(commit_hash, key)
        if current is not None and chance(data, 0.85, "matching kind?"):
            return current.kind
        return data.draw(st.sampled_from(sorted(KINDS)), label="kind")

    # -- calling and applying
    def call(self, outcome: Outcome, fn, *args, **kwargs):
        if outcome.exc is None:
            return fn(*args, **kwargs)
        try:
            fn(*args, **kwargs)
        except outcome.exc as exc:
            FIGURES[f"expected {outcome.exc.__name__}"] += 1
            return exc
        except LakehouseError as exc:
            raise AssertionError(f"expected {outcome.exc.__name__}, got {type(exc).__name__}: {exc}") from exc
        raise AssertionError(f"expected {outcome.exc.__name__}, but the call succeeded")

    def apply(self, outcome: Outcome) -> str | None:
        """Record a successful outcome in the model after checking the catalog shows it; return the new head."""
        assert outcome.exc is None
        if outcome.ref_create:
            name, commit = outcome.ref_create
            self.model.refs[name] = commit
            return None
        if outcome.ref_delete:
            del self.model.refs[outcome.ref_delete]
            return None
        if outcome.noop:
            return None
        branch = outcome.branch
        new = self.client.get_branch(branch).hash
        assert new != self.model.refs[branch], f"{branch} did not move"
        last = self.client.get_commits(f"{branch}@{new}", limit=1)
        assert [c.hash for c in last] == [new]
        assert last[0].parent_hashes == outcome.parents, f"parents {last[0].parent_hashes} != {outcome.parents}"
        self.model.add_commit(new, outcome.parents, outcome.tree)
        self.model.refs[branch] = new
        if branch == MAIN:
            self.model.main_heads.append(new)
        for key, vid in outcome.tree.items():
            version = self.model.versions[vid]
            if not version.location:
                version.location = self.client.get_table(key, f"{branch}@{new}").metadata_location
        return new

    def check_scan(self, ref: str, commit_hash: str, key: str) -> None:
        version = self.model.version(commit_hash, key)
        got = self.client.scan(key, ref=ref)
        assert rows_of(got, version.kind) == version.rows, f"{key} on {ref}"

    # -- writes
    def do_import(self, ref, branch, base, is_head, key, kind, rows, source, table, namespace) -> Outcome:
        outcome = self.model.predict_import(branch, is_head, base, key, kind, rows)
        result = self.call(outcome, self.client.import_data, table, str(source), branch=ref, namespace=namespace)
        if outcome.exc is None:
            assert result.rows == len(rows) and result.table == key
            new = self.apply(outcome)
            if new:
                self.check_scan(branch, new, key)
            else:
                assert self.client.get_branch(branch).hash == base, "an empty import moved the branch"
        return outcome

    def do_create(self, ref, branch, base, is_head, key, kind, replace, source, table, namespace) -> Outcome:
        outcome = self.model.predict_create(branch, is_head, base, key, kind, replace)
        result = self.call(
            outcome, self.client.create_table, table, str(source), branch=ref, namespace=namespace, replace=replace
        )
        if outcome.exc is None:
            new = self.apply(outcome)
            version = self.model.version(new, key)
            assert (result.fqn, result.records, result.metadata_location) == (key, 0, version.location)
            assert sorted(f.name for f in result.fields) == sorted(name for name, _ in KINDS[kind])
            self.check_scan(branch, new, key)
        return outcome

    def do_merge(self, source_ref, source_hash, into, message) -> Outcome:
        outcome = self.model.predict_merge(source_hash, into)
        before = dict(self.model.refs)
        result = self.call(outcome, self.client.merge_branch, source_ref, into, commit_message=message)
        if outcome.exc is MergeConflictError:
            assert result.tables == outcome.conflicts, f"conflicts {result.tables} != {outcome.conflicts}"
            assert {b.name: b.hash for b in self.client.get_branches()} == before, "a conflict changed a ref"
        if outcome.exc is None:
            new = self.apply(outcome)
            if new is None:
                assert result == self.model.refs[into], "a no-op merge returned another head"
                FIGURES["merge no-op"] += 1
                return outcome
            assert result == new
            FIGURES[f"merge {outcome.label}"] += 1
            log = self.client.get_commits(into, limit=1)[0]
            assert log.message == (message or f"merge {source_ref} into {into}")
            for key in outcome.tree:
                self.check_scan(into, new, key)
        return outcome

    # ------------------------------------------------------------------------------------------- rules
    @initialize(data=st.data())
    @counted
    def start(self, data):
        """A table or two on main and a branch from it, so that most sequences reach merges that diverge."""
        root = self.model.refs[MAIN]
        for key in data.draw(st.sampled_from([TABLE_KEYS[:1], TABLE_KEYS[:2], TABLE_KEYS]), label="tables"):
            kind = data.draw(st.sampled_from(sorted(KINDS)), label="kind")
            source = self.draw_source(data, kind, self.draw_rows(data, kind, 1, 3))
            head = self.model.refs[MAIN]
            self.do_create(MAIN, MAIN, head, True, key, kind, False, source, key, None)
            rows = self.draw_rows(data, kind, 1, 5)
            head = self.model.refs[MAIN]
            self.do_import(MAIN, MAIN, head, True, key, kind, rows, self.draw_source(data, kind, rows), key, None)
        name = data.draw(st.sampled_from(BRANCH_POOL), label="branch")
        from_ref = data.draw(st.sampled_from([MAIN, f"{MAIN}@{root}"]), label="from")
        self.client.create_branch(name, from_ref)
        self.apply(self.model.predict_create_branch(name, self.model.refs[MAIN] if from_ref == MAIN else root))

    @rule(data=st.data())
    @counted
    def create_branch(self, data):
        name = data.draw(st.sampled_from(BRANCH_POOL + (MAIN,)), label="name")
        ref, _branch, commit, _ = self.draw_ref(data)
        outcome = self.model.predict_create_branch(name, commit)
        result = self.call(outcome, self.client.create_branch, name, ref)
        if outcome.exc is None:
            assert result.hash == commit
            self.apply(outcome)
            FIGURES["create_branch"] += 1

    @rule(data=st.data())
    @counted
    def delete_branch(self, data):
        names = sorted(set(self.model.refs) | {MAIN, BRANCH_POOL[0]})
        name = data.draw(st.sampled_from(names), label="name")
        outcome = self.model.predict_delete_branch(name)
        self.call(outcome, self.client.delete_branch, name)
        if outcome.exc is None:
            self.apply(outcome)
            FIGURES["delete_branch"] += 1
            # Nothing another ref reads may go with it: scan every table of every remaining head.
            for head, branch in {h: b for b, h in sorted(self.model.refs.items())}.items():
                for key in self.model.tree(head):
                    self.check_scan(branch, head, key)

    @rule(data=st.data())
    @counted
    def create_table(self, data):
        ref, branch, commit, is_head = self.draw_ref(data, past_share=0.15)
        key = data.draw(st.sampled_from(TABLE_KEYS), label="table")
        kind = data.draw(st.sampled_from(sorted(KINDS)), label="kind")
        source = self.draw_source(data, kind, self.draw_rows(data, kind, 1, 3))
        table, namespace = self.draw_table_args(data, key)
        replace = data.draw(st.booleans(), label="replace")
        self.do_create(ref, branch, commit, is_head, key, kind, replace, source, table, namespace)
        FIGURES["create_table"] += 1

    @rule(data=st.data())
    @counted
    def import_data(self, data):
        self.draw_and_import(data)

    def draw_and_import(self, data) -> None:
        ref, branch, commit, is_head = self.draw_ref(data, past_share=0.15)
        tables = sorted(self.model.tree(commit))
        key = data.draw(st.sampled_from(tables if tables and data.draw(st.booleans()) else TABLE_KEYS), label="table")
        kind = self.draw_kind_for(data, commit, key)
        rows = self.draw_rows(data, kind, 0, 5)
        source = self.draw_source(data, kind, rows)
        table, namespace = self.draw_table_args(data, key)
        self.do_import(ref, branch, commit, is_head, key, kind, rows, source, table, namespace)
        FIGURES["import_data"] += 1

    @rule(data=st.data())
    @counted
    def import_data_again(self, data):
        """Appends are most of what a lakehouse sees: a second rule doubles their share."""
        self.draw_and_import(data)

    @rule(data=st.data())
    @counted
    def merge_branch(self, data):
        source_ref, _branch, source_hash, _ = self.draw_ref(data, past_share=0.2)
        others = sorted(set(self.model.refs) - {_branch})
        # Mostly another branch: a branch merged into itself (or its own past) is a no-op.
        into = data.draw(st.sampled_from(others if others and chance(data, 0.9, "other?") else [_branch]), label="into")
        message = data.draw(st.sampled_from([None, "publish"]), label="message")
        self.do_merge(source_ref, source_hash, into, message)
        FIGURES["merge_branch"] += 1

    @rule(data=st.data())
    @counted
    def diverge_then_merge(self, data):
        """Writes on both sides of a branch point, then a merge: three-way, clean or conflicting."""
        ours = data.draw(st.sampled_from(sorted(self.model.refs)), label="into")
        theirs = data.draw(st.sampled_from([b for b in BRANCH_POOL if b != ours]), label="source")
        if theirs not in self.model.refs:
            outcome = self.model.predict_create_branch(theirs, self.model.refs[ours])
            self.client.create_branch(theirs, ours)
            self.apply(outcome)
        for branch in (ours, theirs):
            head = self.model.refs[branch]
            key = data.draw(st.sampled_from(TABLE_KEYS), label="table")
            current = self.model.version(head, key)
            if current is None:
                kind = data.draw(st.sampled_from(sorted(KINDS)), label="kind")
                source = self.draw_source(data, kind, self.draw_rows(data, kind, 1, 2))
                self.do_create(branch, branch, head, True, key, kind, False, source, key, None)
            else:
                rows = self.draw_rows(data, current.kind, 1, 3)
                source = self.draw_source(data, current.kind, rows)
                self.do_import(branch, branch, head, True, key, current.kind, rows, source, key, None)
        self.do_merge(theirs, self.model.refs[theirs], ours, data.draw(st.sampled_from([None, "publish"])))
        FIGURES["diverge_then_merge"] += 1

    @rule(data=st.data())
    @counted
    def scan(self, data):
        ref, _branch, commit, _ = self.draw_ref(data, past_share=0.5)
        key = data.draw(st.sampled_from(TABLE_KEYS), label="table")
        version = self.model.version(commit, key)
        if version is None:
            with pytest.raises(TableNotFoundError):
                self.client.scan(key, ref=ref)
            return
        threshold = data.draw(st.one_of(st.none(), st.integers(0, 20)), label="id >=")
        got = self.client.scan(key, ref=ref, filters=None if threshold is None else f"id >= {threshold}")
        expected = Counter({r: n for r, n in version.rows.items() if threshold is None or r[0] >= threshold})
        assert rows_of(got, version.kind) == expected, f"scan {key} on {ref} (id >= {threshold})"
        FIGURES["scan"] += 1

    @rule(data=st.data())
    @counted
    def query(self, data):
        ref, _branch, commit, _ = self.draw_ref(data, past_share=0.5)
        tree = sorted(self.model.tree(commit))
        if not tree:
            return
        key = data.draw(st.sampled_from(tree), label="table")
        version = self.model.version(commit, key)
        namespace, name = key.split(".")
        threshold = data.draw(st.integers(0, 20), label="id >=")
        counted_rows = self.client.query(
            f'SELECT count(*) AS n FROM "{namespace}"."{name}" WHERE id >= {threshold}', ref=ref
        ).to_pylist()
        assert counted_rows == [{"n": sum(n for r, n in version.rows.items() if r[0] >= threshold)}]
        sql = f"SELECT * FROM {name}" if namespace == "bauplan" else f'SELECT * FROM "{namespace}"."{name}"'
        assert rows_of(self.client.query(sql, ref=ref), version.kind) == version.rows, f"{sql} on {ref}"
        FIGURES["query"] += 1

    @rule(data=st.data())
    @counted
    def get_tables_and_commits(self, data):
        ref, _branch, commit, _ = self.draw_ref(data, past_share=0.6)
        self.check_tables(ref, commit)
        limit = data.draw(st.one_of(st.none(), st.integers(1, 5)), label="limit")
        self.check_log(ref, commit, limit)
        FIGURES["get_tables+get_commits"] += 1

    @precondition(lambda self: any(is_gate_branch(b) for b in self.model.refs))
    @rule()
    @counted
    def gc_stale_gate_branches(self):
        expected = sorted(b for b in self.model.refs if is_gate_branch(b))
        kwargs = {"force": True} if "force" in inspect.signature(collect_stale_branches).parameters else {}
        found = collect_stale_branches(self.client, older_than=timedelta(0), **kwargs)
        assert [(s.name, s.deleted) for s in found] == [(b, True) for b in expected]
        for name in expected:
            del self.model.refs[name]
        FIGURES["gc"] += 1
        FIGURES["gc deleted"] += len(expected)

    @rule(data=st.data())
    @counted
    def concurrent_writers(self, data):
        """A second client pins its base, waits on its source download while this client writes, then commits."""
        branch = data.draw(st.sampled_from(sorted(self.model.refs)), label="T branch")
        base = self.model.refs[branch]
        tree0 = self.model.tree(base)
        op = "import" if tree0 and data.draw(st.booleans(), label="T import?") else "create"
        if op == "import":
            key = data.draw(st.sampled_from(sorted(tree0)), label="T table")
            kind = self.draw_kind_for(data, base, key)
            rows = self.draw_rows(data, kind, 1, 4)
        else:
            key = data.draw(st.sampled_from(TABLE_KEYS), label="T table")
            kind = data.draw(st.sampled_from(sorted(KINDS)), label="T kind")
            rows = self.draw_rows(data, kind, 1, 2)
            replace = chance(data, 0.8 if key in tree0 else 0.3, "T replace")
        source = self.draw_source(data, kind, rows)
        url, arrived, gate = SERVER.gated(source)
        other = connect("local", self.client.root, author="writer2")
        result: dict[str, object] = {}

        def writer() -> None:
            try:
                if op == "import":
                    result["value"] = other.import_data(key, url, branch=branch)
                else:
                    result["value"] = other.create_table(key, url, branch=branch, replace=replace)
            except BaseException as exc:  # handed to the test thread
                result["error"] = exc

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            assert arrived.wait(60), f"the second writer never reached its download: {result}"
            self.interfere(data, branch, key)
        finally:
            gate.set()
            thread.join(120)
        assert not thread.is_alive(), "the second writer hung"
        if op == "import":
            outcome = self.model.predict_import(branch, True, base, key, kind, rows)
        else:
            outcome = self.model.predict_create(branch, True, base, key, kind, replace)
        error = result.get("error")
        if outcome.exc is None:
            if error is not None:
                raise AssertionError(f"second writer failed: {type(error).__name__}: {error}") from error
            new = self.apply(outcome)
            self.check_scan(branch, new, key)
            FIGURES["concurrent: rebased" if outcome.parents != [base] else "concurrent: head unmoved"] += 1
        else:
            assert isinstance(error, outcome.exc), f"second writer: expected {outcome.exc.__name__}, got {error!r}"
            FIGURES[f"concurrent: {outcome.exc.__name__}"] += 1

    def interfere(self, data, branch: str, key: str) -> None:
        """The first client's write while the second waits (or none)."""
        what = data.draw(
            st.sampled_from(["same table", "other table", "merge into", "other branch", "delete", "none"]),
            label="interferer",
        )
        FIGURES[f"interferer: {what}"] += 1
        target, target_key = branch, key
        if what == "none":
            return
        if what == "delete":
            if branch != MAIN:
                outcome = self.model.predict_delete_branch(branch)
                self.call(outcome, self.client.delete_branch, branch)
                self.apply(outcome)
            return
        if what == "merge into":
            source = data.draw(st.sampled_from(sorted(self.model.refs)), label="merged")
            self.do_merge(source, self.model.refs[source], branch, None)
            return
        if what == "other table":
            target_key = data.draw(st.sampled_from([k for k in TABLE_KEYS if k != key]), label="other key")
        if what == "other branch":
            target = data.draw(st.sampled_from(sorted(self.model.refs)), label="other branch")
            target_key = data.draw(st.sampled_from(TABLE_KEYS), label="key")
        head = self.model.refs[target]
        current = self.model.version(head, target_key)
        if current is not None:
            rows = self.draw_rows(data, current.kind, 1, 3)
            source = self.draw_source(data, current.kind, rows)
            self.do_import(target, target, head, True, target_key, current.kind, rows, source, target_key, None)
        else:
            kind = data.draw(st.sampled_from(sorted(KINDS)), label="kind")
            source = self.draw_source(data, kind, self.draw_rows(data, kind, 1, 2))
            self.do_create(target, target, head, True, target_key, kind, False, source, target_key, None)

    @rule(data=st.data(), share=st.integers(0, 99))
    @counted
    def crash_point(self, data, share):
        """One write in a separate process, SIGKILLed after a random delay: the catalog must be exactly
        the state before it or the state after it."""
        FIGURES["crash rule picked"] += 1
        if share >= CRASH_PERCENT:
            return
        op = data.draw(st.sampled_from(["import_data", "create_table", "merge_branch", "create_branch", "delete"]))
        lake = str(self.client.root)
        if op in ("import_data", "create_table"):
            branch = data.draw(st.sampled_from(sorted(self.model.refs)), label="branch")
            head = self.model.refs[branch]
            key = data.draw(st.sampled_from(TABLE_KEYS), label="table")
            kind = self.draw_kind_for(data, head, key)
            rows = self.draw_rows(data, kind, 1, 40)
            source = self.draw_source(data, kind, rows)
            spec = {"op": op, "table": key, "namespace": None, "source": str(source), "branch": branch}
            if op == "import_data":
                outcome = self.model.predict_import(branch, True, head, key, kind, rows)
            else:
                spec["replace"] = True
                outcome = self.model.predict_create(branch, True, head, key, kind, True)
        elif op == "merge_branch":
            source_ref, _b, source_hash, _ = self.draw_ref(data, past_share=0.2)
            branch = data.draw(st.sampled_from(sorted(self.model.refs)), label="into")
            head = self.model.refs[branch]
            spec = {"op": op, "source_ref": source_ref, "into": branch}
            outcome = self.model.predict_merge(source_hash, branch)
        elif op == "create_branch":
            name = data.draw(st.sampled_from(BRANCH_POOL), label="name")
            from_ref, _b, commit, _ = self.draw_ref(data)
            spec = {"op": op, "name": name, "from_ref": from_ref}
            outcome = self.model.predict_create_branch(name, commit)
        else:
            name = data.draw(st.sampled_from(sorted(set(self.model.refs) - {MAIN}) or [BRANCH_POOL[0]]), label="name")
            spec = {"op": "delete_branch", "name": name}
            outcome = self.model.predict_delete_branch(name)
        spec["lakehouse"] = lake
        delay = data.draw(st.integers(0, 130), label="delay %") / 100 * OP_SECONDS[spec["op"]]
        proc = STANDBY.take()
        try:
            proc.stdin.write(json.dumps(spec) + "\n")
            proc.stdin.flush()
            assert json.loads(read_line(proc, 60)).get("ready"), "worker not ready"
            proc.stdin.write("go\n")
            proc.stdin.flush()
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            tail = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            STANDBY.spawn()  # the next one warms up while the following steps run
        finished = json.loads(tail.splitlines()[0]) if tail.strip() else None
        if finished is not None:
            OP_SECONDS[spec["op"]] = 0.7 * OP_SECONDS[spec["op"]] + 0.3 * finished["seconds"]
        FIGURES["crash: finished before the kill" if finished else "crash: killed mid-operation"] += 1
        # Which state is it? Decided by the catalog alone.
        real = {b.name: b.hash for b in self.client.get_branches()}
        if outcome.ref_create:
            landed = outcome.ref_create[0] in real
        elif outcome.ref_delete:
            landed = outcome.ref_delete not in real
        elif outcome.branch:
            landed = real.get(outcome.branch) != self.model.refs[outcome.branch]
        else:  # an expected error or a no-op: nothing may change
            landed = False
            assert real == self.model.refs, f"{spec['op']} expected {outcome.exc or 'no-op'} but changed refs"
        if finished is not None:
            # The model predicts an error's family, as the in-process rules catch it (`except outcome.exc`): a
            # source whose columns do not fit the table is a SchemaMismatchError, a SourceError (found by CI).
            said = finished.get("error")
            raised = getattr(lakehouse_errors, said, None) if said else None
            if outcome.exc is None:
                assert said is None, f"worker said {finished}, model {outcome}"
            else:
                assert isinstance(raised, type) and issubclass(raised, outcome.exc), (
                    f"worker said {finished}, model {outcome}"
                )
            assert landed or outcome.exc is not None or outcome.noop, "the worker finished but nothing landed"
        if landed:
            self.apply(outcome)
        assert real == self.model.refs, f"after a kill in {spec['op']}: refs are neither before nor after"
        FIGURES["crash: state after" if landed else "crash: state before"] += 1

    # ---------------------------------------------------------------------------------------- invariants
    def check_tables(self, ref: str, commit_hash: str) -> None:
        expected = {
            key: (sum(self.model.versions[vid].rows.values()), self.model.versions[vid].location)
            for key, vid in self.model.tree(commit_hash).items()
        }
        got = {t.fqn: (t.records, t.metadata_location) for t in self.client.get_tables(ref)}
        assert got == expected, f"tables on {ref}"

    def check_log(self, ref: str, commit_hash: str, limit: int | None = None) -> None:
        expected = sorted(self.model.ancestors(commit_hash), key=lambda h: -self.model.commits[h].seq)[:limit]
        log = self.client.get_commits(ref, limit=limit)
        assert [c.hash for c in log] == expected, f"get_commits({ref!r}, limit={limit})"
        for c in log:
            assert c.parent_hashes == list(self.model.commits[c.hash].parents), f"parents of {c.hash}"

    @invariant()
    @counted
    def inv_refs_heads_and_history(self):
        assert {b.name: b.hash for b in self.client.get_branches()} == self.model.refs
        heads = {}
        for branch, head in sorted(self.model.refs.items()):
            heads.setdefault(head, branch)
        for head, branch in heads.items():
            self.check_tables(branch, head)
            self.check_log(branch, head)
        # main's history only grows: every head it ever had is still in its log.
        assert set(self.model.main_heads) <= self.model.ancestors(self.model.refs[MAIN])

    @invariant()
    @counted
    def inv_a_past_commit_reads_the_same(self):
        reachable = self.model.reachable()
        commits = self.model.commits
        candidates = [(h, b, k) for h, b in reachable.items() for k in self.model.tree(h)]
        candidates.sort(key=lambda c: (commits[c[0]].seq, c[2]))
        if candidates:
            commit, branch, key = self.rng.choice(candidates)
            self.check_scan(f"{branch}@{commit}", commit, key)

    def teardown(self) -> None:
        try:
            if not self.failed:
                # Every commit any ref can read still shows its tables; every table version scans the same.
                scanned: set[int] = set()
                for commit, branch in sorted(self.model.reachable().items()):
                    self.check_tables(f"{branch}@{commit}", commit)
                    for key, vid in self.model.tree(commit).items():
                        if vid not in scanned:
                            scanned.add(vid)
                            self.check_scan(f"{branch}@{commit}", commit, key)
                locations = [v.location for v in self.model.versions if v.location]
                assert len(locations) == len(set(locations)), "two table versions share a metadata file"
                FIGURES["teardown commits read"] += len(self.model.reachable())
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------- the test
class _Summary:
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if FIGURES:
            terminalreporter.write_sep("-", "lakehouse model figures")
            for name, value in sorted(FIGURES.items()):
                terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="module")
def model_env(request, tmp_path_factory):
    global SERVER
    if not request.config.pluginmanager.has_plugin("lakehouse-model-figures"):
        request.config.pluginmanager.register(_Summary(), "lakehouse-model-figures")
    BASE_DIR[:] = [tmp_path_factory.mktemp("model")]
    SERVER = SERVER or GatedServer()
    STANDBY.spawn()  # warms up while the first sequences run
    yield
    STANDBY.close()


@pytest.mark.subprocess
@pytest.mark.crash
@pytest.mark.soak
def test_lakehouse_against_its_model(model_env):
    database = Path(os.environ.get("WAP_MODEL_DB") or Path(tempfile.gettempdir()) / "wap-model-hypothesis")
    started = time.monotonic()
    try:
        run_state_machine_as_test(
            LakehouseMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=DirectoryBasedExampleDatabase(database),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
                print_blob=True,
            ),
        )
    finally:
        FIGURES["seconds"] = round(time.monotonic() - started)
        print("\nlakehouse model figures:", json.dumps(dict(sorted(FIGURES.items()))))


# ------------------------------------------------------------------------------ bugs the model found
def test_create_table_on_head_ref(lakehouse, tmp_path):
    """A write on `branch@<its head>` is allowed (the ref is the head), and create_table committed the
    table; but it then reads the table back at the ref it was given, now a past commit without the
    table, and raises TableNotFoundError for a table that was created. Found by the model (shrunk):
    create_table(bauplan.t1) on dev@<dev's head>."""
    source = write_source(tmp_path, "A", [(0, "a")], "csv", False)
    lakehouse.create_branch("dev", MAIN)
    head = lakehouse.get_branch("dev").hash
    info = lakehouse.create_table("t1", str(source), branch=f"dev@{head[:8]}")
    new = lakehouse.get_branch("dev").hash
    assert new != head
    assert info.metadata_location == lakehouse.get_table("t1", "dev").metadata_location
