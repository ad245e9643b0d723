"""Real Druid clients against ``msqcore serve``: pydruid's DB-API and SQLAlchemy dialect, and the
call sequence of Druid's own Python client (``druidapi``: examples/quickstart/jupyter-notebooks)."""
from __future__ import annotations

import json
import time

import pytest

from conftest import WIKITICKER, Server

pydruid_db = pytest.importorskip("pydruid.db")
sa = pytest.importorskip("sqlalchemy")
requests = pytest.importorskip("requests")

# pydruid's dialect predates SQLAlchemy 2's caching and import_dbapi names.
pytestmark = [pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
              pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")]

SIG = json.dumps([{"name": "time", "type": "string"}, {"name": "channel", "type": "string"},
                  {"name": "page", "type": "string"}, {"name": "user", "type": "string"},
                  {"name": "added", "type": "long"}, {"name": "delta", "type": "long"}])
INGEST = ("REPLACE INTO wikipedia OVERWRITE ALL SELECT TIME_PARSE(\"time\") AS __time, channel, page, \"user\", added,"
          f" delta FROM TABLE(EXTERN('{{\"type\":\"local\",\"baseDir\":\"{WIKITICKER.parent}\",\"filter\":"
          f"\"{WIKITICKER.name}\"}}', '{{\"type\":\"json\"}}', '{SIG}')) PARTITIONED BY DAY CLUSTERED BY channel")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("clients") / "var")
    server.start()
    yield server
    server.stop()


class DruidApiReplay:
    """What druidapi's ``DruidClient`` sends, written from its documented behaviour: ``sql.run_task``
    (POST /druid/v2/sql/task, then poll the task status until SUCCESS/FAILED, raising with
    ``errorMsg``), ``QueryTaskResult.reports`` (GET .../reports), ``datasources.wait_until_ready``
    (poll loadstatus until ``{ds: 100.0}``), ``sql.wait_until_ready`` (``SELECT 1 FROM "ds" LIMIT 1``)
    and ``sql.sql`` (POST /druid/v2/sql with resultFormat object, rows by the X-Druid-SQL-Query-Id'd response)."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.session = requests.Session()

    def post_only_json(self, path, body):
        return self.session.post(self.endpoint + path, json=body)

    def get_json(self, path, params=None):
        r = self.session.get(self.endpoint + path, params=params)
        r.raise_for_status()
        return r.json()

    def task(self, sql, context=None):
        body = {"query": sql, "resultFormat": "object"}
        if context:
            body["context"] = context
        r = self.post_only_json("/druid/v2/sql/task", body)
        assert r.status_code in (200, 202), r.text
        obj = r.json()
        return obj["taskId"], obj["state"]

    def join(self, task_id):
        while True:
            status = self.get_json(f"/druid/indexer/v1/task/{task_id}/status")
            state = status["status"]["status"]
            if state == "FAILED":
                return False, status["status"]["errorMsg"]
            if state == "SUCCESS":
                return True, None
            time.sleep(0.5)

    def reports(self, task_id):
        return self.get_json(f"/druid/indexer/v1/task/{task_id}/reports")

    def wait_until_ready(self, ds):
        while True:
            resp = self.get_json(f"/druid/coordinator/v1/datasources/{ds}/loadstatus",
                                 params={"forceMetadataRefresh": "true", "interval": "1970-01-01/2999-01-01"})
            if resp.get(ds) == 100.0:
                break
            time.sleep(0.5)
        self.sql(f'SELECT 1 FROM "{ds}" LIMIT 1')

    def sql(self, sql):
        r = self.post_only_json("/druid/v2/sql", {"query": sql, "resultFormat": "object"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Druid-SQL-Query-Id"]
        return r.json()


def test_druidapi_call_sequence(srv):
    api = DruidApiReplay(f"http://127.0.0.1:{srv.port}")
    assert api.get_json("/status/health") is True
    task_id, state = api.task(INGEST, {"maxNumTasks": 3})
    assert task_id.startswith("query-") and state == "RUNNING"
    ok, error = api.join(task_id)
    assert ok, error
    payload = api.reports(task_id)["multiStageQuery"]["payload"]
    assert payload["status"]["status"] == "SUCCESS"
    assert sum(w["input0"]["rows"][0] for w in payload["counters"]["0"].values()) == 39244
    api.wait_until_ready("wikipedia")
    assert api.sql("SELECT COUNT(*) AS c FROM wikipedia") == [{"c": 39244}]
    # druidapi's catalog helpers
    assert {"TableName": "wikipedia"} in api.sql("SELECT TABLE_NAME AS TableName FROM INFORMATION_SCHEMA.TABLES "
                                                 "WHERE TABLE_SCHEMA = 'druid' ORDER BY TABLE_NAME")
    schema = api.sql('SELECT ORDINAL_POSITION AS "Position", COLUMN_NAME AS "Name", DATA_TYPE AS "Type" '
                     "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = 'wikipedia' "
                     "ORDER BY ORDINAL_POSITION")
    assert schema[:2] == [{"Position": "0", "Name": "__time", "Type": "TIMESTAMP"},
                          {"Position": "1", "Name": "channel", "Type": "VARCHAR"}]
    # a SELECT task: rows from the report, and a failing task's errorMsg
    task_id, _ = api.task("SELECT channel, COUNT(*) AS n FROM wikipedia GROUP BY 1 ORDER BY 2 DESC LIMIT 2")
    assert api.join(task_id)[0]
    results = api.reports(task_id)["multiStageQuery"]["payload"]["results"]
    assert results["results"][0] == ["#en.wikipedia", 11549]
    task_id, _ = api.task("INSERT INTO bad SELECT TIME_PARSE(channel) AS __time, page FROM wikipedia "
                          "PARTITIONED BY DAY")
    ok, error = api.join(task_id)
    assert not ok and error.startswith("InsertTimeNull: ")
    # druidapi's drop(): DELETE the datasource, then it is gone
    r = api.session.delete(f"{api.endpoint}/druid/coordinator/v1/datasources/bad")
    assert r.status_code == 200 and r.json() == {"numChangedSegments": 0}


@pytest.fixture(scope="module")
def loaded(srv):
    c = srv.client
    if "wikipedia" not in c.get("/druid/coordinator/v1/datasources"):
        task = c.submit(INGEST, {"maxNumTasks": 3})
        assert c.wait(task)["statusCode"] == "SUCCESS"
    return srv


def test_pydruid_dbapi(loaded):
    conn = pydruid_db.connect(host="127.0.0.1", port=loaded.port, path="/druid/v2/sql/", scheme="http")
    cur = conn.cursor()
    cur.execute("SELECT channel, COUNT(*) AS n, SUM(added) AS a FROM wikipedia GROUP BY channel ORDER BY n DESC "
                "LIMIT 3")
    assert [d[0] for d in cur.description] == ["channel", "n", "a"]
    rows = cur.fetchall()
    assert [r.channel for r in rows] == ["#en.wikipedia", "#vi.wikipedia", "#de.wikipedia"]
    assert rows[0].n == 11549
    cur.execute('SELECT "user", page FROM wikipedia WHERE channel = %(ch)s AND added > %(min)s LIMIT 5',
                {"ch": "#fr.wikipedia", "min": 1000})
    assert len(cur.fetchall()) == 5
    cur.execute("SELECT __time FROM wikipedia ORDER BY __time LIMIT 1")
    assert cur.fetchone()[0] == "2015-09-12T00:46:58.771Z"
    cur.execute("SELECT channel FROM wikipedia WHERE channel = 'none'")
    assert cur.fetchall() == []
    with pytest.raises(pydruid_db.exceptions.ProgrammingError, match="Object 'nope' not found"):
        cur.execute("SELECT * FROM nope")
    # with header=True pydruid takes the description from the header row
    conn = pydruid_db.connect(host="127.0.0.1", port=loaded.port, path="/druid/v2/sql/", header=True)
    cur = conn.cursor()
    cur.execute("SELECT channel, COUNT(*) AS n FROM wikipedia GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
    assert [d[0] for d in cur.description] == ["channel", "n"]
    assert cur.fetchall()[0].n == 11549


def test_sqlalchemy_dialect(loaded):
    engine = sa.create_engine(f"druid://127.0.0.1:{loaded.port}/druid/v2/sql/")
    inspector = sa.inspect(engine)
    assert inspector.get_schema_names() == ["druid", "lookup", "sys"]
    assert inspector.get_table_names(schema="druid") == ["wikipedia"]
    assert "segments" in inspector.get_table_names()
    columns = {c["name"]: c for c in inspector.get_columns("wikipedia")}
    assert list(columns) == ["__time", "channel", "page", "user", "added", "delta"]
    assert isinstance(columns["__time"]["type"], sa.types.TIMESTAMP) and columns["__time"]["nullable"] is False
    assert isinstance(columns["channel"]["type"], sa.types.String) and columns["channel"]["nullable"] is True
    assert isinstance(columns["added"]["type"], sa.types.BigInteger)
    with engine.connect() as conn:
        assert engine.dialect.has_table(conn, "wikipedia") and not engine.dialect.has_table(conn, "nope")
        table = sa.Table("wikipedia", sa.MetaData(), autoload_with=engine)
        top = conn.execute(
            sa.select(table.c.channel, sa.func.count().label("n"), sa.func.sum(table.c.added).label("added"))
            .where(table.c.delta > 0).group_by(table.c.channel).order_by(sa.desc("n")).limit(2)).fetchall()
        expected = loaded.client.sql("SELECT channel, COUNT(*) AS n, SUM(added) AS added FROM wikipedia "
                                     "WHERE delta > 0 GROUP BY channel ORDER BY n DESC LIMIT 2", resultFormat="array")
        assert [list(r) for r in top] == expected and expected[0][0] == "#vi.wikipedia"
        n = conn.execute(sa.select(sa.func.count()).select_from(table)
                         .where(table.c.channel == "#en.wikipedia")).scalar()
        assert n == 11549
        assert conn.execute(sa.text("SELECT COUNT(*) AS c FROM wikipedia WHERE \"user\" = 'GELongstreet'")).scalar() > 0
