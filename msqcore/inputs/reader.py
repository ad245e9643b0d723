"""Streaming reads of EXTERN splits: source → decompression → format → signature.

``read_split`` yields ``(table, raw_bytes)`` pairs: a bounded batch of rows typed by the
EXTERN signature (system fields filled in), and how many raw (still compressed) bytes
were consumed since the previous pair. ``ParseWarnings`` counts rows that did not parse
against ``maxParseExceptions`` the way Druid does.
"""
from __future__ import annotations

import csv
import lzma
import struct
import zlib
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from msqcore.errors import CannotParseExternalData, TooManyWarnings, UnknownError
from msqcore.inputs import formats
from msqcore.inputs.compression import DecompressedStream, codec_for
from msqcore.inputs.sources import InputFile, open_random_access, open_raw

CODE = "CannotParseExternalData"
VERBOSE_PARSE_WARNINGS = 5  # Druid sends at most 5 parse-exception reports per worker
_READ_ERRORS = (csv.Error, OSError, EOFError, ValueError, KeyError, IndexError, TypeError, struct.error, zlib.error,
                lzma.LZMAError, pa.ArrowException)


def max_parse_exceptions(context: dict | None) -> int:
    """``maxParseExceptions`` from the query context: SQL defaults to 0 (``mode=strict``),
    ``mode=nonStrict`` means unlimited (-1); below -1 is refused as Druid does."""
    context = context or {}
    value = context.get("maxParseExceptions")
    if value is None:
        return -1 if str(context.get("mode", "strict")).lower() == "nonstrict" else 0
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise UnknownError(f"java.lang.IllegalArgumentException: Invalid limit of {value} supplied for warnings "
                           f"of type {CODE}. Limit can be greater than or equal to -1.") from None
    if limit < -1:
        raise UnknownError(f"java.lang.IllegalArgumentException: Invalid limit of {limit} supplied for warnings "
                           f"of type {CODE}. Limit can be greater than or equal to -1.")
    return limit


class ParseWarnings:
    """CannotParseExternalData warnings of one worker for one stage.

    With a limit of 0 the first bad row fails the task with ``CannotParseExternalData``;
    with a positive limit, one more than it fails it with ``TooManyWarnings``; -1 never.
    """

    def __init__(self, limit: int, keep: int = VERBOSE_PARSE_WARNINGS):
        self.limit = limit
        self.keep = keep
        self.count = 0
        self.samples: list[dict] = []  # the first few warnings, as fault JSON
        self.reasons: list[str] = []  # why each sample failed (the parser's own words)

    def __call__(self, message: str, reason: str) -> None:
        self.count += 1
        if len(self.samples) < self.keep:
            self.samples.append({"errorCode": CODE, "errorMessage": message})
            self.reasons.append(reason)
        if self.limit == 0:
            raise CannotParseExternalData(message)
        if 0 < self.limit < self.count:
            raise TooManyWarnings(maxWarnings=self.limit, rootErrorCode=CODE)


def read_signature(query) -> list[tuple[str, str]]:
    """The EXTERN columns a query reads, in signature order: the only ones parsed and typed.

    A query that reads no column (``COUNT(*)``) still gets the first one, because a
    table without columns cannot carry its row count through concatenation."""
    signature = query.source.signature
    used = set(query.source_columns())
    return [(n, t) for n, t in signature if n in used] or signature[:1]


def read_split(f: InputFile, input_format: dict, signature: list[tuple[str, str]], on_parse_error,
               temp_dir: str | None = None) -> Iterator[tuple[pa.Table | None, int]]:
    """Read one split in bounded batches, each typed by the signature."""
    system = [(n, t) for n, t in signature if n in f.system]
    data_signature = [(n, t) for n, t in signature if n not in f.system]
    ctx = formats.SplitContext(None if f.kind == "inline" else f.source_uri, data_signature, on_parse_error, temp_dir)
    kind = input_format["type"]
    codec = codec_for(f.uri) if f.kind != "inline" else None

    def finish(table: pa.Table) -> pa.Table:
        table = _conform_keeping_lists(table, data_signature) if kind in formats.LIST_DELIMITED else \
            formats.conform(table, data_signature)
        if not system:
            return table
        columns = {n: table.column(n) for n in table.column_names}
        for n, t in system:
            columns[n] = pa.array([f.system[n]] * table.num_rows, pa.string())
            if t != "VARCHAR":
                columns[n] = formats.conform(pa.table({n: columns[n]}), [(n, t)]).column(0)
        return pa.table([columns[n] for n, _ in signature], names=[n for n, _ in signature])

    if kind in formats.RANDOM_ACCESS_READERS:
        handle = open_random_access(f, codec, temp_dir)
        try:
            for table in _guarded(formats.RANDOM_ACCESS_READERS[kind](handle.source, input_format, ctx), f, kind):
                yield finish(table), 0
            yield None, handle.raw_bytes
        finally:
            handle.close()
        return
    raw = open_raw(f)
    stream = DecompressedStream(raw, f.source_uri, codec)
    try:
        counted = 0
        for table in _guarded(formats.TEXT_READERS[kind](stream, input_format, ctx), f, kind):
            yield finish(table), raw.count - counted
            counted = raw.count
        if raw.count > counted:
            yield None, raw.count - counted
    finally:
        stream.close()


def _conform_keeping_lists(table: pa.Table, signature: list[tuple[str, str]]) -> pa.Table:
    """``formats.conform``, except that a VARCHAR column the format split by its
    ``listDelimiter`` (a ``list<string>``) stays a list: the engine's multi-value string.
    In a column of another type a one-value row is that value, and a row of several
    values is null (Druid fails such a row with a parse exception)."""
    lists = set()
    for name, sql_type in signature:
        if name not in table.column_names or not pa.types.is_list(table.schema.field(name).type):
            continue
        if sql_type == "VARCHAR":
            lists.add(name)
        elif sql_type != "VARCHAR ARRAY":
            col = table.column(name).combine_chunks()
            one = pc.fill_null(pc.equal(pc.list_value_length(col), 1), False)
            first = pa.array(col.offsets.to_numpy()[:-1], mask=pc.invert(one).to_numpy(zero_copy_only=False))
            table = table.set_column(table.column_names.index(name), name, col.values.take(first))
    if not lists:
        return formats.conform(table, signature)
    out = formats.conform(table.drop_columns(list(lists)), [(n, t) for n, t in signature if n not in lists])
    columns = [table.column(n) if n in lists else out.column(n) for n, _ in signature]
    return pa.table(columns, names=[n for n, _ in signature])


def _guarded(batches: Iterator[pa.Table], f: InputFile, kind: str) -> Iterator[pa.Table]:
    """A file the format reader cannot read at all fails the task, naming it."""
    try:
        yield from batches
    except _READ_ERRORS as e:
        raise UnknownError(f"Cannot read {kind} data from input [{f.source_uri}]: {e}") from None
