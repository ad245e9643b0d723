"""The peers: DuckDB, Polars and DataFusion doing the benchmark jobs msqcore does.

Each ingest job reads the data set, parses ``timestamp`` into ``__time`` (milliseconds),
sorts by day, channel and time, and writes one Parquet file per day (zstd; every engine
here dictionary-encodes by default). The rollup job groups by hour, channel and
countryName first. The query job reads the Parquet files the JSON ingest wrote.

Run one job in a fresh process (what ``bench.run`` does, so that RSS is per tool)::

    python -m bench.peers --tool duckdb --job json --threads 1 --data DIR --out DIR

It prints one JSON line: ``{"seconds", "cpu_seconds", "maxrss", "files" | "result"}``, where
``seconds`` and ``cpu_seconds`` cover the job only (not the interpreter start or the import)
and ``maxrss`` is the process's peak RSS in bytes over its whole life.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from bench.gen_data import BOOLEANS, COLUMNS

TOOLS = ("duckdb", "polars", "datafusion")
INGEST_JOBS = ("json", "csv", "parquet")
JOBS = INGEST_JOBS + ("rollup", "query")
LONGS = {name for name, kind in COLUMNS if kind == "long"}
OTHERS = [name for name, _ in COLUMNS if name != "timestamp"]
QUERY_COUNTRY = "United States"


def version(tool: str) -> str | None:
    try:
        from importlib.metadata import version as dist_version
        return dist_version(tool)
    except Exception:  # noqa: BLE001 - not installed
        return None


def _q(name: str) -> str:
    return f'"{name}"'


def _fresh(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def parquet_files(root: Path) -> list[str]:
    return sorted(glob.glob(str(root / "**" / "*.parquet"), recursive=True))


# --- DuckDB ----------------------------------------------------------------------------------


class DuckDB:
    def __init__(self, threads: int):
        import duckdb
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("SET preserve_insertion_order = true")

    def _source(self, data_dir: Path, fmt: str) -> str:
        columns = {name: ("BIGINT" if name in LONGS else "VARCHAR") for name, _ in COLUMNS}
        pattern = str(data_dir / fmt / f"part-*.{fmt}")
        if fmt == "json":
            return f"read_json('{pattern}', format = 'newline_delimited', columns = {columns!r})"
        if fmt == "csv":
            return f"read_csv('{pattern}', header = true, columns = {columns!r})"
        # Parquet keeps its booleans: cast them to the signature's strings like the text formats.
        casts = ", ".join(f"CAST({_q(b)} AS VARCHAR) AS {_q(b)}" for b in BOOLEANS)
        return f"(SELECT * REPLACE ({casts}) FROM read_parquet('{pattern}'))"

    def _write_days(self, select: str, out: Path) -> None:
        # COPY … PARTITION_BY with more than one thread does not keep the ORDER BY within a
        # file (seen at 1M rows, 2 threads), so: sort once into a table, then one COPY per day
        # (a filtered scan keeps insertion order, and the day's rows are contiguous).
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE sorted AS
            SELECT CAST(date_trunc('day', __time) AS DATE) AS day, * FROM ({select})
            ORDER BY day, channel, __time""")
        days = [d for (d,) in self.con.execute("SELECT DISTINCT day FROM sorted ORDER BY day").fetchall()]
        for day in days:
            self.con.execute(f"""
                COPY (SELECT * EXCLUDE (day) FROM sorted WHERE day = DATE '{day}')
                TO '{out}/day={day}.parquet' (FORMAT parquet, COMPRESSION zstd)""")
        self.con.execute("DROP TABLE sorted")

    def ingest(self, data_dir: Path, fmt: str, out: Path) -> None:
        cols = ", ".join(_q(c) for c in OTHERS)
        self._write_days(f'SELECT CAST("timestamp" AS TIMESTAMP) AS __time, {cols} '
                         f"FROM {self._source(data_dir, fmt)}", out)

    def rollup(self, data_dir: Path, out: Path) -> None:
        self._write_days(f"""SELECT date_trunc('hour', CAST("timestamp" AS TIMESTAMP)) AS __time, channel, countryName,
                                    SUM(added) AS added, SUM(deleted) AS deleted, COUNT(*) AS "count"
                             FROM {self._source(data_dir, "json")} GROUP BY ALL""", out)

    def query(self, parquet_dir: Path) -> list[list]:
        rows = self.con.execute(f"""
            SELECT channel, COUNT(*) AS n, SUM(added) AS added
            FROM read_parquet('{parquet_dir}/**/*.parquet', hive_partitioning = false)
            WHERE countryName = '{QUERY_COUNTRY}' GROUP BY 1 ORDER BY 2 DESC""").fetchall()
        return [list(r) for r in rows]


# --- Polars ----------------------------------------------------------------------------------


class Polars:
    def __init__(self, threads: int):
        # POLARS_MAX_THREADS must be set before the import: ``bench.run`` sets it in the
        # child's environment, the pytest benches set it in conftest.
        import polars as pl
        self.pl = pl

    def _source(self, data_dir: Path, fmt: str):
        pl = self.pl
        schema = {name: (pl.Int64 if name in LONGS else pl.String) for name, _ in COLUMNS}
        files = sorted(str(p) for p in (data_dir / fmt).glob(f"part-*.{fmt}"))
        if fmt == "json":
            return pl.scan_ndjson(files, schema=schema)
        if fmt == "csv":
            return pl.scan_csv(files, schema=schema)
        return pl.scan_parquet(files).with_columns([pl.col(b).cast(pl.String) for b in BOOLEANS])

    def _parse(self, lf):
        pl = self.pl
        return lf.with_columns(
            pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ms").alias("__time"))

    def _write_days(self, df, out: Path) -> None:
        for (day,), part in df.partition_by("day", as_dict=True, maintain_order=True).items():
            part.drop("day").write_parquet(out / f"day={day}.parquet", compression="zstd")

    def ingest(self, data_dir: Path, fmt: str, out: Path) -> None:
        pl = self.pl
        lf = self._parse(self._source(data_dir, fmt)).select(["__time"] + OTHERS)
        df = lf.with_columns(day=pl.col("__time").dt.date()).sort(["day", "channel", "__time"]).collect()
        self._write_days(df, out)

    def rollup(self, data_dir: Path, out: Path) -> None:
        pl = self.pl
        lf = self._parse(self._source(data_dir, "json"))
        df = (lf.group_by(pl.col("__time").dt.truncate("1h"), "channel", "countryName")
              .agg(pl.col("added").sum(), pl.col("deleted").sum(), pl.len().cast(pl.Int64).alias("count"))
              .with_columns(day=pl.col("__time").dt.date())
              .sort(["day", "channel", "__time"]).collect())
        self._write_days(df, out)

    def query(self, parquet_dir: Path) -> list[list]:
        pl = self.pl
        df = (pl.scan_parquet(parquet_files(parquet_dir))
              .filter(pl.col("countryName") == QUERY_COUNTRY)
              .group_by("channel").agg(pl.len().alias("n"), pl.col("added").sum())
              .sort("n", descending=True).collect())
        return [list(r) for r in df.iter_rows()]


# --- DataFusion ------------------------------------------------------------------------------


class DataFusion:
    def __init__(self, threads: int):
        from datafusion import SessionConfig, SessionContext
        self.ctx = SessionContext(SessionConfig().with_target_partitions(int(threads)))

    def _register(self, data_dir: Path, fmt: str) -> str:
        import pyarrow as pa
        name = f"src_{fmt}"
        self._drop(name)
        if fmt == "parquet":
            self.ctx.register_parquet(name, str(data_dir / fmt) + "/", file_extension=".parquet")
            return name
        # The JSON reader refuses a JSON boolean as a string: read booleans as booleans.
        schema = pa.schema([(n, pa.int64() if n in LONGS else pa.bool_() if fmt == "json" and n in BOOLEANS
                             else pa.string()) for n, _ in COLUMNS])
        if fmt == "json":
            self.ctx.register_json(name, str(data_dir / fmt) + "/", schema=schema, file_extension=".json")
        else:
            self.ctx.register_csv(name, str(data_dir / fmt) + "/", schema=schema, has_header=True,
                                  file_extension=".csv")
        return name

    def _drop(self, name: str) -> None:
        # a job can run again in the same context (the pytest benches' rounds)
        if self.ctx.table_exist(name):
            self.ctx.deregister_table(name)

    def _columns(self) -> str:
        return ", ".join(f"CAST({_q(c)} AS VARCHAR) AS {_q(c)}" if c in BOOLEANS else _q(c) for c in OTHERS)

    def _copy(self, select: str, out: Path) -> None:
        self.ctx.sql(f"""
            COPY (SELECT CAST(date_trunc('day', __time) AS DATE) AS day, * FROM ({select})
                  ORDER BY day, channel, __time)
            TO '{out}/' STORED AS PARQUET PARTITIONED BY (day)
            OPTIONS ('format.compression' 'zstd(3)')""").collect()

    def ingest(self, data_dir: Path, fmt: str, out: Path) -> None:
        src = self._register(data_dir, fmt)
        self._copy(f'SELECT to_timestamp_millis("timestamp") AS __time, {self._columns()} FROM {src}', out)

    def rollup(self, data_dir: Path, out: Path) -> None:
        src = self._register(data_dir, "json")
        self._copy(f"""SELECT date_trunc('hour', to_timestamp_millis("timestamp")) AS __time, channel, "countryName",
                              SUM(added) AS added, SUM(deleted) AS deleted, COUNT(*) AS "count"
                       FROM {src} GROUP BY 1, 2, 3""", out)

    def query(self, parquet_dir: Path) -> list[list]:
        self._drop("wiki")
        self.ctx.register_parquet("wiki", str(parquet_dir) + "/", file_extension=".parquet")
        rows = self.ctx.sql(f"""SELECT channel, COUNT(*) AS n, SUM(added) AS added FROM wiki
                                WHERE "countryName" = '{QUERY_COUNTRY}' GROUP BY 1 ORDER BY 2 DESC""").to_pylist()
        return [list(r.values()) for r in rows]


ENGINES = {"duckdb": DuckDB, "polars": Polars, "datafusion": DataFusion}


def engine(tool: str, threads: int):
    return ENGINES[tool](threads)


def run_job(eng, job: str, data_dir: Path, out: Path, query_dir: Path | None = None) -> dict:
    """Run one job on an engine; return what was done (``result`` for the query job)."""
    if job == "query":
        if query_dir is None or not parquet_files(query_dir):
            raise FileNotFoundError(f"no Parquet output to query in {query_dir}")
        return {"result": eng.query(query_dir)}
    _fresh(out)
    if job == "rollup":
        eng.rollup(data_dir, out)
    else:
        eng.ingest(data_dir, job, out)
    return {"files": len(parquet_files(out))}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss() -> int:
    """This process's peak RSS in bytes. Not ``getrusage``'s ``ru_maxrss``: Linux carries that
    over an exec from the parent, so a peer started by a big harness would report the
    harness's peak. ``VmHWM`` is the peak of this process's own memory map."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one benchmark job on one peer engine.")
    parser.add_argument("--tool", choices=TOOLS, required=True)
    parser.add_argument("--job", choices=JOBS, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", required=True, help="the data set's directory (json/, csv/, parquet/)")
    parser.add_argument("--out", required=True, help="where to write the day files")
    parser.add_argument("--query-dir", help="the Parquet output the query job reads")
    args = parser.parse_args(argv)
    if args.tool == "polars" and os.environ.get("POLARS_MAX_THREADS") != str(args.threads):
        print("set POLARS_MAX_THREADS in the environment to --threads", file=sys.stderr)
        return 2
    eng = engine(args.tool, args.threads)
    cpu0, t0 = _cpu(), time.perf_counter()
    info = run_job(eng, args.job, Path(args.data), Path(args.out), Path(args.query_dir) if args.query_dir else None)
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "maxrss": _peak_rss(), **info}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
