"""A corpus of bad inputs through the gate: each ends blocked (1) or with a one-line error (2), main unchanged.

Every case is generated here. Most go through the gate flow in-process (the same code `wap run` calls,
one Prefect flow run each, exit code as the CLI maps it); a handful also go through `wap run`
subprocesses for the exit code and the one-line stderr without traceback.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reliability_helpers import assert_one_line_error, gate_branches, gate_env, main_state, run_wap

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, connect, sources

pytestmark = pytest.mark.usefixtures("prefect_api")

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NETWORK_TIMEOUT_S = 2.0


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_error(404, "Not Found")

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture(scope="module")
def http_404() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def http_silent() -> Iterator[str]:
    """Accepts connections and never answers (the request times out)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    for conn in held:
        conn.close()
    listener.close()


def _write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def build_corpus(folder: Path, http_404: str, http_silent: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (source URI, allowed exit codes). 1 = blocked by the audit, 2 = rejected as bad input."""
    clean = generate_titanic(300, seed=11)
    clean_csv = write_csv(clean, folder / "clean.csv")
    header = clean_csv.read_text().splitlines()[0]
    lines = clean_csv.read_text().splitlines()
    parquet = folder / "clean.parquet"
    pq.write_table(clean, parquet)
    raw = parquet.read_bytes()
    cases: dict[str, tuple[str, tuple[int, ...]]] = {}

    def case(name: str, uri: str, *codes: int) -> None:
        cases[name] = (uri, codes)

    ragged = lines[:50] + [lines[50] + ",extra,fields"] + lines[51:]
    case("ragged_rows", _write(folder / "ragged.csv", "\n".join(ragged) + "\n"), 2)
    # Past the 16 MiB sample that types are inferred from: only the streaming reader sees these rows.
    large = write_csv(generate_titanic(230_000, seed=13), folder / "large.csv").read_bytes()
    assert len(large) > sources.CSV_SAMPLE_BYTES
    case("ragged_row_after_sample", _write(folder / "late_ragged.csv", large + lines[5].encode() + b",x\n"), 2)
    late_latin1 = large + lines[5].replace("male", "mâle").encode("latin-1") + b"\n"
    case("latin1_row_after_sample", _write(folder / "late_latin1.csv", late_latin1), 2)
    case("short_row", _write(folder / "short.csv", "\n".join(lines[:20] + ["1,0,3"] + lines[21:]) + "\n"), 2)
    case("semicolon_delimiter", _write(folder / "semi.csv", "\n".join(x.replace(",", ";") for x in lines)), 1, 2)
    case("tab_in_csv", _write(folder / "tabs.csv", "\n".join(x.replace(",", "\t") for x in lines)), 1, 2)
    case("binary_garbage", _write(folder / "garbage.csv", os.urandom(64 << 10)), 1, 2)
    case("binary_no_suffix", _write(folder / "garbage.bin", os.urandom(4096)), 1, 2)
    latin1 = ("\n".join(lines) + "\n").replace("Mr", "Mé").encode("latin-1")
    case("latin1_text", _write(folder / "latin1.csv", latin1), 2)
    case("ten_mb_single_field", _write(folder / "bigfield.csv", "x" * (10 << 20)), 1, 2)
    big_row = f'{header}\n1,0,7,"{"x" * (10 << 20)}",male,22,1,0,A/5,7.25,,S\n'  # a 10 MB name, class 7
    case("ten_mb_field_in_bad_row", _write(folder / "bigrow.csv", big_row), 1)
    case("header_only", _write(folder / "header.csv", header + "\n"), 1, 2)
    case("zero_bytes_csv", _write(folder / "empty.csv", b""), 2)
    case("zero_bytes_parquet", _write(folder / "empty.parquet", b""), 2)
    dup_header = header.replace("Ticket", "Name")
    case("duplicate_columns", _write(folder / "dup.csv", "\n".join([dup_header, *lines[1:]]) + "\n"), 1, 2)
    other = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    pq.write_table(other, folder / "other_schema.parquet")
    case("parquet_unexpected_schema", str(folder / "other_schema.parquet"), 1, 2)
    retyped = clean.set_column(clean.schema.get_field_index("Age"), "Age", pa.array(["old"] * clean.num_rows))
    pq.write_table(retyped, folder / "retyped.parquet")
    case("parquet_wrong_column_type", str(folder / "retyped.parquet"), 1, 2)
    case("truncated_parquet", _write(folder / "truncated.parquet", raw[: len(raw) // 2]), 2)
    case("parquet_footer_only_magic", _write(folder / "magic.parquet", b"PAR1" + b"\0" * 64 + b"PAR1"), 2)
    case("parquet_named_csv", _write(folder / "actually_parquet.csv", raw), 1, 2)
    (folder / "empty_dir").mkdir()
    case("empty_directory", str(folder / "empty_dir"), 2)
    case("glob_matching_nothing", str(folder / "nothing_*.csv"), 2)
    case("missing_file", str(folder / "missing.csv"), 2)
    case("file_url_missing", (folder / "missing.csv").as_uri(), 2)
    # Root reads a chmod 000 file anyway: an unreadable file for root is one whose read fails (EIO).
    case("unreadable_file_eio", "/proc/self/mem", 2)
    case("http_404", f"{http_404}/titanic.csv", 2)
    case("http_never_answers", f"{http_silent}/titanic.csv", 2)
    case("s3_unreachable", "s3://wap-reliability-no-such-bucket/titanic.csv", 2)
    case("unsupported_scheme", "ftp://127.0.0.1/titanic.csv", 2)
    case("empty_source", " ", 2)
    if not IS_ROOT:
        unreadable = Path(_write(folder / "unreadable.csv", "\n".join(lines)))
        unreadable.chmod(0)
        case("unreadable_chmod_000", str(unreadable), 2)
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, http_404, http_silent) -> dict[str, tuple[str, tuple[int, ...]]]:
    return build_corpus(tmp_path_factory.mktemp("bad-input"), http_404, http_silent)


@pytest.fixture(scope="module")
def published_lake(tmp_path_factory, prefect_api) -> Path:
    """A lakehouse whose main holds one published titanic table: every bad input must leave it as is."""
    from flows.gate import wap

    lake = tmp_path_factory.mktemp("bad-input-lake") / "lake"
    good = write_csv(generate_titanic(891, seed=12), lake.parent / "good.csv")
    assert wap("titanic", source=str(good), backend="local", lakehouse=str(lake)).published
    return lake


@pytest.fixture
def short_network_timeouts(monkeypatch) -> None:
    monkeypatch.setattr(sources, "HTTP_TIMEOUT_S", NETWORK_TIMEOUT_S)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # closed port: unreachable at once


def _gate_exit_code(run: Callable[[], object]) -> tuple[int, str]:
    """The exit code and one-line message `wap run` would give for this call of the flow."""
    from flows.cli import exit_code_for, one_line

    try:
        run()
    except Exception as exc:
        return exit_code_for(exc), one_line(exc)
    return 0, "published"


def test_bad_input_corpus_in_process(corpus, published_lake, short_network_timeouts):
    from flows.gate import wap

    assert len(corpus) >= 20
    before = main_state(published_lake)
    problems: dict[str, str] = {}

    def attempt(item: tuple[int, tuple[str, tuple[str, tuple[int, ...]]]]) -> None:
        index, (name, (uri, codes)) = item
        branch = f"tester.wap_titanic_{index:08x}"
        code, message = _gate_exit_code(
            lambda: wap("titanic", source=uri, branch=branch, backend="local", lakehouse=str(published_lake))
        )
        if code not in codes or "\n" in message:
            problems[name] = f"exit {code} (expected {codes}): {message[:300]}"
        if connect("local", published_lake).has_branch(branch):
            problems[name] = problems.get(name, "") + "; branch left behind"

    # A few gates at once (as `wap run --all` runs them): the network cases mostly wait.
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(attempt, enumerate(sorted(corpus.items()))))
    if main_state(published_lake) != before:
        problems["(all)"] = "main changed"
    assert not problems, "\n".join(f"{name}: {problem}" for name, problem in problems.items())
    assert gate_branches(published_lake) == []
    assert [b.name for b in connect("local", published_lake).get_branches()] == [MAIN]


CLI_CASES = ["ragged_rows", "truncated_parquet", "header_only", "http_never_answers", "unreadable_file_eio"]


@pytest.mark.subprocess
def test_bad_input_through_wap_run(corpus, published_lake, prefect_api):
    env = gate_env(
        prefect_api,
        WAP_HTTP_TIMEOUT=str(NETWORK_TIMEOUT_S),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    before = main_state(published_lake)

    def attempt(name: str) -> tuple[str, subprocess.CompletedProcess]:
        uri, _ = corpus[name]
        return name, run_wap("run", "titanic", "--source", uri, "--lakehouse", str(published_lake), env=env)

    with ThreadPoolExecutor(4) as pool:
        results = dict(pool.map(attempt, CLI_CASES))
    for name, result in results.items():
        message = assert_one_line_error(result, corpus[name][1])
        assert message.startswith(("error:", "blocked:")), f"{name}: {message}"
    assert main_state(published_lake) == before
    assert gate_branches(published_lake) == []
