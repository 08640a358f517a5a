"""`wap suite init`: profile a source, write its starter suite, validation definition and checkpoint, and
declare the dataset, all or nothing (staged, then installed through a commit journal)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from flows.datasets import Dataset, DatasetError, datasets_file, gx_dir, save_dataset, validate_dataset_name
from flows.lakehouse.names import DEFAULT_NAMESPACE
from flows.lakehouse.storage import fsync_dir  # durable renames: the lakehouse's own helper

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
    from great_expectations.datasource.fluent import PandasDatasource
from .profile import Profile, profile_source
from .project import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    SUITES_DIR,
    VALIDATION_DEFINITIONS_DIR,
    GxFile,
    GxProject,
    SuiteError,
    display_path,
    load_project,
)
from .starter import build_suite, build_table_suite


@dataclass(frozen=True)
class InitResult:
    dataset: Dataset
    suite_path: Path
    expectations: int
    profile: Profile
    declaration: Literal["added", "updated", "unchanged"]  # what happened to the dataset's declaration
    overwritten: list[Path]  # existing files replaced (only with force, or leftovers of an interrupted init)
    written: list[Path] = field(default_factory=list)  # every file written; empty: all were up to date
    # The key the profile suggests (an id-like column, unique and never null): declared with a new dataset; for one
    # already declared without a key, only proposed (its declaration is the user's).
    proposed_key: tuple[str, ...] = ()


# Where init stages its files, keeps its commit journals and its lock: under gx/uncommitted/, which GX's
# .gitignore keeps out of git and no GX store reads.
INIT_STATE_DIR = ("uncommitted", "wap-init")
# Temporary files sit next to the file they replace (os.replace is atomic only within a file system) under
# names no GX store lists (stores list only *.json) and `_json_files` skips.
_TMP_MARK = ".wap-init-"


def init_suite(
    dataset: str,
    source: str,
    *,
    force: bool = False,
    gx_root: Path | str | None = None,
    datasets_path: Path | None = None,
) -> InitResult:
    """Profile ``source``, write a starter suite for ``dataset`` and everything `wap run DATASET` needs.

    Writes the dataframe asset (great_expectations.yml), the suite, validation definition and checkpoint,
    and declares the dataset (table = dataset name, namespace bauplan) unless it is declared already.
    All or nothing, even when the process is killed: every file is staged next to its target and fsynced,
    a journal naming them is committed with one rename, then the files are renamed into place. A journal
    left by a killed init is completed by the next init; staged files without a journal are deleted.

    Refuses to replace an existing suite or checkpoint unless ``force``, or unless what is there is exactly
    what this init generates (a rerun on the same source succeeds and writes nothing).
    """
    validate_dataset_name(dataset)
    project_root = Path(gx_root if gx_root is not None else gx_dir()).expanduser()
    datasets_path = datasets_path or datasets_file()
    project = load_project(project_root, datasets_path)  # raises when there is no GX project
    if project.datasets_error:
        raise DatasetError(project.datasets_error)  # before anything is written
    profile = profile_source(source)
    if profile.rows == 0:
        raise SuiteError(f"source {source} has no rows: there is nothing to profile")
    suite = build_suite(dataset, profile)

    with _init_lock(project_root):
        resumed = recover_init(project_root, datasets_path)
        project = load_project(project_root, datasets_path)  # again: another init may have committed meanwhile
        if project.datasets_error:
            raise DatasetError(project.datasets_error)
        existing = [p for p in (project.suite_path(dataset), project.checkpoint_path(dataset)) if p.exists()]
        declared = project.datasets.get(dataset)
        key = proposed_key(profile)
        if declared is None:
            spec = Dataset(
                dataset, source=source, table=dataset, namespace=DEFAULT_NAMESPACE, checkpoint=dataset, key=key
            )
            action: Literal["added", "updated", "unchanged"] = "added"
        elif declared.checkpoint != dataset:
            spec, action = dataclasses.replace(declared, checkpoint=dataset), "updated"  # audit with the new suite
        else:
            spec, action = declared, "unchanged"

        token = f"{os.getpid()}-{os.urandom(4).hex()}"
        staging = project_root.joinpath(*INIT_STATE_DIR, f"{dataset}.{token}")
        try:
            files = _stage_gx_files(project, dataset, suite, profile, staging)
            if action != "unchanged":
                files[datasets_path] = _render_declaration(spec, datasets_path, staging)
            changed = {t: data for t, data in files.items() if not _same_content(t, data)}
            if existing and changed and not force and dataset not in resumed:
                raise SuiteError(
                    f"suite {dataset!r} already exists ({', '.join(map(display_path, existing))}); "
                    "pass --force to overwrite it with a newly generated one"
                )
            # great_expectations.yml first (the validation definition names its asset), the declaration last.
            order = [project.config_path, *(t for t in changed if t not in (project.config_path, datasets_path))]
            _commit(project_root, dataset, [(t, changed[t]) for t in [*order, datasets_path] if t in changed], token)
        finally:
            _remove_tree(staging)
    _forget_cached_context(project_root)
    overwritten = [p for p in existing if p in changed]
    return InitResult(
        spec,
        project.suite_path(dataset),
        len(suite.expectations),
        profile,
        action,
        overwritten,
        list(changed),
        proposed_key=key if not spec.key else (),
    )


def proposed_key(profile: Profile) -> tuple[str, ...]:
    """The first id-like column (by name: ``id``, ``PassengerId``, ``order_id`` ...) that was unique and never
    null over every profiled row; () if none is."""
    for c in profile.columns:
        if c.id_like and c.unique and c.nulls == 0 and c.unique_rows_checked >= c.rows:
            return (c.name,)
    return ()


def _same_content(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _stage_gx_files(
    project: GxProject, dataset: str, suite: ExpectationSuite, profile: Profile, staging: Path
) -> dict[Path, bytes]:
    """The new content of great_expectations.yml and of the dataset's suite, validation definition and checkpoint,
    and of its table suite (``<dataset>_table``: a starter one unless it exists, which is kept) and its validation
    definition, the checkpoint's second.

    GX writes them, into a scratch copy of the project (``staging``), so the bytes are exactly what GX's own
    stores write. GX's factories are not used: ``suites.add_or_update`` matches every new expectation against
    every stored one (``list.index`` with a pydantic ``__eq__``), and the validation definition and checkpoint
    factories call it again, which made init quadratic in the number of columns (1000 columns: 5 minutes).
    Instead each file is written once through its store, and the suite, the one large file, is serialised
    once. The validation definition and checkpoint only reference the suite by name and id, and GX checks
    a referenced suite against its stored copy when serialising them, so they are written while the stored
    suite is still a placeholder with the final id: that check then compares two empty suites.
    """
    import shutil

    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context import project_manager, set_context  # re-exported there

    from flows.audit.gx_project import (
        BATCH_DEFINITION_NAME,
        DATA_DOCS_ACTION_NAME,
        DATASOURCE_NAME,
        RESULT_FORMAT,
        TABLE_BATCH_DEFINITION_NAME,
        TABLE_SUITE_SUFFIX,
    )

    staging.mkdir(parents=True)
    shutil.copyfile(project.config_path, staging / CONFIG_FILE)
    stored = project.suites.get(dataset)
    suite_rel = project.suite_path(dataset).relative_to(project.root)
    if stored is not None and stored.data is not None:
        (staging / suite_rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored.path, staging / suite_rel)  # read back through GX, to keep the ids of unchanged rules
    table_name = f"{dataset}{TABLE_SUITE_SUFFIX}"
    stored_table = project.suites.get(table_name)
    if stored_table is not None and stored_table.data is not None:
        # An existing table suite is the user's: kept as it is, only wired into the checkpoint.
        table_rel = project.suite_path(table_name).relative_to(project.root)
        (staging / table_rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored_table.path, staging / table_rel)

    try:  # gx.get_context makes the scratch context GX's "current" one; give the caller's back afterwards
        previous = project_manager.get_current_project()
    except Exception:  # DataContextRequiredError: there was none
        previous = None
    try:
        context = gx.get_context(mode="file", context_root_dir=staging)
        try:
            # The project's datasource is the pandas one this module adds (GX types the lookup as any datasource).
            datasource = cast("PandasDatasource", context.data_sources.get(DATASOURCE_NAME))
        except (KeyError, ValueError):
            datasource = context.data_sources.add_pandas(name=DATASOURCE_NAME)

        def whole_dataframe(asset_name: str, batch_definition_name: str) -> Any:
            """The asset's batch definition, both created if missing."""
            asset = (
                datasource.get_asset(asset_name)
                if asset_name in datasource.get_asset_names()
                else datasource.add_dataframe_asset(name=asset_name)
            )
            try:
                return asset.get_batch_definition(batch_definition_name)
            except KeyError:
                return asset.add_batch_definition_whole_dataframe(batch_definition_name)

        batch_definition = whole_dataframe(dataset, BATCH_DEFINITION_NAME)
        table_batch_definition = whole_dataframe(table_name, TABLE_BATCH_DEFINITION_NAME)

        suites = context.expectations_store
        key = suites.get_key(name=dataset, id=None)
        suite.name = dataset
        placeholder = gx.ExpectationSuite(name=dataset)
        previous_suite = _stored_suite(context, dataset) if suites.has_key(key) else None
        if previous_suite is not None:
            from flows.audit.gx_project import reuse_expectation_ids

            reuse_expectation_ids(previous_suite, suite)  # unchanged rules keep their ids: git stays clean
            placeholder.id = previous_suite.id
            suites.update(key=key, value=placeholder)
        else:
            if suites.has_key(key):  # unreadable: it is being replaced anyway
                suites.remove_key(key)
            suites.add(key=key, value=placeholder)  # assigns the suite's id

        # The table suite gets a placeholder too while its validation definition is written (so GX compares two
        # empty suites); then the kept file is put back, or the starter saved once.
        table_key = suites.get_key(name=table_name, id=None)
        kept_table_suite = stored_table is not None and stored_table.data is not None
        table_suite = gx.ExpectationSuite(name=table_name)
        if kept_table_suite:
            table_suite.id = _stored_id(stored_table)
            suites.update(key=table_key, value=table_suite)
        else:
            if suites.has_key(table_key):  # unreadable: replaced by the starter
                suites.remove_key(table_key)
            suites.add(key=table_key, value=table_suite)  # assigns its id

        definitions = context.validation_definition_store
        definition = gx.ValidationDefinition(name=dataset, data=batch_definition, suite=placeholder)
        _store_keeping_id(definitions, definitions.get_key(name=dataset, id=None), definition,
                          _stored_id(project.validation_definitions.get(dataset)))  # fmt: skip
        table_definition = gx.ValidationDefinition(name=table_name, data=table_batch_definition, suite=table_suite)
        _store_keeping_id(definitions, definitions.get_key(name=table_name, id=None), table_definition,
                          _stored_id(project.validation_definitions.get(table_name)))  # fmt: skip
        checkpoints = context.checkpoint_store
        checkpoint = gx.Checkpoint(
            name=dataset,
            validation_definitions=[definition, table_definition],
            actions=[UpdateDataDocsAction(name=DATA_DOCS_ACTION_NAME, site_names=[])],
            result_format=RESULT_FORMAT,
        )
        _store_keeping_id(checkpoints, checkpoints.get_key(name=dataset, id=None), checkpoint,
                          _stored_id(project.checkpoints.get(dataset)))  # fmt: skip

        suite.id = placeholder.id
        suites.update(key=key, value=suite)  # the one save of the suite; new rules get their ids here
        if kept_table_suite:
            assert stored_table is not None
            shutil.copyfile(stored_table.path, staging / project.suite_path(table_name).relative_to(project.root))
        else:
            starter = build_table_suite(dataset, profile)
            starter.id = table_suite.id
            suites.update(key=table_key, value=starter)
    finally:
        set_context(previous)

    files: dict[Path, bytes] = {}
    config = (staging / CONFIG_FILE).read_bytes()
    if config != project.config_path.read_bytes():
        files[project.config_path] = config
    for target in (
        project.suite_path(dataset),
        project.validation_definition_path(dataset),
        project.suite_path(table_name),
        project.validation_definition_path(table_name),
        project.checkpoint_path(dataset),
    ):
        files[target] = (staging / target.relative_to(project.root)).read_bytes()
    return files


def _stored_suite(context: Any, dataset: str) -> ExpectationSuite | None:
    try:
        return context.suites.get(dataset)
    except Exception:  # a suite GX cannot read: nothing to reuse, and it is replaced
        return None


def _stored_id(file: GxFile | None) -> str | None:
    value = (file.data or {}).get("id") if file is not None else None
    return value if isinstance(value, str) and value else None


def _store_keeping_id(store: Any, key: Any, value: Any, stored_id: str | None) -> None:
    """Write ``value`` once; it keeps the stored file's id (a regenerated checkpoint is the same checkpoint)."""
    if stored_id is None:
        store.add(key=key, value=value)  # assigns a new id
    else:
        value.id = stored_id
        store.add_or_update(key=key, value=value)  # no id logic on this path: the id is kept


def _render_declaration(spec: Dataset, datasets_path: Path, staging: Path) -> bytes:
    """datasets.yml with ``spec`` added or replaced, as ``save_dataset`` writes it (header comments kept)."""
    import shutil

    draft = staging / "datasets.yml"
    if datasets_path.exists():
        shutil.copyfile(datasets_path, draft)
    save_dataset(spec, draft)
    return draft.read_bytes()


# ------------------------------------------------------------------------------------ init: atomic install
def _state_dir(project_root: Path) -> Path:
    return project_root.joinpath(*INIT_STATE_DIR)


@contextlib.contextmanager
def _init_lock(project_root: Path) -> Iterator[None]:
    """One init at a time per project: each rewrites great_expectations.yml and datasets.yml whole."""
    state = _state_dir(project_root)
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; concurrent inits are then the user's problem
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _temp_path(target: Path, token: str) -> Path:
    return target.with_name(f".{target.name}{_TMP_MARK}{token}.tmp")


def _commit(project_root: Path, dataset: str, files: list[tuple[Path, bytes]], token: str) -> None:
    """Install ``files`` all or nothing: stage + fsync, commit a journal with one rename, then rename each."""
    if not files:
        return
    moves: list[tuple[Path, Path]] = []
    try:
        for target, data in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = _temp_path(target, token)
            moves.append((temp, target))
            _write_durable(temp, data)
    except BaseException:
        for temp, _ in moves:
            temp.unlink(missing_ok=True)
        raise
    for folder in {t.parent for t, _ in moves}:
        fsync_dir(folder)
    state = _state_dir(project_root)
    journal = state / f"{dataset}.journal"
    journal_temp = state / f".{dataset}.journal{_TMP_MARK}{token}.tmp"
    record = {"dataset": dataset, "moves": [[str(t.resolve()), str(p.resolve())] for t, p in moves]}
    _write_durable(journal_temp, json.dumps(record, indent=1).encode())
    os.replace(journal_temp, journal)  # the commit point: from here on the init completes, now or on recovery
    fsync_dir(state)
    _finish(journal, moves)


def _finish(journal: Path, moves: list[tuple[Path, Path]]) -> None:
    """Rename every staged file still waiting, then drop the journal (idempotent: recovery runs it again)."""
    for temp, target in moves:
        if temp.exists():
            os.replace(temp, target)
    for folder in {target.parent for _, target in moves}:
        fsync_dir(folder)
    journal.unlink(missing_ok=True)
    fsync_dir(journal.parent)


def recover_init(project_root: Path | str, datasets_path: Path | None = None) -> set[str]:
    """Complete the inits a killed process had committed; delete what uncommitted ones had staged.

    Returns the datasets whose init was completed here. Call with the init lock held (``init_suite`` does).
    """
    project_root = Path(project_root)
    state = _state_dir(project_root)
    resumed: set[str] = set()
    for journal in sorted(state.glob("*.journal")) if state.is_dir() else []:
        try:
            record = json.loads(journal.read_text(encoding="utf-8"))
            moves = [(Path(t), Path(p)) for t, p in record["moves"]]
            dataset = str(record["dataset"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours to judge; never reached through init (the journal is renamed in whole)
        _finish(journal, moves)
        resumed.add(dataset)
    # Nothing else is in flight while the lock is held: whatever is staged now belongs to a dead process.
    folders = [project_root, project_root / VALIDATION_DEFINITIONS_DIR, project_root / CHECKPOINTS_DIR, state]
    if datasets_path is not None:
        folders.append(Path(datasets_path).parent)
    stale = [p for folder in folders if folder.is_dir() for p in folder.glob(f".*{_TMP_MARK}*.tmp")]
    suites = project_root / SUITES_DIR
    stale += list(suites.rglob(f".*{_TMP_MARK}*.tmp")) if suites.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    for folder in state.iterdir() if state.is_dir() else []:
        if folder.is_dir():
            _remove_tree(folder)
    return resumed


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _forget_cached_context(project_root: Path) -> None:
    """Drop flows.audit's cached GX context of this project: it holds the old great_expectations.yml."""
    from flows.audit import checkpoint as audit

    with audit._GX_LOCK:
        audit._CONTEXTS.pop(project_root.expanduser().resolve(), None)
