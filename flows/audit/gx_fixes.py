"""Fixes for GX 1.24 bugs that break an audit itself, installed once before the first GX context is made.

`expect_column_quantile_values_to_be_between` answers its `success` as numpy's `np.bool_`, which GX's own
validation results store cannot write as JSON: the whole checkpoint run raised TypeError, failing every rule of the
suite with it. The fix hands GX a plain bool (and plain bools in `success_details`), which is what every other
expectation returns. Pinned in tests/test_upstream_contract.py: an upgrade that renames `_validate` fails there.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def install_gx_fixes() -> None:
    from great_expectations.expectations.core.expect_column_quantile_values_to_be_between import (
        ExpectColumnQuantileValuesToBeBetween,
    )

    original = ExpectColumnQuantileValuesToBeBetween._validate

    @functools.wraps(original)
    def validate_with_plain_bools(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = original(self, *args, **kwargs)
        if isinstance(answer, dict) and "success" in answer:
            answer["success"] = bool(answer["success"])
            details = (answer.get("result") or {}).get("details") or {}
            if isinstance(details.get("success_details"), list):
                details["success_details"] = [bool(v) for v in details["success_details"]]
        return answer

    ExpectColumnQuantileValuesToBeBetween._validate = validate_with_plain_bools  # type: ignore[method-assign]
