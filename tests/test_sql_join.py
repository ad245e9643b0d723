"""JOINs through the task engine: the stage definitions of both join algorithms, INSERT with
a join, lookups, and the two join faults. (Join results on the SQL endpoint are the
table-driven cases in sql_cases/join.sql.) Expected rows are computed with DuckDB."""
from __future__ import annotations

import json

import duckdb
import pytest

from client import HttpError

FACTS = [{"ts": f"2021-01-0{1 + i % 3}T0{i % 10}:00:00Z", "k": "abcx"[i % 4] if i != 5 else None, "n": i}
         for i in range(12)]
DIMS = [{"k": "a", "name": "alpha"}, {"k": "b", "name": "beta"}, {"k": "b", "name": "bravo"},
        {"k": "z", "name": "zulu"}, {"k": None, "name": "nothing"}]


def extern(rows: list[dict], signature: list[tuple[str, str]]) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows)
    sig = json.dumps([{"name": n, "type": t} for n, t in signature])
    return f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': data})}', '{{\"type\":\"json\"}}', '{sig}'))"


FACTS_SRC = extern(FACTS, [("ts", "string"), ("k", "string"), ("n", "long")])
DIMS_SRC = extern(DIMS, [("k", "string"), ("name", "string")])


def duck(sql: str) -> list[list]:
    """``sql`` over DuckDB tables ``facts`` and ``dims`` holding the same rows."""
    con = duckdb.connect()
    con.execute("CREATE TABLE facts (ts VARCHAR, k VARCHAR, n BIGINT)")
    con.executemany("INSERT INTO facts VALUES (?, ?, ?)", [(r["ts"], r["k"], r["n"]) for r in FACTS])
    con.execute("CREATE TABLE dims (k VARCHAR, name VARCHAR)")
    con.executemany("INSERT INTO dims VALUES (?, ?)", [(r["k"], r["name"]) for r in DIMS])
    return [list(r) for r in con.execute(sql).fetchall()]


def run(c, sql: str, **context) -> dict:
    task = c.submit(sql, context=context or None)
    status = c.wait(task)
    report = c.report(task)
    assert status["statusCode"] == "SUCCESS", report["status"].get("errorReport")
    return report


def _rows(report: dict) -> list[list]:
    return sorted(report["results"]["results"], key=repr)


def test_broadcast_join_of_two_externs(server):
    c = server.client
    report = run(c, f"SELECT f.n, f.k, d.name FROM {FACTS_SRC} f LEFT JOIN {DIMS_SRC} d ON f.k = d.k")
    assert _rows(report) == sorted(duck("SELECT f.n, f.k, d.name FROM facts f LEFT JOIN dims d ON f.k = d.k"), key=repr)
    stages = [s["definition"] for s in report["stages"]]
    assert [s["processor"]["type"] for s in stages] == ["scan", "scan"]
    assert stages[0]["shuffleSpec"] == {"type": "mix"}
    leaf = stages[1]
    assert leaf["input"][0]["type"] == "external" and leaf["input"][1] == {"type": "stage", "stage": 0}
    assert leaf["broadcast"] == [1]
    datasource = leaf["processor"]["query"]["dataSource"]
    assert datasource == {"type": "join", "left": {"type": "inputNumber", "inputNumber": 0},
                          "right": {"type": "inputNumber", "inputNumber": 1}, "rightPrefix": "j0.",
                          "condition": '("k" == "j0.k")', "joinType": "LEFT", "joinAlgorithm": "broadcast"}


def test_sort_merge_join_plans_hash_shuffles_and_a_join_stage(server):
    c = server.client
    sql = f"SELECT f.n, d.name FROM {FACTS_SRC} f FULL JOIN {DIMS_SRC} d ON f.k = d.k"
    report = run(c, sql, sqlJoinAlgorithm="sortMerge")
    assert _rows(report) == sorted(duck("SELECT f.n, d.name FROM facts f FULL JOIN dims d ON f.k = d.k"), key=repr)
    stages = [s["definition"] for s in report["stages"]]
    assert [s["processor"]["type"] for s in stages] == ["scan", "scan", "sortMergeJoin", "scan"]
    for stage, key in ((stages[0], "k"), (stages[1], "k")):
        assert stage["shuffleSpec"]["type"] == "hash"
        assert stage["shuffleSpec"]["clusterBy"]["columns"] == [{"columnName": key, "order": "ASCENDING"}]
    join = stages[2]
    assert join["input"] == [{"type": "stage", "stage": 0}, {"type": "stage", "stage": 1}]
    assert join["processor"] == {"type": "sortMergeJoin", "rightPrefix": "j0.", "condition": '("k" == "j0.k")',
                                 "joinType": "FULL"}
    assert stages[3]["input"] == [{"type": "stage", "stage": 2}]


def test_sort_merge_join_over_several_workers(server, tmp_path):
    """Two files of facts on two workers: each hash partition of both sides meets on one worker."""
    for part in range(2):
        rows = FACTS[part::2]
        (tmp_path / f"facts{part}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = {"type": "local", "baseDir": str(tmp_path), "filter": "facts*.json"}
    facts = (f"TABLE(EXTERN('{json.dumps(source)}', '{{\"type\":\"json\"}}', "
             "'[{\"name\":\"k\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"long\"}]'))")
    sql = f"SELECT d.name, COUNT(*) AS c, SUM(f.n) AS s FROM {facts} f FULL JOIN {DIMS_SRC} d ON f.k = d.k GROUP BY 1"
    report = run(server.client, sql, sqlJoinAlgorithm="sortMerge", maxNumTasks=3)
    want = duck("SELECT d.name, COUNT(*), SUM(f.n) FROM facts f FULL JOIN dims d ON f.k = d.k GROUP BY 1")
    assert _rows(report) == sorted(want, key=repr)
    stages = report["stages"]
    assert [s["definition"]["processor"]["type"] for s in stages] == \
        ["scan", "scan", "sortMergeJoin", "groupByPreShuffle", "groupByPostShuffle"]
    assert stages[0]["definition"]["shuffleSpec"]["partitions"] == 2 and stages[0]["partitionCount"] == 2
    assert stages[0]["workerCount"] == 2 and stages[2]["workerCount"] == 2


@pytest.mark.parametrize("algorithm", ["broadcast", "sortMerge"])
def test_join_on_an_expression_with_a_grouped_limited_input(server, tmp_path, algorithm):
    """A key that is an expression is hashed like a column key (groupBy's ``hash`` shuffle); a
    grouped right input with LIMIT ends in a one-worker ``limit`` stage before the join."""
    for part in range(2):
        (tmp_path / f"facts{part}.json").write_text("".join(json.dumps(r) + "\n" for r in FACTS[part::2]))
    source = {"type": "local", "baseDir": str(tmp_path), "filter": "facts*.json"}
    facts = (f"TABLE(EXTERN('{json.dumps(source)}', '{{\"type\":\"json\"}}', "
             "'[{\"name\":\"k\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"long\"}]'))")
    sql = (f"SELECT f.n, t.name FROM {facts} f LEFT JOIN (SELECT UPPER(k) AS uk, MAX(name) AS name FROM {DIMS_SRC} "
           "GROUP BY 1 ORDER BY 1 LIMIT 2) t ON UPPER(f.k) = t.uk")
    report = run(server.client, sql, sqlJoinAlgorithm=algorithm, maxNumTasks=3)
    want = duck("SELECT f.n, t.name FROM facts f LEFT JOIN (SELECT UPPER(k) AS uk, MAX(name) AS name FROM dims "
                "GROUP BY 1 ORDER BY 1 NULLS FIRST LIMIT 2) t ON UPPER(f.k) = t.uk")
    assert _rows(report) == sorted(want, key=repr)
    stages = {s["definition"]["processor"]["type"]: s for s in report["stages"]}
    assert stages["limit"]["workerCount"] == 1 and stages["groupByPostShuffle"]["workerCount"] == 2
    if algorithm == "sortMerge":
        assert [s["definition"]["processor"]["type"] for s in report["stages"]] == \
            ["scan", "groupByPreShuffle", "groupByPostShuffle", "limit", "sortMergeJoin", "scan"]
        base = report["stages"][0]["definition"]
        assert base["shuffleSpec"]["clusterBy"]["columns"] == [{"columnName": "__k0", "order": "ASCENDING"}]
        assert stages["limit"]["definition"]["shuffleSpec"]["clusterBy"]["columns"] == \
            [{"columnName": "uk", "order": "ASCENDING"}]
        assert stages["sortMergeJoin"]["workerCount"] == 2


def test_right_join_needs_sort_merge(server):
    with pytest.raises(HttpError) as e:
        server.client.submit(f"SELECT f.n FROM {FACTS_SRC} f RIGHT JOIN {DIMS_SRC} d ON f.k = d.k")
    assert e.value.status == 400
    assert e.value.json()["errorCode"] == "general" and "sortMerge" in e.value.json()["errorMessage"]


def test_insert_with_join_and_group_by(server):
    c = server.client
    run(c, f"INSERT INTO joined SELECT TIME_PARSE(f.ts) AS __time, d.name, SUM(f.n) AS total "
           f"FROM {FACTS_SRC} f JOIN {DIMS_SRC} d ON f.k = d.k GROUP BY 1, 2 PARTITIONED BY DAY")
    rows = c.sql("SELECT TIME_FORMAT(__time, 'yyyy-MM-dd') AS d, name, total FROM joined")
    got = sorted([[r["d"], r["name"], r["total"]] for r in rows], key=repr)
    want = duck("SELECT substr(f.ts, 1, 10), d.name, SUM(f.n) FROM facts f JOIN dims d ON f.k = d.k GROUP BY 1, 2")
    assert got == sorted(want, key=repr)


def test_join_of_datasource_and_lookup_on_both_engines(server):
    c = server.client
    run(c, f"INSERT INTO facts SELECT TIME_PARSE(ts) AS __time, k, n FROM {FACTS_SRC} PARTITIONED BY DAY")
    assert c.post("/druid/coordinator/v1/lookups/config", {}) is not None
    c.post("/druid/coordinator/v1/lookups/config", {"__default": {"names": {
        "version": "v1", "lookupExtractorFactory": {"type": "map", "map": {"a": "alpha", "c": "charlie"}}}}})
    sql = "SELECT f.k, f.n, l.v FROM facts f INNER JOIN lookup.names l ON f.k = l.k"
    want = sorted(duck("SELECT f.k, f.n, l.v FROM facts f JOIN (VALUES ('a', 'alpha'), ('c', 'charlie')) "
                       "AS l(k, v) ON f.k = l.k"), key=repr)
    report = run(c, sql)
    assert _rows(report) == want
    leaf = report["stages"][0]["definition"]
    assert leaf["input"][1] == {"type": "LookupInputSpec", "lookupName": "names"} and leaf["broadcast"] == [1]
    assert sorted([[r["k"], r["n"], r["v"]] for r in c.sql(sql)], key=repr) == want
    # a lookup on its own is a source of the task engine too
    report = run(c, "SELECT k, v FROM lookup.names ORDER BY k")
    assert report["results"]["results"] == [["a", "alpha"], ["c", "charlie"]]
    assert report["stages"][0]["definition"]["input"] == [{"type": "LookupInputSpec", "lookupName": "names"}]


def test_broadcast_tables_too_large(server):
    c = server.client
    task = c.submit(f"SELECT f.n FROM {FACTS_SRC} f JOIN {DIMS_SRC} d ON f.k = d.k",
                    context={"maxBroadcastTablesSize": 10})
    assert c.wait(task)["statusCode"] == "FAILED"
    error = c.report(task)["status"]["errorReport"]["error"]
    assert error["errorCode"] == "BroadcastTablesTooLarge" and error["maxBroadcastTablesSize"] == 10
    assert error["errorMessage"].startswith("Size of broadcast tables in JOIN exceeds reserved memory limit "
                                            "(memory reserved for broadcast tables = [10] bytes).")


def test_too_many_rows_with_same_key(server):
    c = server.client
    task = c.submit(f"SELECT f.n FROM {FACTS_SRC} f JOIN {DIMS_SRC} d ON f.k = d.k",
                    context={"sqlJoinAlgorithm": "sortMerge", "maxSortMergeJoinBufferedBytes": 1})
    assert c.wait(task)["statusCode"] == "FAILED"
    error = c.report(task)["status"]["errorReport"]["error"]
    assert error["errorCode"] == "TooManyRowsWithSameKey", error
    assert error["key"] == ["b"] and error["maxBytes"] == 1 and error["numBytes"] > 1  # "b": the most rows
    assert error["errorMessage"].startswith("Too many rows with the same key[[b]] on both sides of sort-merge join")


@pytest.mark.parametrize("algorithm", ["broadcast", "sortMerge"])
def test_non_equi_condition_is_refused(server, algorithm):
    with pytest.raises(HttpError) as e:
        server.client.submit(f"SELECT f.n FROM {FACTS_SRC} f JOIN {DIMS_SRC} d ON f.k > d.k",
                             context={"sqlJoinAlgorithm": algorithm})
    assert e.value.status == 400
    assert e.value.json()["errorMessage"] == ("Query could not be planned. A possible reason is [SQL requires a "
                                              "join with 'GREATER_THAN' condition that is not supported.]")


def test_replace_with_a_join_to_values_and_a_comma_join(server):
    c = server.client
    run(c, f"REPLACE INTO labelled OVERWRITE ALL SELECT TIME_PARSE(f.ts) AS __time, f.n, v.label "
           f"FROM {FACTS_SRC} f, (VALUES ('a', 'first'), ('c', 'third')) AS v(k, label) WHERE f.k = v.k "
           f"PARTITIONED BY DAY")
    rows = sorted([[r["n"], r["label"]] for r in c.sql("SELECT n, label FROM labelled")])
    assert rows == sorted(duck("SELECT f.n, v.label FROM facts f, (VALUES ('a', 'first'), ('c', 'third')) "
                               "AS v(k, label) WHERE f.k = v.k"))
    task = c.submit(f"SELECT f.n FROM {FACTS_SRC} f, (VALUES ('a', 'first')) AS v(k, label) WHERE f.k = v.k")
    assert c.wait(task)["statusCode"] == "SUCCESS"
    leaf = c.report(task)["stages"][0]["definition"]
    assert leaf["input"][1] == {"type": "InlineInputSpec", "dataSource": {
        "type": "inline", "columnNames": ["k", "label"], "columnTypes": ["STRING", "STRING"],
        "rows": [["a", "first"]]}}
    assert leaf["processor"]["query"]["dataSource"]["joinType"] == "INNER"  # the WHERE equality became the key


def test_sort_merge_without_keys_runs_broadcast(server):
    """A cross join cannot sort-merge: Druid plans it as a broadcast join and its fault says so."""
    c = server.client
    sql = f"SELECT COUNT(*) AS c FROM {FACTS_SRC} f CROSS JOIN {DIMS_SRC} d"
    report = run(c, sql, sqlJoinAlgorithm="sortMerge")
    assert report["results"]["results"] == [[len(FACTS) * len(DIMS)]]
    leaf = report["stages"][1]["definition"]
    # planned as broadcast; the join datasource keeps the algorithm the SQL layer was given
    assert leaf["broadcast"] == [1] and leaf["processor"]["query"]["dataSource"]["joinAlgorithm"] == "sortMerge"
    task = c.submit(sql, context={"sqlJoinAlgorithm": "sortMerge", "maxBroadcastTablesSize": 10})
    assert c.wait(task)["statusCode"] == "FAILED"
    error = c.report(task)["status"]["errorReport"]["error"]
    assert error["configuredJoinAlgorithm"] == "sortMerge"
    assert "even though [sqlJoinAlgorithm: sortMerge] is set in query context" in error["errorMessage"]


@pytest.mark.parametrize("kind", ["INNER", "LEFT", "RIGHT", "FULL"])
def test_sort_merge_matches_duckdb_on_generated_data(server, tmp_path, kind):
    """Generated facts in three files (three workers) with repeated and null keys, joined to
    dims with repeated keys; aggregates compared with DuckDB."""
    import random
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(40)]
    facts = [{"k": rng.choice(keys + [None]), "n": rng.randint(-50, 50)} for _ in range(3000)]
    dims = [{"k": rng.choice(keys[:30] + [None, "extra"]), "w": rng.randint(0, 9)} for _ in range(60)]
    for part in range(3):
        (tmp_path / f"f{part}.json").write_text("".join(json.dumps(r) + "\n" for r in facts[part::3]))
    (tmp_path / "dims.json").write_text("".join(json.dumps(r) + "\n" for r in dims))

    def local(pattern, signature):
        source = json.dumps({"type": "local", "baseDir": str(tmp_path), "filter": pattern})
        return f"TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{json.dumps(signature)}'))"

    f_src = local("f*.json", [{"name": "k", "type": "string"}, {"name": "n", "type": "long"}])
    d_src = local("dims.json", [{"name": "k", "type": "string"}, {"name": "w", "type": "long"}])
    select = ("SELECT d.w, COUNT(*) AS c, COUNT(f.n) AS cn, SUM(f.n) AS s FROM {f} f " + kind +
              " JOIN {d} d ON f.k = d.k GROUP BY d.w")
    report = run(server.client, select.format(f=f_src, d=d_src), sqlJoinAlgorithm="sortMerge", maxNumTasks=4)
    con = duckdb.connect()
    con.execute("CREATE TABLE facts (k VARCHAR, n BIGINT)")
    con.executemany("INSERT INTO facts VALUES (?, ?)", [(r["k"], r["n"]) for r in facts])
    con.execute("CREATE TABLE dims (k VARCHAR, w BIGINT)")
    con.executemany("INSERT INTO dims VALUES (?, ?)", [(r["k"], r["w"]) for r in dims])
    want = [list(r) for r in con.execute(select.format(f="facts", d="dims")).fetchall()]
    assert _rows(report) == sorted(want, key=repr)
    assert report["stages"][2]["definition"]["processor"]["type"] == "sortMergeJoin"
    assert report["stages"][2]["workerCount"] == 3
