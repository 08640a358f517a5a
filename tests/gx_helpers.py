"""GX project scaffolding for tests: a context with the gate's settings, and a dataset's GX objects
(asset, batch definition, suite, validation definition, checkpoint) created through GX's own factories."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from flows.audit.gx_project import (
    BATCH_DEFINITION_NAME,
    DATA_DOCS_ACTION_NAME,
    DATA_DOCS_INDEX_LIMIT,
    DATA_DOCS_SITE,
    DATASOURCE_NAME,
    RESULT_FORMAT,
    TABLE_SUITE_SUFFIX,
    reuse_expectation_ids,
)

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.core import ExpectationSuite
    from great_expectations.data_context import FileDataContext


def create_context(gx_dir: Path | str) -> FileDataContext:
    """Open the file data context at ``gx_dir``, scaffolding it if absent, with analytics off."""
    import great_expectations as gx

    gx_dir = Path(gx_dir).resolve()
    if gx_dir.name == "gx":
        # The documented way: GX scaffolds ``<project_root>/gx`` itself.
        context = gx.get_context(mode="file", project_root_dir=gx_dir.parent)
    else:
        context = gx.get_context(mode="file", context_root_dir=gx_dir)
    if context.variables.analytics_enabled is not False:
        context.enable_analytics(False)  # persists ``analytics_enabled: false`` in great_expectations.yml
    if not context.variables.progress_bars or context.variables.progress_bars.get("globally", True):
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # tqdm bars on stderr are noise in flow logs and CLI output.
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    # Every UpdateDataDocsAction rebuilds the docs index, which loads *every* stored validation
    # result (~4 ms each): audits would get slower forever. Index only the most recent ones.
    sites = context.variables.data_docs_sites or {}
    index_builder = sites.get(DATA_DOCS_SITE, {}).get("site_index_builder")
    if index_builder is not None and index_builder.get("validation_results_limit") != DATA_DOCS_INDEX_LIMIT:
        index_builder["validation_results_limit"] = DATA_DOCS_INDEX_LIMIT
        context.variables.data_docs_sites = sites
        context.variables.save()
    return context


def bootstrap_dataset(
    context: FileDataContext,
    dataset: str,
    suite: ExpectationSuite | None = None,
    *,
    site_names: list[str] | None = None,
) -> Checkpoint:
    """Idempotently (re)create the asset, batch definition, suite, validation definition and checkpoint.

    ``suite``: the suite to store under ``dataset`` (its name is forced to ``dataset``). When None the
    stored suite is kept, or an empty one is created so ``wap suite init`` can start from scratch.
    Returns the stored checkpoint.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.exceptions import DataContextError

    try:
        datasource = context.data_sources.get(DATASOURCE_NAME)
    except (KeyError, ValueError):
        datasource = context.data_sources.add_pandas(name=DATASOURCE_NAME)

    if dataset in datasource.get_asset_names():
        asset = datasource.get_asset(dataset)
    else:
        asset = datasource.add_dataframe_asset(name=dataset)

    try:
        batch_definition = asset.get_batch_definition(BATCH_DEFINITION_NAME)
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)

    if suite is None:
        try:
            suite = context.suites.get(dataset)
        except DataContextError:
            suite = context.suites.add(gx.ExpectationSuite(name=dataset))
    else:
        suite.name = dataset
        with contextlib.suppress(DataContextError):  # no stored suite yet: nothing to reuse
            reuse_expectation_ids(context.suites.get(dataset), suite)
        suite = context.suites.add_or_update(suite)

    validation_definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=dataset, data=batch_definition, suite=suite)
    )
    definitions = [validation_definition]
    with contextlib.suppress(DataContextError):  # the dataset's table suite, if it has one, stays in its checkpoint
        definitions.append(context.validation_definitions.get(f"{dataset}{TABLE_SUITE_SUFFIX}"))
    checkpoint = gx.Checkpoint(
        name=dataset,
        validation_definitions=definitions,
        actions=[UpdateDataDocsAction(name=DATA_DOCS_ACTION_NAME, site_names=site_names or [])],
        result_format=RESULT_FORMAT,
    )
    return context.checkpoints.add_or_update(checkpoint)
