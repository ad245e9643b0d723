"""Table-driven SQL cases (tests/sql_cases/*.sql, format in tests/sql_cases/README.md).

One server for the module; the datasource ``cases`` is ingested once through the task API
(INSERT with an inline EXTERN). Every case runs through ``POST /druid/v2/sql``; cases
marked ``-- task`` also run as a SELECT task and are compared with the report's results.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from client import HttpError
from conftest import Server

CASES_DIR = Path(__file__).resolve().parent / "sql_cases"

# The fixed data set. ``t`` is the row's time as text (it becomes __time); ``ts`` is
# another time-like string for TIME_PARSE.
CASES_ROWS = [
    {"id": 0, "t": "2021-01-01T00:00:00.000Z", "s": "abc", "s2": "b", "n": 1, "d": 1.5, "f": 1.5,
     "ts": "2021-01-01 00:00:00"},
    {"id": 1, "t": "2021-01-01T12:34:56.789Z", "s": None, "s2": "B", "n": -2, "d": -2.25, "f": -2.25,
     "ts": "2021-01-01T12:34:56.789Z"},
    {"id": 2, "t": "2021-01-02T23:59:59.000Z", "s": "", "s2": None, "n": None, "d": None, "f": None,
     "ts": ""},
    {"id": 3, "t": "2021-01-03T06:00:00.000Z", "s": "héllo wörld", "s2": "", "n": 0, "d": 0.0, "f": 0.0,
     "ts": "not a time"},
    {"id": 4, "t": "2021-01-04T18:30:00.000Z", "s": "  pad  ", "s2": "pad", "n": 100, "d": 2.675, "f": 2.5,
     "ts": "2021-01-04"},
    {"id": 5, "t": "2021-01-05T00:00:00.000Z", "s": "ABC", "s2": "abc", "n": 7, "d": 1e10, "f": 10.0,
     "ts": "01/05/2021 13:45"},
    {"id": 6, "t": "2021-02-28T10:00:00.000Z", "s": "日本語", "s2": "語", "n": -15, "d": -0.5, "f": -0.5,
     "ts": None},
    {"id": 7, "t": "2021-03-14T10:30:00.000Z", "s": "a_b%c", "s2": "%", "n": 42, "d": 3.25, "f": 3.25,
     "ts": "2021-03-14T02:30:00"},
    {"id": 8, "t": "2021-12-31T23:00:00.000Z", "s": "x,y", "s2": "y", "n": 9, "d": 100.0, "f": 100.0,
     "ts": "2021-12-31T23:00:00+05:30"},
    {"id": 9, "t": "2020-02-29T00:00:00.000Z", "s": "Hello World", "s2": "o", "n": -1, "d": -7.125, "f": -7.125,
     "ts": "2020-02-29T00:00:00Z"},
]
# ``cases_b``: a second datasource with fewer columns (for UNION ALL of two tables).
CASES_B_ROWS = [
    {"id": 10, "t": "2021-01-01T00:00:00.000Z", "s": "abc", "n": 5},
    {"id": 11, "t": "2022-06-01T00:00:00.000Z", "s": None, "n": None},
    {"id": 12, "t": "2022-06-02T00:00:00.000Z", "s": "zz", "n": -3},
]
_SIGNATURE = [{"name": "id", "type": "long"}, {"name": "t", "type": "string"}, {"name": "s", "type": "string"},
              {"name": "s2", "type": "string"}, {"name": "n", "type": "long"}, {"name": "d", "type": "double"},
              {"name": "f", "type": "float"}, {"name": "ts", "type": "string"}]


@dataclass
class Case:
    file: str
    name: str
    sql: str
    line: int
    expect: list | None = None
    error: tuple[int, str, str] | None = None
    context: dict = field(default_factory=dict)
    parameters: list | None = None
    task: bool = False


def load_cases(path: Path) -> list[Case]:
    """Parse one case file (format: tests/sql_cases/README.md)."""
    cases: list[Case] = []
    current: Case | None = None
    sql: list[str] = []

    def finish():
        nonlocal current, sql
        if current is not None:
            raise ValueError(f"{path.name}:{current.line}: case {current.name!r} has no -- expect: or -- error:")

    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line.startswith("-- name:"):
            finish()
            current = Case(path.stem, line[len("-- name:"):].strip(), "", lineno)
            sql = []
        elif current is None:
            continue
        elif line.startswith("-- context:"):
            current.context = json.loads(line[len("-- context:"):])
        elif line.startswith("-- parameters:"):
            current.parameters = json.loads(line[len("-- parameters:"):])
        elif line == "-- task":
            current.task = True
        elif line.startswith("-- expect:") or line.startswith("-- error:"):
            current.sql = "\n".join(sql).strip()
            if not current.sql:
                raise ValueError(f"{path.name}:{lineno}: case {current.name!r} has no SQL")
            if line.startswith("-- expect:"):
                current.expect = json.loads(line[len("-- expect:"):])
            else:
                status, code, *message = line[len("-- error:"):].strip().split(" ", 2)
                current.error = (int(status), code, message[0] if message else "")
            cases.append(current)
            current = None
        elif line.startswith("--"):
            continue
        else:
            sql.append(raw)
    finish()
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"{path.name}: duplicate case names {sorted(dupes)}")
    return cases


ALL_CASES = [c for p in sorted(CASES_DIR.glob("*.sql")) for c in load_cases(p)]


def _ids(case: Case) -> str:
    return f"{case.file}:{case.name}"


@pytest.fixture(scope="module")
def cases_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("sqlcases") / "var")
    srv.start()
    try:
        for table, rows, columns in (("cases", CASES_ROWS, "id, s, s2, n, d, f, ts"),
                                     ("cases_b", CASES_B_ROWS, "id, s, n")):
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            source = json.dumps({"type": "inline", "data": data}, ensure_ascii=False).replace("'", "''")
            signature = [c for c in _SIGNATURE if c["name"] in rows[0]]
            sql = (f"INSERT INTO {table} SELECT TIME_PARSE(t) AS __time, {columns} "
                   f"FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{json.dumps(signature)}')) "
                   "PARTITIONED BY DAY")
            task = srv.client.submit(sql)
            status = srv.client.wait(task)
            assert status["statusCode"] == "SUCCESS", status
        yield srv
    finally:
        srv.stop()


def _same(actual, expected) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, float) or isinstance(actual, float):
        if not (isinstance(actual, float) and isinstance(expected, float)):
            return False
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and \
            all(_same(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and list(actual) == list(expected) and \
            all(_same(actual[k], expected[k]) for k in expected)
    return type(actual) is type(expected) and actual == expected


def _describe(case: Case, actual) -> str:
    return (f"{case.file}.sql:{case.line} {case.name}\n{case.sql}\n"
            f"expected: {json.dumps(case.expect, ensure_ascii=False)}\n"
            f"actual:   {json.dumps(actual, ensure_ascii=False)}")


def _sql_body(case: Case) -> dict:
    body = {"query": case.sql, "resultFormat": "object"}
    if case.context:
        body["context"] = case.context
    if case.parameters is not None:
        body["parameters"] = case.parameters
    return body


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids)
def test_sql_case(cases_server, case: Case):
    client = cases_server.client
    try:
        _, _, text = client.request("POST", "/druid/v2/sql", _sql_body(case))
    except HttpError as e:
        if case.error is None:
            pytest.fail(f"{case.file}.sql:{case.line} {case.name}: unexpected HTTP {e.status}: {e.body}")
        status, code, message = case.error
        body = e.json()
        assert e.status == status, body
        assert body.get("errorCode") == code, body
        assert message in body.get("errorMessage", ""), body
        return
    if case.error is not None:
        pytest.fail(f"{case.file}.sql:{case.line} {case.name}: expected an error {case.error}, got {text}")
    actual = json.loads(text)
    assert _same(actual, case.expect), _describe(case, actual)


TASK_CASES = [c for c in ALL_CASES if c.task and c.expect is not None]


def _native(value, sql_type: str):
    if value is None:
        return None
    if sql_type == "TIMESTAMP":
        from msqcore.kernels.timeparse import parse_iso_millis
        import pyarrow as pa
        return parse_iso_millis(pa.array([value], pa.string()))[0].as_py()
    if sql_type == "BOOLEAN":
        return 1 if value else 0
    return value


@pytest.mark.parametrize("case", TASK_CASES, ids=_ids)
def test_sql_case_as_task(cases_server, case: Case):
    client = cases_server.client
    extra = {"parameters": case.parameters} if case.parameters is not None else {}
    task = client.submit(case.sql, dict(case.context), **extra)
    status = client.wait(task)
    assert status["statusCode"] == "SUCCESS", status
    results = client.report(task)["results"]
    names = [c["name"] for c in results["signature"]]
    types = results["sqlTypeNames"]
    expected = [[_native(row[n], t) for n, t in zip(names, types)] for row in case.expect]
    actual = results["results"]
    assert _same(actual, expected), _describe(case, actual)


def test_case_files_parse():
    assert ALL_CASES, "no cases found"
    assert len({(c.file, c.name) for c in ALL_CASES}) == len(ALL_CASES)
