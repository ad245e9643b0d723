"""A COMPLEX<json> column in a segment, stored as Druid's nested column is in spirit.

The column block holds the raw JSON (``validity``, ``lengths``, ``data``: canonical JSON
text per row, as any complex column) and then one typed *field column* per literal path
found in the rows (``JSON_PATHS``), in path order:

* ``LONG`` when every literal at the path is an integer or a boolean (as 1/0),
  ``DOUBLE`` when some are not integers, ``STRING`` when some are strings;
* a row whose value at the path is missing, null, an object or an array is null there;
* paths whose values are only arrays or objects get no field column (the raw JSON has them).

A field column's parts are named ``field<i>.<part>`` and encoded as the segment format
encodes a top-level column of that type: numbers as ``values`` (+ ``validity``), strings
as packed ``ids`` into a sorted ``dictLengths``/``dictData`` dictionary (id 0 is null when
the field has nulls). The column's TOC entry lists them under ``fields``:
``[{"path", "type", "hasNulls"[, "cardinality", "idWidth"]}]``. ``read_field`` reads one
field without touching the raw JSON. See docs/segment-format.md.

``segment.py`` calls ``encode`` and ``expected_parts`` for COMPLEX<json> columns; the raw
JSON decodes as any complex column.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msqcore.kernels import _json
from msqcore.kernels import _segment as _k

MAX_FIELDS = 256  # field columns per column; paths past this are read from the raw JSON
_K = _json.KINDS


def _buffers(arr: pa.Array):
    arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return np.ascontiguousarray(offsets), data, pc.is_valid(arr).to_numpy(zero_copy_only=False).astype(np.uint8)


def _literal_paths(buffers) -> list[str]:
    ok, row_offsets, path_offsets, data = _json.paths(*buffers)
    paths = pa.Array.from_buffers(pa.large_string(), len(path_offsets) - 1,
                                  [None, pa.py_buffer(path_offsets), pa.py_buffer(data)])
    return sorted(pc.unique(paths).to_pylist())


def field_values(buffers, path: str) -> tuple[str, pa.Array] | None:
    """(type, values) of the field column at ``path``, or None when no row has a literal there."""
    from msqcore.planner.json_functions import kernel_path, parse_path
    kinds, offsets, data = _json.extract(*buffers, kernel_path(parse_path(path, "nested")), True)
    literal = (kinds >= _K["string"]) & (kinds <= _K["false"])
    if not literal.any():
        return None
    text = pa.Array.from_buffers(pa.large_string(), len(kinds), [pa.py_buffer(np.packbits(literal, bitorder="little")),
                                                                 pa.py_buffer(offsets), pa.py_buffer(data)])
    booleans = (kinds == _K["true"]) | (kinds == _K["false"])
    if booleans.any():
        text = pc.if_else(pa.array(booleans), pa.array(np.where(kinds == _K["true"], "1", "0")), text)
    text = text.cast(pa.string())
    if (kinds == _K["string"]).any():
        doubles = kinds == _K["double"]
        if doubles.any():  # as JSON_VALUE writes a double: Java's Double.toString
            from msqcore.planner import expressions as ex
            text = pc.if_else(pa.array(doubles), ex._java_double_strings(ex._cast(text, "DOUBLE")),
                              text)
        return "STRING", text
    if (kinds == _K["double"]).any():
        return "DOUBLE", pc.cast(text, pa.float64())
    try:
        return "LONG", pc.cast(text, pa.int64())
    except pa.ArrowInvalid:  # an integer past the long range
        return "DOUBLE", pc.cast(text, pa.float64())


def encode(w, arr: pa.Array, encode_raw) -> dict[str, Any]:
    """Writes the raw JSON (``encode_raw``: the segment's complex encoder) and the field
    columns into the column writer ``w``; returns the TOC entry's extra keys."""
    from msqcore.storage import segment as seg
    extra = encode_raw(w, arr)
    buffers = _buffers(arr)
    fields = []
    for path in _literal_paths(buffers)[:MAX_FIELDS]:
        found = field_values(buffers, path)
        if found is None:
            continue
        kind, values = found
        prefix = f"field{len(fields)}."
        entry: dict[str, Any] = {"path": path, "type": kind}
        if kind == "STRING":
            sorted_dict, ids, has_null = seg._sorted_dictionary(values)
            width = _k.id_width(len(sorted_dict))
            w.part(prefix + "ids", _k.pack_ids(ids, width), seg.ROWS_PER_BLOCK * width)
            offsets, data = seg._string_buffers(sorted_dict)
            w.part(prefix + "dictLengths", np.diff(offsets).astype("<u4"), seg.ROWS_PER_BLOCK * 4)
            w.part(prefix + "dictData", data, seg.STREAM_BLOCK)
            entry.update(hasNulls=has_null, cardinality=len(sorted_dict), idWidth=width)
        else:
            entry["hasNulls"] = seg._encode_numeric(w, values, kind, prefix + "values", prefix + "validity")
        fields.append(entry)
    extra["fields"] = fields
    return extra


def expected_parts(c: dict[str, Any], n: int, raw: dict[str, int | None]) -> dict[str, int | None]:
    """The parts of a COMPLEX<json> column: ``raw`` (the complex column's), then the fields'."""
    from msqcore.storage import segment as seg
    out = dict(raw)
    fields = c.get("fields", [])
    if not isinstance(fields, list):
        raise ValueError("fields must be a list")
    for i, f in enumerate(fields):
        prefix = f"field{i}."
        if not isinstance(f.get("hasNulls"), bool) or not isinstance(f.get("path"), str):
            raise ValueError(f"bad field entry {f!r}")
        if f["type"] == "STRING":
            card, width = f["cardinality"], f["idWidth"]
            if not isinstance(card, int) or card < 0 or width != _k.id_width(card):
                raise ValueError(f"field {f['path']!r}: bad cardinality {card!r} or id width {width!r}")
            out.update({prefix + "ids": n * width, prefix + "dictLengths": 4 * card, prefix + "dictData": None})
        elif f["type"] in ("LONG", "DOUBLE"):
            out[prefix + "values"] = n * seg._NUMERIC[f["type"]][0].itemsize
            if f["hasNulls"]:
                out[prefix + "validity"] = (n + 7) // 8
        else:
            raise ValueError(f"field {f['path']!r}: unknown type {f['type']!r}")
    return out


def field_paths(path: str, column: str) -> list[str]:
    """The paths of a stored COMPLEX<json> column's field columns."""
    from msqcore.storage import segment as seg
    with seg._open(os.fspath(path)) as s:
        return [f["path"] for f in s.column(column).get("fields", [])]


def read_field(path: str, column: str, json_path: str) -> tuple[str, pa.Array] | None:
    """(type, values) of one field column of a stored COMPLEX<json> column, decoding only its
    parts; None when the column has no field column at that (normalized) path."""
    from msqcore.storage import segment as seg
    with seg._open(os.fspath(path)) as s:
        col = s.column(column)
        i = next((i for i, f in enumerate(col.get("fields", [])) if f["path"] == json_path), None)
        return None if i is None else _decode_field(s, col, i)


def read_fields(path: str, wanted: dict[str, set[str]], rows=None) -> dict[str, dict[str, pa.Array]]:
    """For each column of ``wanted`` whose every wanted path has a field column in this
    segment: those fields' values (only ``rows``, if given). Other columns are left out:
    the caller reads their raw JSON."""
    from msqcore.storage import segment as seg
    out: dict[str, dict[str, pa.Array]] = {}
    if not wanted:
        return out
    with seg._open(os.fspath(path)) as s:
        sel = seg._row_selection(rows, s.num_rows)
        for column, paths in wanted.items():
            if column not in s.columns or s.column(column)["type"] != "COMPLEX<json>":
                continue
            col = s.column(column)
            index = {f["path"]: i for i, f in enumerate(col.get("fields", []))}
            if not all(p in index for p in paths):
                continue
            values = {p: _decode_field(s, col, index[p])[1] for p in paths}
            out[column] = values if sel is None else {p: v.take(pa.array(sel)) for p, v in values.items()}
    return out


def _decode_field(s, col: dict[str, Any], i: int) -> tuple[str, pa.Array]:
    """(type, values) of field ``i`` of the open segment ``s``'s column ``col``."""
    from msqcore.storage import segment as seg
    f, prefix, n = col["fields"][i], f"field{i}.", s.num_rows
    if f["type"] == "STRING":
        card, width = f["cardinality"], f["idWidth"]
        ids = _k.unpack_ids(s.part(col, prefix + "ids"), width, n, card)
        lengths = s.part(col, prefix + "dictLengths").view("<u4")
        offsets = np.zeros(card + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = s.part(col, prefix + "dictData")
        dictionary = pa.Array.from_buffers(pa.large_string(), card, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        if f["hasNulls"]:  # entry 0 is null
            dictionary = pc.if_else(pa.array(np.arange(card) > 0), dictionary, pa.scalar(None, pa.large_string()))
        return "STRING", dictionary.take(pa.array(ids)).cast(pa.string())
    validity = s.validity(col, prefix + "validity", n, None)
    dtype, typ = seg._NUMERIC[f["type"]]
    values = s.part(col, prefix + "values").view(dtype)
    return f["type"], pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(values)],
                                            null_count=-1 if validity is not None else 0)
