"""``msqcore`` command line.

* ``msqcore serve [--host] [--port] [--data-dir]``: run the HTTP server.
* ``msqcore sql "<statement>" | --file script.sql [--url] [--context k=v ...] [--format table|csv]``:
  run statements against a server. INSERT/REPLACE (and SELECTs over EXTERN, or any statement
  with ``--engine task``) run as MSQ tasks through ``/druid/v2/sql/task``: the command shows
  live per-stage progress from the task report on stderr, and Ctrl-C shuts the task down. Other
  SELECTs run through ``/druid/v2/sql``; Ctrl-C cancels them. Results go to stdout as a table
  or CSV. The exit status is 0 when every statement succeeded, 1 when one failed, 130 when
  canceled.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import logging
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid

EXIT_OK, EXIT_FAILED, EXIT_CANCELED = 0, 1, 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msqcore", description="Druid SQL-based ingestion (MSQ) on one machine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (Druid's router API)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8888)
    serve.add_argument("--data-dir", default="./var", help="metadata, segments and temp files (default ./var)")
    serve.add_argument("--log-level", default="INFO")
    sql = sub.add_parser("sql", help="run SQL statements against a server, with live task progress")
    sql.add_argument("statement", nargs="?", help="the SQL statement (SET k = v; statements may precede it)")
    sql.add_argument("--file", "-f", help="run the statements of a script file in order ('-' reads stdin)")
    sql.add_argument("--url", default="http://127.0.0.1:8888", help="the server (default http://127.0.0.1:8888)")
    sql.add_argument("--context", "-c", action="append", default=[], metavar="KEY=VALUE",
                     help="a query context entry; VALUE is read as JSON when it parses, else as a string")
    sql.add_argument("--format", choices=("table", "csv"), default="table", help="how to print results")
    sql.add_argument("--engine", choices=("auto", "task", "sql"), default="auto",
                     help="auto: tasks for INSERT/REPLACE/EXTERN, /druid/v2/sql for other SELECTs")
    sql.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                     help="live progress on stderr (auto: when stderr is a terminal)")
    sql.add_argument("--poll", type=float, default=0.25, help="seconds between report polls (default 0.25)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_main(args)
    if args.command == "sql":
        return sql_main(args, parser)
    return 2


def serve_main(args) -> int:
    # Arrow's buffers from glibc's malloc, not mimalloc (pyarrow's default), in the server
    # and, inherited through the forkserver, in every worker: at 5M rows the tree's peak RSS
    # was 902-925 MiB against 1,007-1,075 (Parquet; JSON 884 against 948), at the same speed
    # (bench/README, "Memory at 5M rows"). Set before pyarrow is imported; a user's own
    # ARROW_DEFAULT_MEMORY_POOL wins.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from aiohttp import web

    from msqcore.cluster import ClusterConfig
    from msqcore.server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ClusterConfig(data_dir=args.data_dir, host=args.host, port=args.port)
    app = create_app(config)
    print(f"msqcore serving Druid's API on http://{args.host}:{args.port} (data dir {args.data_dir})", flush=True)
    # run_app handles SIGINT and SIGTERM: the cleanup context cancels running tasks.
    web.run_app(app, host=args.host, port=args.port, shutdown_timeout=10, print=None, access_log=None)
    return 0


# --- msqcore sql -------------------------------------------------------------------------------------


class CliError(Exception):
    """A statement failed; the message is what to print."""


def parse_context(items: list[str]) -> dict:
    context = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--context expects KEY=VALUE, got [{item}]")
        try:
            context[key.strip()] = json.loads(value)
        except ValueError:
            context[key.strip()] = value
    return context


def split_script(text: str) -> list[str]:
    """Split a script on ``;`` outside strings, quoted identifiers and comments. SET statements
    stay attached to the statement that follows them (Druid applies them to it)."""
    parts, buf, i, n = [], [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            j = i + 1
            while j < n:
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            buf.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            buf.append(text[i:j])
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append(text[i:j])
            i = j
        elif ch == ";":
            parts.append("".join(buf) + ";")
            buf = []
            i += 1
        else:
            buf.append(ch)
            i += 1
    parts.append("".join(buf))
    statements, pending = [], ""
    for part in parts:
        body = _strip_comments(part).strip().rstrip(";").strip()
        if not body:
            continue
        if re.match(r"SET\s", body, re.IGNORECASE):
            pending += part.strip() + ("" if part.strip().endswith(";") else ";") + "\n"
            continue
        statements.append(pending + part.strip().rstrip(";").strip())
        pending = ""
    if pending:
        raise CliError("the script ends with SET statements that no statement follows")
    return statements


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL)


def statement_kind(sql: str) -> str:
    """INSERT, REPLACE, SELECT or EXPLAIN: the first keyword after SET statements and comments."""
    body = _strip_comments(sql)
    body = re.sub(r"^\s*(SET\s+[^;]*;\s*)*", "", body, flags=re.IGNORECASE)
    m = re.match(r"\s*\(*\s*(\w+)", body)
    word = m.group(1).upper() if m else ""
    if word == "EXPLAIN":
        inner = re.sub(r"^\s*EXPLAIN\s+PLAN\s+FOR\s+", "", body[m.start(1):], flags=re.IGNORECASE)
        return "EXPLAIN " + statement_kind(inner)
    return word if word in ("INSERT", "REPLACE") else "SELECT"


class Http:
    def __init__(self, base: str):
        self.base = base.rstrip("/")

    def request(self, method: str, path: str, body=None, timeout: float | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except urllib.error.URLError as e:
            raise CliError(f"cannot reach {self.base}: {e.reason}") from None

    def json(self, method: str, path: str, body=None, timeout: float | None = 30):
        status, text = self.request(method, path, body, timeout)
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text


def error_text(body) -> str:
    if isinstance(body, dict):
        message = body.get("errorMessage") or body.get("error") or json.dumps(body)
        code = body.get("errorCode")
        return f"{code}: {message}" if code and code not in ("general",) else str(message)
    return str(body)


def iso(millis) -> str | None:
    if millis is None:
        return None
    dt = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(milliseconds=int(millis))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# --- output ------------------------------------------------------------------------------------------

def _cell(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return str(v)


def print_results(names: list[str], rows: list[list], fmt: str, out=None) -> None:
    out = out or sys.stdout
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for r in rows:
            writer.writerow(["" if v is None else _cell(v) for v in r])
        out.flush()
        return
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) or r[i] is None for r in rows)
               and any(r[i] is not None for r in rows) for i in range(len(names))]

    def line(values):
        return " | ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out.write(line(names) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write(line(r) + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
    out.flush()


# --- progress ------------------------------------------------------------------------------------------

BAR = 24


def _sum(values) -> int:
    return sum(values or [])


def stage_progress(stage: dict, counters: dict, upstream_rows: int | None) -> tuple[float, str]:
    """(fraction done, detail text) of one stage from its report entry and counters."""
    workers = counters.get(str(stage["stageNumber"]), {})
    rows = sum(_sum(w.get("input0", {}).get("rows")) for w in workers.values())
    files = sum(_sum(w.get("input0", {}).get("files")) for w in workers.values())
    total_files = sum(_sum(w.get("input0", {}).get("totalFiles")) for w in workers.values())
    digests = [w["sortProgress"].get("progressDigest") for w in workers.values() if "sortProgress" in w]
    pushed = sum(w.get("segmentGenerationProgress", {}).get("rowsPushed", 0) for w in workers.values())
    processor = stage["definition"]["processor"]["type"]
    phase = stage.get("phase", "NEW")
    parts = [f"rows read {rows:,}"]
    if total_files:
        parts.append(f"files {files}/{total_files}")
    fraction = 0.0
    if phase in ("FINISHED", "RESULTS_READY"):
        fraction = 1.0
    elif processor == "segmentGenerator":
        denominator = upstream_rows or rows
        fraction = pushed / denominator if denominator else 0.0
    elif digests and phase == "POST_READING":
        fraction = 0.5 + 0.5 * (sum(d or 0 for d in digests) / len(digests))
    elif total_files:
        fraction = files / total_files * (0.5 if stage.get("sort") else 1.0)
    elif upstream_rows:
        fraction = min(1.0, rows / upstream_rows) * (0.5 if stage.get("sort") else 1.0)
    if digests:
        parts.append(f"sort {100 * (sum(d or 0 for d in digests) / len(digests)):.0f}%")
    if processor == "segmentGenerator":
        parts.append(f"rows pushed {pushed:,}")
        if phase == "FINISHED":
            parts.append(f"segments {stage.get('partitionCount', 0)}")
    return min(max(fraction, 0.0), 1.0), ", ".join(parts)


def progress_lines(task_id: str, state: str, elapsed: float, report: dict | None) -> list[str]:
    lines = [f"{task_id}  {state}  {elapsed:.1f}s"]
    if not report:
        return lines
    counters = report.get("counters") or {}
    upstream = None
    for stage in report.get("stages") or []:
        fraction, detail = stage_progress(stage, counters, upstream)
        workers = counters.get(str(stage["stageNumber"]), {})
        upstream = sum(_sum(w.get("output", {}).get("rows")) or _sum(w.get("shuffle", {}).get("rows"))
                       for w in workers.values()) or upstream
        filled = int(round(fraction * BAR))
        name = f"{stage['stageNumber']} {stage['definition']['processor']['type']}"
        lines.append(f"  stage {name:<22} {stage.get('phase', 'NEW'):<13} [{'#' * filled}{'.' * (BAR - filled)}] "
                     f"{fraction * 100:3.0f}%  {detail}")
    return lines


class ProgressView:
    """Redraws the progress block in place on a terminal."""

    def __init__(self, stream, enabled: bool):
        self.stream = stream
        self.enabled = enabled
        self.height = 0

    def draw(self, lines: list[str]) -> None:
        if not self.enabled:
            return
        out = []
        if self.height:
            out.append(f"\x1b[{self.height}F")
        for line in lines:
            out.append("\x1b[2K" + line + "\n")
        for _ in range(self.height - len(lines)):
            out.append("\x1b[2K\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self.height = max(self.height, len(lines))

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


# --- running statements ----------------------------------------------------------------------------------

def run_task(http: Http, sql: str, context: dict, args, view: ProgressView) -> int:
    status, body = http.json("POST", "/druid/v2/sql/task", {"query": sql, "context": context})
    if status != 202:
        raise CliError(error_text(body))
    task_id = body["taskId"]
    start = time.monotonic()
    report = None
    state = "RUNNING"
    try:
        while True:
            status, body = http.json("GET", f"/druid/indexer/v1/task/{task_id}/status")
            if status != 200:
                raise CliError(error_text(body))
            task_status = body["status"]
            state = task_status["statusCode"]
            rs, rbody = http.json("GET", f"/druid/indexer/v1/task/{task_id}/reports")
            if rs == 200 and isinstance(rbody, dict):
                report = rbody.get("multiStageQuery", {}).get("payload")
            view.draw(progress_lines(task_id, state, time.monotonic() - start, report))
            if state != "RUNNING":
                break
            time.sleep(args.poll)
    except KeyboardInterrupt:
        view.note(f"Canceling task {task_id} ...")
        http.json("POST", f"/druid/indexer/v1/task/{task_id}/shutdown")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, body = http.json("GET", f"/druid/indexer/v1/task/{task_id}/status")
            if isinstance(body, dict) and body["status"]["statusCode"] != "RUNNING":
                break
            time.sleep(0.2)
        view.note(f"Task {task_id} canceled.")
        return EXIT_CANCELED
    elapsed = time.monotonic() - start
    if state != "SUCCESS":
        raise CliError(f"Task {task_id} failed: {task_status.get('errorMsg')}")
    results = (report or {}).get("results")
    if results is not None:
        names = [c["name"] for c in results["signature"]]
        types = results.get("sqlTypeNames") or []
        rows = [[iso(v) if i < len(types) and types[i] == "TIMESTAMP" else v for i, v in enumerate(r)]
                for r in results["results"]]
        print_results(names, rows, args.format)
    else:
        stages = (report or {}).get("stages") or []
        counters = (report or {}).get("counters") or {}
        last = stages[-1] if stages else {}
        workers = counters.get(str(last.get("stageNumber")), {})
        pushed = sum(w.get("segmentGenerationProgress", {}).get("rowsPushed", 0) for w in workers.values())
        view.note(f"Task {task_id} succeeded in {elapsed:.1f}s: {pushed:,} rows in "
                  f"{last.get('partitionCount', 0)} segment(s).")
    return EXIT_OK


def run_select(http: Http, sql: str, context: dict, args, path: str = "/druid/v2/sql") -> int:
    query_id = str(context.get("sqlQueryId") or uuid.uuid4())
    body = {"query": sql, "context": dict(context, sqlQueryId=query_id), "resultFormat": "array",
            "header": True, "sqlTypesHeader": True}
    try:
        status, text = http.request("POST", path, body)
    except KeyboardInterrupt:
        http.request("DELETE", f"/druid/v2/sql/{query_id}", timeout=10)
        sys.stderr.write(f"Query {query_id} canceled.\n")
        return EXIT_CANCELED
    try:
        data = json.loads(text)
    except ValueError:
        raise CliError(text) from None
    if status != 200:
        raise CliError(error_text(data))
    names, rows = data[0], data[2:]  # data[1] is the sqlTypesHeader row
    print_results(names, rows, args.format)
    return EXIT_OK


def sql_main(args, parser) -> int:
    # Ctrl-C cancels the task: make sure SIGINT raises KeyboardInterrupt even when this
    # process was started with SIGINT ignored (as background jobs of a script are).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if (args.statement is None) == (args.file is None):
            parser.error("give either a statement or --file")
        if args.file is not None:
            text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
            statements = split_script(text)
        else:
            statements = split_script(args.statement)
        if not statements:
            raise CliError("no statement to run")
        context = parse_context(args.context)
        http = Http(args.url)
        show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
        for sql in statements:
            kind = statement_kind(sql)
            use_task = args.engine == "task" or (args.engine == "auto" and (
                kind in ("INSERT", "REPLACE") or re.search(r"\bEXTERN\s*\(", sql, re.IGNORECASE)))
            if kind in ("EXPLAIN INSERT", "EXPLAIN REPLACE") or (kind.startswith("EXPLAIN") and args.engine == "task"):
                code = run_select(http, sql, context, args, path="/druid/v2/sql/task")
            elif use_task:
                code = run_task(http, sql, context, args, ProgressView(sys.stderr, show))
            else:
                code = run_select(http, sql, context, args)
            if code != EXIT_OK:
                return code
        return EXIT_OK
    except CliError as e:
        sys.stderr.write(f"Error: {e}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("Canceled.\n")
        return EXIT_CANCELED


if __name__ == "__main__":
    sys.exit(main())
