"""EXTERN input formats: bytes → Arrow tables typed by the EXTERN signature.

pyarrow's readers do the parsing; this module applies Druid's rules around them:
only signature columns are kept, missing columns read as null, values are converted
to the declared type leniently (a string that is not a number becomes null).
"""
from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson

from msqcore.errors import CannotParseExternalData, InvalidInput
from msqcore.planner.expressions import _cast, arrow_type

SUPPORTED = ("json", "csv", "tsv")
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


def validate_input_format(spec: dict) -> None:
    kind = spec.get("type")
    if kind not in SUPPORTED:
        raise InvalidInput(f"Could not resolve type id '{kind}' as a subtype of InputFormat; "
                           f"supported here: {', '.join(SUPPORTED)}")
    if kind in ("csv", "tsv") and not spec.get("columns") and not spec.get("findColumnsFromHeader"):
        raise InvalidInput("If columns field is not set, the first row of your data must have your header and "
                           "findColumnsFromHeader must be set to true")


_DEFAULTS = {"json": {"keepNullColumns": False, "assumeNewlineDelimited": False, "useJsonNodeReader": False}}


def normalize_input_format(spec: dict) -> dict:
    """The inputFormat as Druid serializes it back, with its defaults filled in."""
    return {**{"type": spec["type"]}, **_DEFAULTS.get(spec["type"], {}), **spec}


def compression_for(uri: str) -> str | None:
    path = uri.split("?", 1)[0].lower()
    for ext, codec in _COMPRESSION.items():
        if path.endswith(ext):
            return codec
    return None


def read_table(raw, uri: str, spec: dict, signature: list[tuple[str, str]]) -> pa.Table:
    """Parse one split into a table with exactly the signature's columns and types."""
    codec = compression_for(uri)
    try:
        if codec:
            data = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec).read()
        else:
            data = raw.read()
    except (OSError, pa.ArrowException) as e:
        raise CannotParseExternalData(f"Unable to read input [{uri}]: {e}") from None
    kind = spec["type"]
    if kind == "json":
        table = _read_json(data, uri)
    else:
        table = _read_delimited(data, uri, spec)
    return conform(table, signature)


def conform(table: pa.Table, signature: list[tuple[str, str]]) -> pa.Table:
    """Select and convert the signature's columns; absent ones are all null."""
    arrays, names = [], []
    for name, sql_type in signature:
        target = arrow_type(sql_type)
        if name in table.column_names:
            col = table.column(name)
            if pa.types.is_null(col.type):
                col = pa.nulls(len(col), target)
            elif col.type != target:
                col = _convert(col, sql_type)
        else:
            col = pa.nulls(table.num_rows, target)
        arrays.append(col)
        names.append(name)
    return pa.table(arrays, names=names) if names else table.select([])  # keeps the row count


def _convert(col, sql_type: str):
    t = col.type
    if pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        # Druid reads a nested value declared as a string as its JSON text.
        return pa.array([None if v is None else json.dumps(v, separators=(",", ":")) for v in col.to_pylist()],
                        pa.string()) if sql_type == "VARCHAR" else pa.nulls(len(col), arrow_type(sql_type))
    return _cast(col, sql_type)


def _read_json(data: bytes, uri: str) -> pa.Table:
    if not data.strip():
        return pa.table({})
    read_options = pjson.ReadOptions(block_size=1 << 24)
    try:
        table = pjson.read_json(io.BytesIO(data), read_options=read_options)
        # pyarrow turns ISO-looking strings into timestamps; Druid keeps the text. Read
        # those columns again as strings (they only ever held strings).
        stamps = [f for f in table.schema if pa.types.is_timestamp(f.type)]
        if stamps:
            schema = pa.schema([pa.field(f.name, pa.string()) for f in stamps])
            table = pjson.read_json(io.BytesIO(data), read_options=read_options, parse_options=pjson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer"))
        return table
    except pa.ArrowInvalid as e:
        if "changed from" not in str(e):
            raise CannotParseExternalData(f"Unable to parse row (Path: {uri}): {e}") from None
    # A column holds values of different JSON types (say numbers and strings): pyarrow
    # cannot infer one type, so parse rows here and keep every scalar as its JSON text.
    rows = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CannotParseExternalData(f"Unable to parse row [{line[:200]}] (Path: {uri}, Line: {number}): {e}") from None
        rows.append({k: (v if isinstance(v, str) or v is None else json.dumps(v)) for k, v in row.items()})
    return pa.Table.from_pylist(rows)


def _read_delimited(data: bytes, uri: str, spec: dict) -> pa.Table:
    skip = int(spec.get("skipHeaderRows", 0))
    delimiter = "," if spec["type"] == "csv" else spec.get("delimiter", "\t")
    names = spec.get("columns")
    if spec.get("findColumnsFromHeader"):
        import csv
        lines = data.split(b"\n", skip + 1)
        if len(lines) <= skip:
            return pa.table({})
        names = next(csv.reader([lines[skip].decode("utf-8", "replace").rstrip("\r")], delimiter=delimiter))
        skip += 1
    read_options = pcsv.ReadOptions(column_names=names, skip_rows=skip, block_size=1 << 24)
    parse_options = pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if spec["type"] == "csv" else False)
    # Every column is read as text, then converted by signature type like the JSON path;
    # Druid reads an empty field as null.
    convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                                  null_values=[""])
    try:
        return pcsv.read_csv(io.BytesIO(data), read_options=read_options, parse_options=parse_options,
                             convert_options=convert)
    except pa.ArrowInvalid as e:
        raise CannotParseExternalData(f"Unable to parse row (Path: {uri}): {e}") from None
