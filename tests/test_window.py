"""The window operator against DuckDB's window functions on generated data with nulls and ties."""
from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from msqcore.engine.window import Frame, WindowCall, WindowSpec, apply_window
from msqcore.errors import TooManyRowsInAWindow


def data(n: int = 600, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    part = rng.choice(["a", "b", "c", "", None], n)
    order = rng.integers(0, 25, n)
    value = rng.integers(-50, 50, n)
    return pa.table({
        "id": np.arange(n),
        "p": pa.array(part.tolist()),
        "o": pa.array(order, mask=rng.random(n) < 0.1),
        "v": pa.array(value, mask=rng.random(n) < 0.2),
        "d": pa.array(rng.normal(size=n).round(3), mask=rng.random(n) < 0.2),
    })


def frame_sql(frame: Frame | None) -> str:
    if frame is None:
        return ""

    def bound(b, upper):
        if b is None:
            return "UNBOUNDED FOLLOWING" if upper else "UNBOUNDED PRECEDING"
        if b == 0:
            return "CURRENT ROW"
        return f"{abs(b)} {'FOLLOWING' if b > 0 else 'PRECEDING'}"
    return f" {'ROWS' if frame.rows else 'RANGE'} BETWEEN {bound(frame.lower, False)} AND {bound(frame.upper, True)}"


def duck(table: pa.Table, spec: WindowSpec) -> dict[str, list]:
    over = ""
    if spec.partition_by:
        over += "PARTITION BY " + ", ".join(spec.partition_by)
    if spec.order_by:
        over += " ORDER BY " + ", ".join(f"{c} {'DESC' if d else 'ASC'} NULLS {'FIRST' if nf else 'LAST'}"
                                         for c, d, nf in spec.order_by)
    items = []
    for call in spec.calls:
        args = ", ".join(([call.argument] if call.argument else ["*"] if call.function == "COUNT" else [])
                         + [repr(c) for c in call.constants])
        items.append(f"{call.function}({args}) OVER ({over}{frame_sql(call.frame)}) AS {call.name}")
    con = duckdb.connect()
    con.register("t", table)
    out = con.sql(f"SELECT id, {', '.join(items)} FROM t ORDER BY id").to_arrow_table()
    return {name: out.column(name).to_pylist() for name in out.column_names}


def ours(table: pa.Table, spec: WindowSpec) -> dict[str, list]:
    out = apply_window(table, spec)
    out = out.take(np.argsort(out.column("id").to_numpy()))
    return {name: out.column(name).to_pylist() for name in ["id"] + [c.name for c in spec.calls]}


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9))
        for x, y in zip(a, b))


ORDER = [("o", False, True), ("id", False, True)]  # a total order: row-based results are deterministic
SPECS = {
    "ranking": WindowSpec(["p"], [("o", False, True)], [
        WindowCall("rk", "RANK"), WindowCall("drk", "DENSE_RANK"), WindowCall("pr", "PERCENT_RANK"),
        WindowCall("cd", "CUME_DIST")]),
    "ranking desc nulls last": WindowSpec(["p"], [("o", True, False)], [
        WindowCall("rk", "RANK"), WindowCall("drk", "DENSE_RANK"), WindowCall("cd", "CUME_DIST")]),
    "row based": WindowSpec(["p"], ORDER, [
        WindowCall("rn", "ROW_NUMBER"), WindowCall("nt", "NTILE", constants=(4,)),
        WindowCall("nt7", "NTILE", constants=(7,)),
        WindowCall("lag", "LAG", "v"), WindowCall("lead2", "LEAD", "v", (2,)),
        WindowCall("lagd", "LAG", "v", (3, -1)), WindowCall("fv", "FIRST_VALUE", "v"),
        WindowCall("lv", "LAST_VALUE", "d")]),
    "running aggregates (default RANGE frame, peers included)": WindowSpec(["p"], [("o", False, True)], [
        WindowCall("s", "SUM", "v"), WindowCall("c", "COUNT", "v"), WindowCall("cs", "COUNT"),
        WindowCall("mn", "MIN", "v"), WindowCall("mx", "MAX", "d"), WindowCall("av", "AVG", "v"),
        WindowCall("sd", "SUM", "d")]),
    "whole partition": WindowSpec(["p"], [], [
        WindowCall("s", "SUM", "v"), WindowCall("c", "COUNT"), WindowCall("mx", "MAX", "v"),
        WindowCall("av", "AVG", "d")]),
    "sliding rows": WindowSpec(["p"], ORDER, [
        WindowCall("s", "SUM", "v", frame=Frame(True, -2, 1)), WindowCall("mn", "MIN", "v", frame=Frame(True, -3, 0)),
        WindowCall("mx", "MAX", "d", frame=Frame(True, 0, 4)), WindowCall("c", "COUNT", "v", frame=Frame(True, -1, 1)),
        WindowCall("ahead", "SUM", "d", frame=Frame(True, 1, 3)),
        WindowCall("behind", "MAX", "v", frame=Frame(True, -4, -2)),
        WindowCall("rest", "SUM", "v", frame=Frame(True, 0, None)),
        WindowCall("fv", "FIRST_VALUE", "v", frame=Frame(True, -2, 2)),
        WindowCall("lv", "LAST_VALUE", "v", frame=Frame(True, -2, 2))]),
    "range to the end": WindowSpec([], [("o", False, True)], [
        WindowCall("s", "SUM", "v", frame=Frame(False, 0, None)), WindowCall("c", "COUNT", frame=Frame(False, 0, 0)),
        WindowCall("mn", "MIN", "d", frame=Frame(False, None, None))]),
    "no partition": WindowSpec([], ORDER, [WindowCall("rn", "ROW_NUMBER"), WindowCall("s", "SUM", "v")]),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_window_matches_duckdb(name):
    table, spec = data(), SPECS[name]
    got, want = ours(table, spec), duck(table, spec)
    assert got["id"] == want["id"]
    for call in spec.calls:
        assert same(got[call.name], want[call.name]), (call, got[call.name][:20], want[call.name][:20])


def test_window_sums_in_row_order_and_types():
    table = pa.table({"id": [0, 1, 2, 3], "p": ["x", "x", "y", "y"], "d": [0.1, 0.2, 0.1, 0.2],
                      "v": pa.array([1, None, None, None], pa.int64())})
    out = apply_window(table, WindowSpec(["p"], [("id", False, True)], [
        WindowCall("s", "SUM", "d"), WindowCall("sv", "SUM", "v"), WindowCall("rn", "ROW_NUMBER")]))
    # running sums start afresh in each partition: 0.1 + 0.2 exactly as Druid adds them
    assert out.column("s").to_pylist() == [0.1, 0.1 + 0.2, 0.1, 0.1 + 0.2]
    assert out.column("sv").to_pylist() == [1, 1, None, None]  # SUM over only nulls is NULL
    assert out.schema.field("sv").type == pa.int64() and out.schema.field("rn").type == pa.int64()


def test_too_many_rows_in_a_window():
    table = data(50)
    with pytest.raises(TooManyRowsInAWindow) as e:
        apply_window(table, WindowSpec([], [], [WindowCall("c", "COUNT")]), max_rows=49)
    assert e.value.to_json()["numRows"] == 50 and e.value.to_json()["maxRows"] == 49
    assert apply_window(table, WindowSpec([], [], [WindowCall("c", "COUNT")]), max_rows=50).num_rows == 50


def test_empty_table():
    table = data(0)
    out = apply_window(table, SPECS["row based"])
    assert out.num_rows == 0 and "rn" in out.column_names
