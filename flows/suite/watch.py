"""`wap validate --watch`: what to watch, when a save happened, and whether the saved suites can run at all.

One process keeps GX loaded (one GX context, ``flows.audit.get_context``), so each save costs a validation, not
an import of GX. GX's file context reads the checkpoint, its validation definitions and suites from their JSON
on every run (``checkpoint._load_checkpoint``), so an edit takes effect at the next validation.

Saves are found by polling file stamps (stdlib only): an editor's save is often a burst (truncate and write,
or write a temporary file and rename it), so a change counts once the stamps stayed the same for one more poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .check import check_suite_file
from .project import GxProject, display_path, load_project

POLL_SECONDS = 0.05  # a stat of a dozen files: nothing next to a validation, and half the budget of a save's answer

Stamp = tuple[int, int, int] | None  # (mtime_ns, size, inode); None: the file does not exist (yet)


def watched_files(dataset: str, source: str | None, project: GxProject | None = None) -> list[Path]:
    """The files whose save re-validates ``dataset``: its checkpoint, the checkpoint's validation definitions and
    their suites, gx/datasets.yml, and the source when it is a local file (or the files of a local directory)."""
    project = project or load_project()
    files = [project.datasets_path]
    spec = project.datasets.get(dataset)
    if spec is not None:
        files.append(project.checkpoint_path(spec.checkpoint))
        for vd in project.validation_definitions_of(spec.checkpoint):
            files.append(project.validation_definition_path(vd))
            suite = project.suite_of(vd)
            if suite:
                files.append(project.suite_path(suite))
    if source and (source.startswith("file://") or "://" not in source):  # https://, s3://: nothing to watch
        local = Path(source.removeprefix("file://")).expanduser()
        if local.is_dir():
            files += sorted(p for p in local.rglob("*") if p.is_file())
        elif not any(c in source for c in "*?["):  # a glob's files are read, not watched
            files.append(local)  # watched even before it exists: its first save validates
    return list(dict.fromkeys(files))


def stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class SaveWatcher:
    """Polls a set of files; ``wait`` returns the files saved since the last answer, once the burst is over."""

    files: list[Path]
    poll_seconds: float = POLL_SECONDS
    sleep: Callable[[float], None] = time.sleep
    stamps: dict[Path, Stamp] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stamps = {p: stamp(p) for p in self.files}

    def watch(self, files: list[Path]) -> None:
        """Watch ``files`` from now on (a checkpoint edit can name other suites); new ones from their state now."""
        self.stamps = {p: self.stamps[p] if p in self.stamps else stamp(p) for p in files}
        self.files = list(files)

    def wait(self) -> list[Path]:
        """Block until some file changed and then stayed unchanged for one poll; the files that changed."""
        while True:
            self.sleep(self.poll_seconds)
            now = {p: stamp(p) for p in self.files}
            changed = [p for p in self.files if now[p] != self.stamps[p]]
            if not changed:
                continue
            while True:  # debounce: the save is over once a poll sees nothing new
                self.sleep(self.poll_seconds)
                later = {p: stamp(p) for p in self.files}
                if later == now:
                    break
                changed += [p for p in self.files if later[p] != now[p] and p not in changed]
                now = later
            self.stamps = now
            return changed


def suite_problem(dataset: str, project: GxProject | None = None) -> str | None:
    """The first error of the dataset's suites that would make its validation meaningless (invalid JSON, an
    unknown expectation type GX would silently drop, a bad argument), as one line; None if they can run.
    Columns are left to the validation, which reports a missing one as a rule that could not run."""
    project = project or load_project()
    spec = project.datasets.get(dataset)
    if spec is None:
        return None  # the validation says "unknown dataset"
    errors = []
    for suite in project.suites_of_checkpoint(spec.checkpoint):
        file = project.suites.get(suite)
        if file is not None:
            errors += [p for p in check_suite_file(file) if p.severity == "error"]
    if not errors:
        return None
    more = f" (and {len(errors) - 1} more: `wap suite check {dataset}`)" if len(errors) > 1 else ""
    return f"{errors[0]}{more}"


@dataclass
class DeferredDocs:
    """The data docs a validation asked for, built after its verdict is said (``deferred_data_docs``)."""

    context: Any
    build: Callable[..., Any]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def finish(self) -> str | None:
        """Build the pages the validation asked for; the first one's URL (the batch suite's), if any."""
        url = None
        for call in self.calls:
            self.build(**call)
            ids = call.get("resource_identifiers") or []
            if url is None and ids:
                urls = self.context.get_docs_sites_urls(resource_identifier=ids[0], site_names=call.get("site_names"))
                url = next((u["site_url"] for u in urls if u.get("site_url")), None)
        self.calls.clear()
        return url


@contextmanager
def deferred_data_docs(gx_dir: Path | str | None = None) -> Iterator[DeferredDocs]:
    """Within it, the checkpoint's UpdateDataDocsAction only records what to build: GX spends more time drawing the
    pages (~0.35 s for titanic's two) than validating, and a watch must answer first. ``finish()`` builds them."""
    from flows.audit import get_context

    context = get_context(gx_dir)
    deferred = DeferredDocs(context, context.build_data_docs)

    def record(**kwargs: Any) -> dict[str, Any]:
        deferred.calls.append(kwargs)
        return {}

    setattr(context, "build_data_docs", record)  # noqa: B010  GX's public method, shadowed on this one context only
    try:
        yield deferred
    finally:
        del context.build_data_docs  # the class's method again


def describe_paths(paths: list[Path]) -> str:
    return ", ".join(display_path(p) for p in paths)


__all__ = [
    "POLL_SECONDS",
    "DeferredDocs",
    "SaveWatcher",
    "deferred_data_docs",
    "describe_paths",
    "stamp",
    "suite_problem",
    "watched_files",
]
