"""The layout of the GX project in ``gx/`` that the gate and ``wap suite init`` rely on.

What one dataset gets (all named after the dataset):
  datasource ``pandas`` -> dataframe asset ``<dataset>`` -> batch definition ``whole_dataframe``
  expectation suite ``<dataset>``  (gx/expectations/<dataset>.json): the batch suite
  validation definition ``<dataset>`` (gx/validation_definitions/<dataset>.json)
  checkpoint ``<dataset>`` with UpdateDataDocsAction (gx/checkpoints/<dataset>.json)
and, optionally, a table suite validated by the same checkpoint:
  dataframe asset ``<dataset>_table`` -> batch definition ``published_table``
  expectation suite and validation definition ``<dataset>_table``
A validation definition's batch definition says what it validates: ``published_table`` the table as it would
be published (main's rows plus the batch), any other name the batch (the rows this run adds; in replace mode
the whole new table). Each is run with ``batch_parameters={"dataframe": <its data>}``. The suites live only
as JSON in ``gx/expectations/``; ``wap suite init`` writes new ones.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

DATASOURCE_NAME = "pandas"
BATCH_DEFINITION_NAME = "whole_dataframe"
TABLE_BATCH_DEFINITION_NAME = "published_table"
GROUP_BATCH_DEFINITION_NAME = "group_tables"  # a group's cross-table rules (audit/cross_table.py)
TABLE_SUITE_SUFFIX = "_table"  # <dataset>_table: the table suite's asset, suite and validation definition
BATCH, TABLE, GROUP = "batch", "table", "group"  # what a validation definition validates
# GX's UnexpectedRowsExpectation: a SQL query returning the rows that break the rule; a group's cross-table rules.
SQL_RULE = "unexpected_rows_expectation"
BATCH_PARAMETER = "dataframe"  # the dataframe assets take the data under this key
DATA_DOCS_ACTION_NAME = "update_data_docs"
DATA_DOCS_SITE = "local_site"  # the site GX scaffolds: gx/uncommitted/data_docs/local_site/
DATA_DOCS_INDEX_LIMIT = 50
# SUMMARY includes unexpected_count/percent and partial_unexpected_list (sample bad values),
# which the gate quotes back to the user when it blocks a publish.
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


def validates(batch_definition_name: str) -> str:
    """BATCH, TABLE or GROUP: what a validation definition with this batch definition validates."""
    if batch_definition_name == GROUP_BATCH_DEFINITION_NAME:
        return GROUP
    return TABLE if batch_definition_name == TABLE_BATCH_DEFINITION_NAME else BATCH


def reuse_expectation_ids(stored: ExpectationSuite, new: ExpectationSuite) -> None:
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
