"""``msqcore sql``: statements, scripts, output formats, exit status, and (under a pseudo-terminal)
live task progress and Ctrl-C cancellation."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from conftest import Server
from msqcore import cli

DATA = "".join(json.dumps(r) + "\n" for r in [
    {"ts": "2021-01-01T00:00:00Z", "k": "a", "n": 1},
    {"ts": "2021-01-02T00:00:00Z", "k": "b,c", "n": None},
])
SIG = '[{"name":"ts","type":"string"},{"name":"k","type":"string"},{"name":"n","type":"long"}]'
SRC = f"TABLE(EXTERN('{json.dumps({'type': 'inline', 'data': DATA})}', '{{\"type\":\"json\"}}', '{SIG}'))"


# --- pieces ------------------------------------------------------------------------------------------------

def test_split_script_keeps_set_with_its_statement():
    script = ("-- load; then read\nSET maxNumTasks = 3;\nSET rowsPerSegment = 10;\n"
              "INSERT INTO t SELECT 'a;b' AS x, \"c;d\" FROM u /* ; */ PARTITIONED BY ALL;\n\n"
              "SELECT COUNT(*) FROM t;  -- trailing\n")
    statements = cli.split_script(script)
    assert len(statements) == 2
    assert "SET maxNumTasks = 3;\nSET rowsPerSegment = 10;\nINSERT INTO t" in statements[0]
    assert statements[0].endswith("FROM u /* ; */ PARTITIONED BY ALL")
    assert statements[1] == "SELECT COUNT(*) FROM t"
    with pytest.raises(cli.CliError):
        cli.split_script("SELECT 1; SET a = 1;")


@pytest.mark.parametrize("sql, kind", [
    ("insert into t select 1", "INSERT"),
    ("SET x = 1; REPLACE INTO t OVERWRITE ALL SELECT 1", "REPLACE"),
    ("-- c\nWITH a AS (SELECT 1) SELECT * FROM a", "SELECT"),
    ("EXPLAIN PLAN FOR INSERT INTO t SELECT 1", "EXPLAIN INSERT"),
    ("explain plan for select 1", "EXPLAIN SELECT"),
])
def test_statement_kind(sql, kind):
    assert cli.statement_kind(sql) == kind


def test_parse_context():
    assert cli.parse_context(["maxNumTasks=3", "sqlTimeZone=America/New_York", "finalizeAggregations=false",
                              "segmentSortOrder=[\"k\"]"]) == {
        "maxNumTasks": 3, "sqlTimeZone": "America/New_York", "finalizeAggregations": False, "segmentSortOrder": ["k"]}
    with pytest.raises(cli.CliError):
        cli.parse_context(["nokey"])


def test_table_and_csv_output():
    out = io.StringIO()
    cli.print_results(["k", "n"], [["a", 1], ["b,c", None], ["long value", 12345]], "table", out)
    assert out.getvalue() == ("k          |     n\n"
                              "-----------+------\n"
                              "a          |     1\n"
                              "b,c        |  null\n"
                              "long value | 12345\n"
                              "(3 rows)\n")
    out = io.StringIO()
    cli.print_results(["k", "n"], [["b,c", None], ['q"', True]], "csv", out)
    assert out.getvalue() == 'k,n\n"b,c",\n"q""",true\n'


def test_stage_progress_from_counters():
    report = {"stages": [
        {"stageNumber": 0, "definition": {"processor": {"type": "scan"}}, "phase": "READING_INPUT", "sort": True},
        {"stageNumber": 1, "definition": {"processor": {"type": "segmentGenerator"}}, "phase": "READING_INPUT"}],
        "counters": {"0": {"0": {"input0": {"rows": [100], "files": [1], "totalFiles": [4]},
                                 "output": {"rows": [100]}}},
                     "1": {"0": {"segmentGenerationProgress": {"rowsPushed": 25}}}}}
    lines = cli.progress_lines("query-x", "RUNNING", 1.0, report)
    assert lines[0] == "query-x  RUNNING  1.0s"
    assert "stage 0 scan" in lines[1] and " 12%" in lines[1] and "files 1/4" in lines[1] and "rows read 100" in lines[1]
    assert "stage 1 segmentGenerator" in lines[2] and " 25%" in lines[2] and "rows pushed 25" in lines[2]


# --- against a server ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("cli") / "var")
    server.start()
    yield server
    server.stop()


def run_cli(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "msqcore", "sql", *args], capture_output=True, text=True,
                          input=stdin, timeout=180, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_ingest_then_select(srv):
    url = f"http://127.0.0.1:{srv.port}"
    done = run_cli(f"INSERT INTO c1 SELECT TIME_PARSE(ts) AS __time, k, n FROM {SRC} PARTITIONED BY DAY",
                   "--url", url, "--context", "maxNumTasks=2")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stderr and "2 rows in 2 segment(s)" in done.stderr
    assert "\x1b[" not in done.stderr  # no progress bars when stderr is not a terminal
    table = run_cli("SELECT __time, k, n FROM c1 ORDER BY __time", "--url", url)
    assert table.returncode == 0
    assert table.stdout == ("__time                   | k   |    n\n"
                            "-------------------------+-----+-----\n"
                            "2021-01-01T00:00:00.000Z | a   |    1\n"
                            "2021-01-02T00:00:00.000Z | b,c | null\n"
                            "(2 rows)\n")
    csv_out = run_cli("SELECT k, n FROM c1 ORDER BY k", "--url", url, "--format", "csv")
    assert csv_out.stdout == 'k,n\na,1\n"b,c",\n'
    # a SELECT run as a task prints its results from the report, TIMESTAMPs as ISO text
    as_task = run_cli("SELECT __time, k FROM c1 ORDER BY __time LIMIT 1", "--url", url, "--engine", "task",
                      "--format", "csv")
    assert as_task.returncode == 0 and as_task.stdout == "__time,k\n2021-01-01T00:00:00.000Z,a\n"


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads /proc")
def test_serve_gives_arrow_glibc_malloc_to_its_worker_processes(srv):
    # mimalloc (pyarrow's default) kept the 5M-row ingest's tree above 1 GiB; `serve` sets the
    # system pool before pyarrow loads, and the forkserver its workers come from inherits it
    url = f"http://127.0.0.1:{srv.port}"
    done = run_cli(f"INSERT INTO c0 SELECT TIME_PARSE(ts) AS __time, k FROM {SRC} PARTITIONED BY DAY",
                   "--url", url, "--context", "maxNumTasks=2")
    assert done.returncode == 0, done.stderr
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            if int(stat[stat.rindex(")") + 2:].split()[1]) == srv.proc.pid:
                children.append(open(f"/proc/{pid}/environ", "rb").read().split(b"\0"))
        except (OSError, ValueError):
            pass
    assert children and any(b"ARROW_DEFAULT_MEMORY_POOL=system" in env for env in children)


def test_script_file(srv, tmp_path):
    url = f"http://127.0.0.1:{srv.port}"
    script = tmp_path / "load.sql"
    script.write_text(f"SET maxNumTasks = 2;\nREPLACE INTO c2 OVERWRITE ALL\nSELECT TIME_PARSE(ts) AS __time, k\n"
                      f"FROM {SRC}\nPARTITIONED BY ALL;\n\nSELECT COUNT(*) AS c FROM c2;\n")
    done = run_cli("--file", str(script), "--url", url, "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "c\n2\n"
    piped = run_cli("--file", "-", "--url", url, "--format", "csv", stdin="SELECT k FROM c2 ORDER BY k;")
    assert piped.stdout == 'k\na\n"b,c"\n'


def test_failures_exit_1(srv):
    url = f"http://127.0.0.1:{srv.port}"
    missing = run_cli("SELECT * FROM nope", "--url", url)
    assert missing.returncode == 1 and missing.stderr == "Error: invalidInput: Object 'nope' not found\n"
    failed = run_cli(f"INSERT INTO c3 SELECT TIME_PARSE(k) AS __time, k FROM {SRC} PARTITIONED BY DAY", "--url", url)
    assert failed.returncode == 1 and "failed: InsertTimeNull: Null timestamp" in failed.stderr
    unreachable = run_cli("SELECT 1", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    # a script stops at the first failure
    stopped = run_cli("--file", "-", "--url", url, stdin="SELECT * FROM nope; SELECT 1 AS one;")
    assert stopped.returncode == 1 and stopped.stdout == ""


# --- under a pseudo-terminal ------------------------------------------------------------------------------

def slow_insert(base: str, name: str, target: str) -> str:
    sig = '[{"name":"ts","type":"string"},{"name":"k","type":"string"}]'
    return (f"INSERT INTO {target} SELECT TIME_PARSE(ts) AS __time, k FROM TABLE(EXTERN("
            f"'{{\"type\":\"http\",\"uris\":[\"{base}/slow/{name}\"]}}', '{{\"type\":\"json\"}}', '{sig}')) "
            "PARTITIONED BY HOUR")


def write_rows(path, count: int) -> None:
    path.write_text("".join(json.dumps({"ts": f"2021-01-01T{i % 24:02d}:00:00Z", "k": f"key{i}"}) + "\n"
                            for i in range(count)))


def spawn(args):
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(sys.executable, ["-m", "msqcore", "sql", *args], encoding="utf-8", timeout=120,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"), dimensions=(40, 200))


def test_live_progress_under_a_terminal(srv, files_server):
    base, root = files_server
    write_rows(root / "small.json", 1200)  # ~50 KB, sent 1 KB per 50 ms
    child = spawn([slow_insert(base, "small.json", "p1"), "--url", f"http://127.0.0.1:{srv.port}", "--poll", "0.1"])
    child.expect(r"query-\S+  RUNNING")
    child.expect(r"stage 0 scan\s+READING_INPUT\s+\[[#.]{24}\]")
    child.expect(r"stage 1 segmentGenerator")
    child.expect(r"stage 1 segmentGenerator\s+FINISHED\s+\[#{24}\] 100%.*rows pushed 1,200, segments 24")
    child.expect(r"succeeded in [\d.]+s: 1,200 rows in 24 segment\(s\)")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0
    assert srv.client.sql("SELECT COUNT(*) AS c FROM p1") == [{"c": 1200}]


def test_ctrl_c_cancels_the_task(srv, files_server):
    base, root = files_server
    write_rows(root / "big.json", 20000)  # ~800 KB: would take minutes to send
    child = spawn([slow_insert(base, "big.json", "p2"), "--url", f"http://127.0.0.1:{srv.port}", "--poll", "0.1"])
    child.expect(r"(query-\S+)  RUNNING")
    task_id = child.match.group(1)
    child.expect(r"stage 0 scan\s+READING_INPUT")
    child.sendintr()
    child.expect(f"Canceling task {task_id}")
    child.expect(f"Task {task_id} canceled.")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 130
    status = srv.client.status(task_id)
    assert status["statusCode"] == "FAILED" and status["errorMsg"].startswith("Canceled")
    assert "p2" not in srv.client.get("/druid/coordinator/v1/datasources")
