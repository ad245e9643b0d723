"""UNNEST: each row repeated once per element of an array (Druid's ``unnest`` datasource).

Rows whose array is NULL or empty produce no rows, as a CROSS JOIN with an empty relation.
A VARCHAR expression unnests its values when it is multi-valued (an Arrow ``list<string>``)
and is one row per row otherwise (NULL included, as Druid unnests a single-valued string).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from msqcore.planner.expressions import arrow_type

if TYPE_CHECKING:
    from msqcore.planner.query import Unnest


def explode(table: pa.Table, spec: Unnest) -> pa.Table:
    values = spec.expr.eval(table)
    if isinstance(values, pa.Scalar):
        values = pa.repeat(values, table.num_rows) if values.is_valid else pa.nulls(table.num_rows, values.type)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        return table.append_column(spec.name, values)
    parents = pc.list_parent_indices(values)
    elements = pc.list_flatten(values)
    target = arrow_type(spec.expr.sql_type).value_type if spec.expr.sql_type.endswith(" ARRAY") else pa.string()
    if elements.type != target:
        elements = pc.cast(elements, target)
    return table.take(parents).append_column(spec.name, elements)
