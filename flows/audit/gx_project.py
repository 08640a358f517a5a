"""Create (or refresh) the committed Great Expectations project under ``gx/``.

Run ``uv run python -m flows.audit.gx_project`` to (re)write the titanic objects. Every helper is idempotent:
re-running keeps the GX ids of unchanged objects, so the JSON/YAML in git only changes when the
suite does. ``bootstrap_dataset`` is the reusable piece (``wap suite init`` calls it for new datasets).

Layout of what one dataset gets (all named after the dataset):
  datasource ``pandas`` -> dataframe asset ``<dataset>`` -> batch definition ``whole_dataframe``
  expectation suite ``<dataset>``  (gx/expectations/<dataset>.json)
  validation definition ``<dataset>`` (gx/validation_definitions/<dataset>)
  checkpoint ``<dataset>`` with UpdateDataDocsAction (gx/checkpoints/<dataset>)
The checkpoint is run with ``batch_parameters={"dataframe": df}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

# GX must never try to phone home from CI or an air-gapped runner; set before any GX import.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.core import ExpectationSuite
    from great_expectations.data_context import FileDataContext

DEFAULT_GX_DIR = Path(__file__).resolve().parents[2] / "gx"
DATASOURCE_NAME = "pandas"
BATCH_DEFINITION_NAME = "whole_dataframe"
BATCH_PARAMETER = "dataframe"
DATA_DOCS_ACTION_NAME = "update_data_docs"
DATA_DOCS_SITE = "local_site"  # the site GX scaffolds: gx/uncommitted/data_docs/local_site/
DATA_DOCS_INDEX_LIMIT = 50
# SUMMARY includes unexpected_count/percent and partial_unexpected_list (sample bad values),
# which the gate quotes back to the user when it blocks a publish.
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}

TITANIC_COLUMNS = [
    "PassengerId",
    "Survived",
    "Pclass",
    "Name",
    "Sex",
    "Age",
    "SibSp",
    "Parch",
    "Ticket",
    "Fare",
    "Cabin",
    "Embarked",
]


def create_context(gx_dir: Path | str = DEFAULT_GX_DIR) -> FileDataContext:
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
            _reuse_expectation_ids(context.suites.get(dataset), suite)
        suite = context.suites.add_or_update(suite)

    validation_definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=dataset, data=batch_definition, suite=suite)
    )
    checkpoint = gx.Checkpoint(
        name=dataset,
        validation_definitions=[validation_definition],
        actions=[UpdateDataDocsAction(name=DATA_DOCS_ACTION_NAME, site_names=site_names or [])],
        result_format=RESULT_FORMAT,
    )
    return context.checkpoints.add_or_update(checkpoint)


def _reuse_expectation_ids(stored: ExpectationSuite, new: ExpectationSuite) -> None:
    """Give unchanged expectations their stored ids so regenerating the suite leaves git clean.

    GX 1.24's ``suites.add_or_update`` promises this but compares with ``Expectation.__eq__``, which
    includes the (still unset) id, so every expectation got a fresh uuid on each run.
    """

    def fingerprint(expectation: Any) -> tuple[str, Any]:
        body = expectation.dict(exclude={"id", "rendered_content"})
        return expectation.expectation_type, json.dumps(body, sort_keys=True, default=str)

    stored_ids = {fingerprint(e): e.id for e in stored.expectations}
    for expectation in new.expectations:
        if expectation.id is None:
            expectation.id = stored_ids.get(fingerprint(expectation))


def titanic_suite() -> ExpectationSuite:
    """The audit for the Titanic passenger table (as the lakehouse hands it back, via audit.table_to_dataframe).

    Calibrated on the real Kaggle train.csv: 891 rows, Age 177 null (19.9%), Cabin 687, Embarked 2.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def notes(text: str) -> dict[str, Any]:
        return {"notes": {"format": "markdown", "content": [text]}}

    suite_meta = notes(
        "Write-Audit-Publish gate for the Titanic passenger table. Every expectation blocks the merge "
        "to main; calibrated on the real 891-row Kaggle train.csv."
    )
    exps: list[gxe.Expectation] = [
        # --- table shape -------------------------------------------------------------------------
        gxe.ExpectTableColumnsToMatchSet(
            column_set=TITANIC_COLUMNS,
            exact_match=True,
            meta=notes(
                "Schema contract: exactly these 12 columns. A missing, renamed or extra column breaks "
                "downstream consumers; column order is not enforced (consumers select by name)."
            ),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1,
            max_value=100_000_000,
            meta=notes(
                "An empty table is never a valid publish (usually a failed extract). The upper bound "
                "(100M) only catches runaway duplication; real loads are 891 rows, synthetic ones up to ~10M."
            ),
        ),
        # --- identity ----------------------------------------------------------------------------
        gxe.ExpectColumnValuesToBeUnique(
            column="PassengerId",
            meta=notes("PassengerId is the primary key: duplicates mean a double load or a bad join."),
        ),
    ]

    # --- completeness: columns that are fully populated in the source -----------------------------
    for column in ["PassengerId", "Survived", "Pclass", "Name", "Sex", "SibSp", "Parch", "Ticket", "Fare"]:
        exps.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=column,
                meta=notes(f"{column} is complete in the source (0 nulls in 891 rows); any null is a defect."),
            )
        )
    exps += [
        gxe.ExpectColumnValuesToNotBeNull(
            column="Age",
            mostly=0.7,
            meta=notes(
                "Age is legitimately missing for ~20% of passengers (177/891 = 19.9%). Block when more "
                "than 30% are null: that is a broken extract or parse, not the usual gaps."
            ),
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="Embarked",
            mostly=0.99,
            meta=notes("Embarked is missing for only 2/891 passengers (0.2%); more than 1% null is a defect."),
        ),
    ]

    # --- ranges ------------------------------------------------------------------------------------
    exps += [
        gxe.ExpectColumnValuesToBeBetween(
            column="PassengerId",
            min_value=1,
            meta=notes("Ids are 1-based positive integers."),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="Age",
            min_value=0,
            max_value=100,
            meta=notes(
                "Age in years; infants have fractional ages (min 0.42), oldest passenger 80. Negative "
                "or >100 values are entry or unit errors (e.g. months, days)."
            ),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="Fare",
            min_value=0,
            max_value=1000,
            meta=notes(
                "Fare in pounds: 0 is legitimate (15 crew/complimentary tickets), max 512.33. Negative "
                "or >1000 means a currency/scale bug."
            ),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="SibSp",
            min_value=0,
            max_value=10,
            meta=notes("Count of siblings/spouses aboard: 0..8 in the source, so 0..10 allows headroom."),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="Parch",
            min_value=0,
            max_value=10,
            meta=notes("Count of parents/children aboard: 0..6 in the source, so 0..10 allows headroom."),
        ),
    ]

    # --- categorical domains -------------------------------------------------------------------------
    exps += [
        gxe.ExpectColumnValuesToBeInSet(
            column="Survived",
            value_set=[0, 1],
            meta=notes("Survived is a 0/1 flag (the prediction target)."),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="Pclass",
            value_set=[1, 2, 3],
            meta=notes("Ticket class: 1st, 2nd or 3rd."),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="Sex",
            value_set=["male", "female"],
            meta=notes("Lower-case 'male'/'female' exactly; other spellings or codes break models."),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="Embarked",
            value_set=["C", "Q", "S"],
            meta=notes("Port of embarkation: C = Cherbourg, Q = Queenstown, S = Southampton (nulls allowed)."),
        ),
    ]

    # --- types: what audit.table_to_dataframe gives for the lakehouse's Arrow types -----------------
    # int64 columns stay int64 (a null would turn them float64, which is also a failure).
    for column in ["PassengerId", "Survived", "Pclass", "SibSp", "Parch"]:
        exps.append(
            gxe.ExpectColumnValuesToBeOfType(
                column=column,
                type_="int64",
                meta=notes(f"{column} is an integer column (Arrow int64 -> pandas int64)."),
            )
        )
    # Age/Fare: CSV type inference makes a numeric column int64 when every value happens to be
    # whole (small batches), so any numeric dtype is fine; strings (a parse failure) are not.
    for column in ["Age", "Fare"]:
        exps.append(
            gxe.ExpectColumnValuesToBeInTypeList(
                column=column,
                type_list=["float64", "int64"],
                meta=notes(
                    f"{column} must be numeric (Arrow double -> pandas float64). Strings mean the values "
                    "did not parse as numbers upstream."
                ),
            )
        )
    # pandas 3 maps Arrow strings to the `str` dtype (pandas 2: object holding str); "str" accepts both.
    for column in ["Name", "Sex", "Ticket", "Cabin", "Embarked"]:
        exps.append(
            gxe.ExpectColumnValuesToBeOfType(
                column=column,
                type_="str",
                meta=notes(f"{column} is a text column."),
            )
        )

    # Pass the expectations to the constructor rather than suite.add_expectation(): GX 1.x writes
    # add_expectation() straight through to the store when a stored suite already has this name.
    return gx.ExpectationSuite(name="titanic", expectations=exps, meta=suite_meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gx-dir", type=Path, default=DEFAULT_GX_DIR, help="GX context root (default: gx/)")
    args = parser.parse_args(argv)
    context = create_context(args.gx_dir)
    checkpoint = bootstrap_dataset(context, "titanic", titanic_suite())
    print(f"checkpoint {checkpoint.name!r} ready in {context.root_directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
