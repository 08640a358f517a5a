"""A fix for a pyiceberg bug that changes values at write time (pinned by tests/test_nested_values.py).

pyiceberg 0.12's `ArrowProjectionVisitor.list` and `.map` (run on every batch it writes, and on every read)
rebuild a list of structs, or a map of structs, with `from_arrays(offsets, ...)`, which drops the null
mask: a null `list<struct>` or `map<_, struct>` is written as `[]` (apache/iceberg-python#3833, fix
proposed in #3834). Any other list or map is returned as the *input* cast to the target type, discarding
the projected children; when a struct nested below it has a name Iceberg sanitizes (`first name` is
stored as `first_x20name`), that cast matches the struct's fields by name, finds none, and writes NULLs.

The replacements build every list and map from the projected children and the input's own offsets and
null mask. Installed once, on import of the embedded backend.
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.io.pyarrow import ArrowProjectionVisitor
from pyiceberg.types import ListType, MapType

_upstream_list = ArrowProjectionVisitor.list
_upstream_map = ArrowProjectionVisitor.map


def _null_mask(array: pa.Array) -> pa.Array | None:
    return array.is_null() if array.null_count else None


def _list_keeping_nulls(
    self: ArrowProjectionVisitor, list_type: ListType, list_array: pa.Array | None, value_array: pa.Array | None
) -> pa.Array | None:
    if not isinstance(list_array, pa.ListArray | pa.LargeListArray) or value_array is None:
        # A fixed-size list is rebuilt by upstream code correctly (no offsets to reuse); nothing else is a list.
        return _upstream_list(self, list_type, list_array, value_array)
    value_array = self._cast_if_needed(list_type.element_field, value_array)
    element = self._construct_field(list_type.element_field, value_array.type)
    large = isinstance(list_array, pa.LargeListArray)
    array_class = pa.LargeListArray if large else pa.ListArray
    # `value_array` was projected from `list_array.values` (the whole child array, ArrowAccessor), and
    # `offsets` index into it also when `list_array` is a slice; the mask keeps null lists null.
    return array_class.from_arrays(
        list_array.offsets,
        value_array,
        type=(pa.large_list if large else pa.list_)(element),
        mask=_null_mask(list_array),
    )


def _map_keeping_nulls(
    self: ArrowProjectionVisitor,
    map_type: MapType,
    map_array: pa.Array | None,
    key_result: pa.Array | None,
    value_result: pa.Array | None,
) -> pa.Array | None:
    if not isinstance(map_array, pa.MapArray) or key_result is None or value_result is None:
        return _upstream_map(self, map_type, map_array, key_result, value_result)
    key_result = self._cast_if_needed(map_type.key_field, key_result)
    value_result = self._cast_if_needed(map_type.value_field, value_result)
    map_field = pa.map_(
        self._construct_field(map_type.key_field, key_result.type),
        self._construct_field(map_type.value_field, value_result.type),
    )
    # As for lists: keys and items were projected from the whole child arrays, which `offsets` index.
    return pa.MapArray.from_arrays(map_array.offsets, key_result, value_result, map_field, mask=_null_mask(map_array))


def install() -> None:
    """Replace the method (idempotent)."""
    # A deliberate monkeypatch (see the module docstring): mypy rejects assigning to a method.
    ArrowProjectionVisitor.list = _list_keeping_nulls  # type: ignore[method-assign]
    ArrowProjectionVisitor.map = _map_keeping_nulls  # type: ignore[method-assign]


def installed() -> bool:
    return ArrowProjectionVisitor.list is _list_keeping_nulls and ArrowProjectionVisitor.map is _map_keeping_nulls


install()
