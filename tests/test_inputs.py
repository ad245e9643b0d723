"""EXTERN input sources, formats and compression, through the task API.

The same five tiny wiki rows (Druid's ``tiny_wiki`` test data shape) are written by the
tests in every format and served from every source; each ingestion must give the same
datasource contents. Bad input gets a test per case.
"""
from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from azure_blob_server import AzureBlobServer
from conftest import Server, free_port

COLUMNS = ["timestamp", "page", "language", "user", "unpatrolled", "newPage", "robot", "anonymous", "namespace",
           "continent", "country", "region", "city", "added", "deleted", "delta"]
LONGS = ("added", "deleted", "delta")
WIKI = [
    ["2013-08-31T01:02:33Z", "Gypsy Danger", "en", "nuclear", "true", "true", "false", "false", "article",
     "North America", "United States", "Bay Area", "San Francisco", 57, 200, -143],
    ["2013-08-31T03:32:45Z", "Striker Eureka", "en", "speed", "false", "true", "true", "false", "wikipedia",
     "Australia", "Australia", "Cantebury", "Syndey", 459, 129, 330],
    ["2013-08-31T07:11:21Z", "Cherno Alpha", "ru", "masterYi", "false", "true", "true", "false", "article", "Asia",
     "Russia", "Oblast", "Moscow", 123, 12, 111],
    ["2013-08-31T11:58:39Z", "Crimson Typhoon", "zh", "triplets", "true", "false", "true", "false", "wikipedia",
     "Asia", "China", "Shanxi", "Taiyuan", 905, 5, 900],
    ["2013-09-01T12:41:27Z", "Coyote Tango", "ja", "stringer", "true", "false", "true", "false", "wikipedia", "Asia",
     "Japan", "Kanto", "Tokyo", 1, 10, -9],
]
SIGNATURE = [{"name": c, "type": "long" if c in LONGS else "string"} for c in COLUMNS]
SELECT = ", ".join(f'"{c}"' for c in COLUMNS[1:])
EXPECTED = sorted([{"__time": r[0].replace("Z", ".000Z"), **dict(zip(COLUMNS[1:], r[1:]))} for r in WIKI],
                  key=lambda r: r["__time"])
AWS = {"accessKeyId": "testing", "secretAccessKey": "testing"}


# --- the data in every format --------------------------------------------------------------


def as_json() -> bytes:
    return "".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in WIKI).encode()


def as_delimited(sep: str, header: bool = True) -> bytes:
    lines = ([sep.join(COLUMNS)] if header else []) + [sep.join(str(v) for v in r) for r in WIKI]
    return ("\n".join(lines) + "\n").encode()


def as_table() -> pa.Table:
    return pa.table({c: pa.array([r[i] for r in WIKI], pa.int64() if c in LONGS else pa.string())
                     for i, c in enumerate(COLUMNS)})


def as_parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(as_table(), sink)
    return sink.getvalue()


def as_orc() -> bytes:
    sink = io.BytesIO()
    orc.write_table(as_table(), sink)
    return sink.getvalue()


def as_avro() -> bytes:
    import fastavro
    schema = fastavro.parse_schema({"type": "record", "name": "wiki", "fields": [
        {"name": c, "type": "long" if c in LONGS else "string"} for c in COLUMNS]})
    sink = io.BytesIO()
    fastavro.writer(sink, schema, [dict(zip(COLUMNS, r)) for r in WIKI])
    return sink.getvalue()


REGEX = "^" + ",".join(["([^,]*)"] * len(COLUMNS)) + "$"
FORMATS = {
    "json": ("wiki.json", as_json, {"type": "json"}),
    "csv": ("wiki.csv", lambda: as_delimited(","), {"type": "csv", "findColumnsFromHeader": True}),
    "csv-columns": ("wiki.csv", lambda: as_delimited(",", header=False), {"type": "csv", "columns": COLUMNS}),
    "tsv": ("wiki.tsv", lambda: as_delimited("\t"), {"type": "tsv", "findColumnsFromHeader": True}),
    "tsv-pipe": ("wiki.psv", lambda: as_delimited("|", header=False),
                 {"type": "tsv", "delimiter": "|", "columns": COLUMNS}),
    "regex": ("wiki.txt", lambda: as_delimited(",", header=False),
              {"type": "regex", "pattern": REGEX, "columns": COLUMNS}),
    "parquet": ("wiki.parquet", as_parquet, {"type": "parquet"}),
    "orc": ("wiki.orc", as_orc, {"type": "orc"}),
    "avro_ocf": ("wiki.avro", as_avro, {"type": "avro_ocf"}),
}


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def snappy_framed(data: bytes) -> bytes:
    """Snappy framing format, as Druid's ``.sz`` files are written."""
    out = [b"\xff\x06\x00\x00sNaPpY"]
    codec = pa.Codec("snappy")
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        crc = crc32c(chunk)
        masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
        body = masked.to_bytes(4, "little") + codec.compress(chunk).to_pybytes()
        out.append(b"\x00" + len(body).to_bytes(3, "little") + body)
    return b"".join(out)


def zipped(data: bytes, name: str) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return sink.getvalue()


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


COMPRESSIONS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".zst": zstd,
                ".zip": lambda d: zipped(d, "wiki.json"), ".sz": snappy_framed}


# --- servers -----------------------------------------------------------------------------------


class _AuthHandler(BaseHTTPRequestHandler):
    """Serves files under ``directory`` only with basic auth ``druid:secret`` and ``X-Team: msq``."""

    directory = "."

    def log_message(self, *args):
        pass

    def do_GET(self):
        expected = "Basic " + base64.b64encode(b"druid:secret").decode()
        if self.headers.get("Authorization") != expected or self.headers.get("X-Team") != "msq":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    """One HTTP server (basic auth + a required header) for the module's files."""
    root = tmp_path_factory.mktemp("www")
    handler = type("Handler", (_AuthHandler,), {"directory": str(root)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def s3():
    """moto's S3 in server mode on 127.0.0.1; yields (endpoint URL, boto3 client)."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="wiki")
    yield endpoint, client
    server.stop()


GCS_PORT = free_port()
AZURE_ACCOUNT = "msqtest"
AZURE_KEY = base64.b64encode(bytes(range(64))).decode()
AZURE_SAS = "?sv=2023-11-03&ss=b&srt=co&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=c2lnbmVk%2Bc2Fz"


@pytest.fixture(scope="module")
def azure():
    """The Azure Blob look-alike (``tests/azure_blob_server.py``); the server reaches it
    through ``MSQ_AZURE_BLOB_ENDPOINT``."""
    server = AzureBlobServer(AZURE_ACCOUNT, AZURE_KEY, AZURE_SAS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gcs():
    """A Google Cloud Storage emulator on 127.0.0.1 (the server finds it through
    ``STORAGE_EMULATOR_HOST``); yields the pyarrow filesystem to put objects with."""
    emulator = pytest.importorskip("gcp_storage_emulator.server")
    from datetime import timedelta

    import pyarrow.fs as pafs
    server = emulator.create_server("127.0.0.1", GCS_PORT, in_memory=True, default_bucket="wiki")
    server.start()
    yield pafs.GcsFileSystem(anonymous=True, scheme="http", endpoint_override=f"127.0.0.1:{GCS_PORT}",
                             retry_time_limit=timedelta(seconds=5))
    server.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, azure):
    """One ``msqcore serve`` for the module. The environment gives the password providers
    a variable to read, points Google's and Azure's clients at the local servers and keeps
    the AWS SDK off any instance-metadata endpoint."""
    saved = dict(os.environ)
    os.environ.update(MSQ_TEST_HTTP_PASSWORD="secret", MSQ_TEST_AZURE_KEY=AZURE_KEY, AWS_EC2_METADATA_DISABLED="true",
                      STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{GCS_PORT}", MSQ_AZURE_BLOB_ENDPOINT=azure.endpoint)
    server = Server(tmp_path_factory.mktemp("srv") / "var")
    try:
        server.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield server
    server.stop()


# --- helpers ----------------------------------------------------------------------------------


def extern(source: dict, fmt: dict, signature: list | None = None) -> str:
    def quote(obj) -> str:
        return json.dumps(obj).replace("'", "''")
    return f"TABLE(EXTERN('{quote(source)}', '{quote(fmt)}', '{quote(signature or SIGNATURE)}'))"


def submit_wiki(client, ds: str, source: dict, fmt: dict, context: dict | None = None) -> str:
    sql = (f'REPLACE INTO "{ds}" OVERWRITE ALL SELECT TIME_PARSE("timestamp") AS __time, {SELECT} '
           f"FROM {extern(source, fmt)} PARTITIONED BY DAY")
    return client.submit(sql, context)


def contents(client, ds: str) -> list[dict]:
    return client.sql(f'SELECT __time, {SELECT} FROM "{ds}" ORDER BY __time')


def ingest_all(client, jobs: dict[str, tuple[dict, dict]], context: dict | None = None) -> dict[str, dict]:
    """Submit every job at once, wait for all; returns each one's report."""
    ids = {ds: submit_wiki(client, ds, source, fmt, context) for ds, (source, fmt) in jobs.items()}
    reports = {}
    for ds, task_id in ids.items():
        status = client.wait(task_id)
        assert status["statusCode"] == "SUCCESS", json.dumps([ds, client.report(task_id)["status"].get("errorReport")])
        reports[ds] = client.report(task_id)
    return reports


def run_failing(client, source: dict, fmt: dict, context: dict | None = None, signature=None,
                timeout: float = 120) -> tuple[dict, dict]:
    sql = (f"INSERT INTO bad SELECT TIME_PARSE(\"timestamp\") AS __time, page "
           f"FROM {extern(source, fmt, signature)} PARTITIONED BY DAY")
    task_id = client.submit(sql, context)
    started = time.time()
    status = client.wait(task_id, timeout=timeout)
    assert time.time() - started < timeout
    assert status["statusCode"] == "FAILED", status
    return status, client.report(task_id)


def input_counter(report: dict) -> dict:
    merged = {"rows": 0, "bytes": 0, "files": 0, "totalFiles": 0}
    for worker in report["counters"]["0"].values():
        c = worker["input0"]
        merged["rows"] += sum(c.get("rows", []))
        merged["bytes"] += sum(c.get("bytes", []))
        merged["files"] += sum(c.get("files", []))
        merged["totalFiles"] = max(merged["totalFiles"], *c.get("totalFiles", [0]))
    return merged


# --- every format ------------------------------------------------------------------------------


def test_every_format_gives_the_same_rows(srv, tmp_path):
    jobs = {}
    for name, (filename, make, fmt) in FORMATS.items():
        d = tmp_path / name
        d.mkdir()
        (d / filename).write_bytes(make())
        jobs[f"fmt_{name.replace('-', '_')}"] = ({"type": "local", "baseDir": str(d), "filter": "*"}, fmt)
    reports = ingest_all(srv.client, jobs)
    for ds, report in reports.items():
        assert contents(srv.client, ds) == EXPECTED, ds
        counter = input_counter(report)
        assert counter["rows"] == len(WIKI) and counter["files"] == 1 and counter["totalFiles"] == 1, ds
    sizes = {f"fmt_{n.replace('-', '_')}": len(make()) for n, (_, make, _) in FORMATS.items()
             if n not in ("parquet", "orc", "avro_ocf")}
    for ds, size in sizes.items():  # raw file bytes
        assert input_counter(reports[ds])["bytes"] == size, ds


def test_every_compression_gives_the_same_rows(srv, tmp_path):
    data = as_json()
    jobs = {}
    for ext, compress in COMPRESSIONS.items():
        d = tmp_path / ext.strip(".")
        d.mkdir()
        (d / f"wiki.json{ext}").write_bytes(compress(data))
        jobs[f"cmp_{ext.strip('.')}"] = ({"type": "local", "files": [str(d / f"wiki.json{ext}")]}, {"type": "json"})
    # A compressed Parquet file is fetched and inflated to a temp file first.
    (tmp_path / "wiki.parquet.gz").write_bytes(gzip.compress(as_parquet()))
    jobs["cmp_parquet_gz"] = ({"type": "local", "files": [str(tmp_path / "wiki.parquet.gz")]}, {"type": "parquet"})
    reports = ingest_all(srv.client, jobs)
    for ds, report in reports.items():
        assert contents(srv.client, ds) == EXPECTED, ds
    for ext, compress in COMPRESSIONS.items():  # bytes = compressed file bytes
        assert input_counter(reports[f"cmp_{ext.strip('.')}"])["bytes"] == len(compress(data)), ext


# --- every source ------------------------------------------------------------------------------


def test_every_source_gives_the_same_rows(srv, www, s3, tmp_path):
    base_url, root = www
    endpoint, client = s3
    data = as_json()
    half1 = "".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in WIKI[:2]).encode()
    half2 = "".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in WIKI[2:]).encode()
    local = tmp_path / "local"
    (local / "nested" / "deeper").mkdir(parents=True)
    (local / "part-1.json").write_bytes(half1)
    (local / "nested" / "deeper" / "part-2.json.gz").write_bytes(gzip.compress(half2))
    (local / "nested" / "empty.json").write_bytes(b"")  # skipped, not counted
    (local / "notes.txt").write_bytes(b"not json")  # filtered out
    (root / "wiki.json").write_bytes(data)
    (root / "part-2.json").write_bytes(half2)
    client.put_object(Bucket="wiki", Key="data/2013/part-1.json", Body=half1)
    client.put_object(Bucket="wiki", Key="data/2013/more/part-2.json.gz", Body=gzip.compress(half2))
    client.put_object(Bucket="wiki", Key="data/2013/readme.md", Body=b"# not data")
    client.put_object(Bucket="wiki", Key="whole/wiki.json", Body=data)
    client.put_object(Bucket="wiki", Key="whole/wiki.parquet", Body=as_parquet())
    (root / "wiki.orc").write_bytes(as_orc())
    (root / "wiki.avro.gz").write_bytes(gzip.compress(as_avro()))
    s3_common = {"type": "s3", "properties": AWS, "endpointConfig": {"url": endpoint, "signingRegion": "us-east-1"}}
    auth = {"httpAuthenticationUsername": "druid", "requestHeaders": {"X-Team": "msq"}}
    jobs = {
        "src_inline": ({"type": "inline", "data": data.decode()}, {"type": "json"}),
        "src_local_basedir": ({"type": "local", "baseDir": str(local), "filter": "*.json*"}, {"type": "json"}),
        "src_local_files": ({"type": "local", "files": [str(local / "part-1.json"),
                                                         str(local / "nested" / "deeper" / "part-2.json.gz")]},
                            {"type": "json"}),
        "src_http_env_password": ({"type": "http", "uris": [f"{base_url}/wiki.json"], **auth,
                                   "httpAuthenticationPassword": {"type": "environment",
                                                                  "variable": "MSQ_TEST_HTTP_PASSWORD"}},
                                  {"type": "json"}),
        "src_http_default_password": ({"type": "http", "uris": [f"{base_url}/wiki.json"], **auth,
                                       "httpAuthenticationPassword": {"type": "default", "password": "secret"}},
                                      {"type": "json"}),
        "src_http_plain_password": ({"type": "http", "uris": [f"{base_url}/wiki.json"], **auth,
                                     "httpAuthenticationPassword": "secret"}, {"type": "json"}),
        "src_s3_uris": ({**s3_common, "uris": ["s3://wiki/whole/wiki.json"]}, {"type": "json"}),
        "src_s3_parquet": ({**s3_common, "uris": ["s3://wiki/whole/wiki.parquet"]}, {"type": "parquet"}),
        "src_http_orc": ({"type": "http", "uris": [f"{base_url}/wiki.orc"], **auth,
                          "httpAuthenticationPassword": "secret"}, {"type": "orc"}),
        "src_http_avro_gz": ({"type": "http", "uris": [f"{base_url}/wiki.avro.gz"], **auth,
                              "httpAuthenticationPassword": "secret"}, {"type": "avro_ocf"}),
        "src_s3_prefixes": ({**s3_common, "prefixes": ["s3://wiki/data/2013/"], "objectGlob": "**.json*"},
                            {"type": "json"}),
        "src_s3_objects": ({**s3_common, "objects": [{"bucket": "wiki", "path": "data/2013/part-1.json"},
                                                      {"bucket": "wiki", "path": "data/2013/more/part-2.json.gz"}]},
                           {"type": "json"}),
        "src_combining": ({"type": "combining", "delegates": [
            {"type": "local", "files": [str(local / "part-1.json")]},
            {"type": "http", "uris": [f"{base_url}/part-2.json"], **auth, "httpAuthenticationPassword": "secret"}]},
            {"type": "json"}),
    }
    reports = ingest_all(srv.client, jobs, {"maxNumTasks": 3})
    for ds in jobs:
        assert contents(srv.client, ds) == EXPECTED, ds
    counter = input_counter(reports["src_local_basedir"])
    assert counter == {"rows": 5, "bytes": len(half1) + len(gzip.compress(half2)), "files": 2, "totalFiles": 2}
    assert input_counter(reports["src_s3_prefixes"])["files"] == 2
    assert input_counter(reports["src_http_env_password"])["bytes"] == len(data)
    assert input_counter(reports["src_s3_parquet"])["bytes"] == len(as_parquet())
    assert input_counter(reports["src_http_orc"])["bytes"] == len(as_orc())


def test_google_source_gives_the_same_rows(srv, gcs):
    half1 = "".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in WIKI[:2]).encode()
    half2 = "".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in WIKI[2:]).encode()
    for path, data in (("wiki/g/whole.json", as_json()), ("wiki/g/parts/1.json", half1),
                       ("wiki/g/parts/2.json.gz", gzip.compress(half2)), ("wiki/g/parts/skip.txt", b"x")):
        with gcs.open_output_stream(path, compression=None) as out:
            out.write(data)
    jobs = {"gcs_uris": ({"type": "google", "uris": ["gs://wiki/g/whole.json"]}, {"type": "json"}),
            "gcs_prefixes": ({"type": "google", "prefixes": ["gs://wiki/g/parts/"], "objectGlob": "**.json*"},
                             {"type": "json"}),
            "gcs_objects": ({"type": "google", "objects": [{"bucket": "wiki", "path": "g/parts/1.json"},
                                                            {"bucket": "wiki", "path": "g/parts/2.json.gz"}]},
                            {"type": "json"})}
    reports = ingest_all(srv.client, jobs)
    for ds in jobs:
        assert contents(srv.client, ds) == EXPECTED, ds
    assert input_counter(reports["gcs_prefixes"])["files"] == 2
    status, _ = run_failing(srv.client, {"type": "google", "uris": ["gs://wiki/g/absent.json"]}, {"type": "json"},
                            timeout=60)
    assert "gs://wiki/g/absent.json" in status["errorMsg"]


def test_azure_storage_source_gives_the_same_rows(srv, azure):
    half1 = "".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in WIKI[:2]).encode()
    half2 = "".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in WIKI[2:]).encode()
    for name, data in (("az/whole.json", as_json()), ("az/whole.parquet", as_parquet()), ("az/parts/1.json", half1),
                       ("az/parts/deeper/2.json.gz", gzip.compress(half2)), ("az/parts/readme.md", b"# no")):
        azure.put("wiki", name, data)
    base = f"azureStorage://{AZURE_ACCOUNT}/wiki"
    key = {"properties": {"key": {"type": "environment", "variable": "MSQ_TEST_AZURE_KEY"}}}
    sas = {"properties": {"sharedAccessStorageToken": AZURE_SAS.lstrip("?")}}
    jobs = {
        "az_uris_key": ({"type": "azureStorage", "uris": [f"{base}/az/whole.json"], **key}, {"type": "json"}),
        "az_uris_sas": ({"type": "azureStorage", "uris": [f"{base}/az/whole.json"], **sas}, {"type": "json"}),
        "az_parquet": ({"type": "azureStorage", "uris": [f"{base}/az/whole.parquet"], **key}, {"type": "parquet"}),
        "az_prefixes": ({"type": "azureStorage", "prefixes": [f"{base}/az/parts/"], "objectGlob": "**.json*", **sas},
                        {"type": "json"}),
        "az_objects": ({"type": "azureStorage", "objects": [
            {"bucket": AZURE_ACCOUNT, "path": "wiki/az/parts/1.json"},
            {"bucket": AZURE_ACCOUNT, "path": "wiki/az/parts/deeper/2.json.gz"}], **key}, {"type": "json"}),
    }
    reports = ingest_all(srv.client, jobs, {"maxNumTasks": 3})
    for ds in jobs:
        assert contents(srv.client, ds) == EXPECTED, ds
    assert input_counter(reports["az_prefixes"]) == {"rows": 5, "bytes": len(half1) + len(gzip.compress(half2)),
                                                     "files": 2, "totalFiles": 2}
    assert input_counter(reports["az_parquet"])["bytes"] == len(as_parquet())
    # every call was signed (SharedKey checked against the key, or the SAS token), and
    # the Parquet footer and columns were read with ranged Get Blob calls
    assert {kind for _, _, kind in azure.requests} == {"sharedkey", "sas"}
    assert any(r.startswith("bytes=") for r in azure.ranges)


def test_azure_storage_system_fields_and_failures(srv, azure):
    azure.put("wiki", "sys/a.json", as_json())
    sig = SIGNATURE + [{"name": "__file_uri", "type": "string"}, {"name": "__file_path", "type": "string"},
                       {"name": "__file_bucket", "type": "string"}]
    uri = f"azureStorage://{AZURE_ACCOUNT}/wiki/sys/a.json"
    source = {"type": "azureStorage", "uris": [uri], "properties": {"key": AZURE_KEY},
              "systemFields": ["__file_uri", "__file_path", "__file_bucket"]}
    task_id = srv.client.submit(
        f'REPLACE INTO "az_sys" OVERWRITE ALL SELECT TIME_PARSE("timestamp") AS __time, page, __file_uri, '
        f"__file_path, __file_bucket FROM {extern(source, {'type': 'json'}, sig)} PARTITIONED BY ALL")
    assert srv.client.wait(task_id)["statusCode"] == "SUCCESS", srv.client.report(task_id)["status"]
    assert srv.client.sql('SELECT DISTINCT __file_uri, __file_path, __file_bucket FROM "az_sys"') == [
        {"__file_uri": uri, "__file_path": "sys/a.json", "__file_bucket": "wiki"}]
    # a wrong account key is refused by the storage service (403), a missing blob is not found
    wrong = base64.b64encode(b"w" * 64).decode()
    for bad, needle in (({**source, "properties": {"key": wrong}}, "403"),
                        ({**source, "uris": [uri.replace("a.json", "absent.json")]}, "absent.json")):
        del bad["systemFields"]
        status, _ = run_failing(srv.client, bad, {"type": "json"}, timeout=90)
        assert status["errorMsg"].startswith("UnknownError: ") and needle in status["errorMsg"], status["errorMsg"]
        assert bad["uris"][0] in status["errorMsg"]


def test_system_fields_are_readable_columns(srv, s3, tmp_path):
    endpoint, client = s3
    client.put_object(Bucket="wiki", Key="sys/a.json", Body=as_json())
    (tmp_path / "a.json").write_bytes(as_json())
    sig = SIGNATURE + [{"name": "__file_uri", "type": "string"}, {"name": "__file_path", "type": "string"},
                       {"name": "__file_bucket", "type": "string"}]
    sources = {
        "sys_local": {"type": "local", "files": [str(tmp_path / "a.json")],
                      "systemFields": ["__file_uri", "__file_path"]},
        "sys_s3": {"type": "s3", "uris": ["s3://wiki/sys/a.json"], "properties": AWS,
                   "endpointConfig": {"url": endpoint}, "systemFields": ["__file_uri", "__file_path", "__file_bucket"]},
    }
    ids = {}
    for ds, source in sources.items():
        sql = (f'REPLACE INTO "{ds}" OVERWRITE ALL SELECT TIME_PARSE("timestamp") AS __time, page, __file_uri, '
               f"__file_path, __file_bucket FROM {extern(source, {'type': 'json'}, sig)} PARTITIONED BY ALL")
        ids[ds] = srv.client.submit(sql)
    for ds, task_id in ids.items():
        assert srv.client.wait(task_id)["statusCode"] == "SUCCESS", srv.client.report(task_id)["status"]
    local = srv.client.sql('SELECT DISTINCT __file_uri, __file_path, __file_bucket FROM "sys_local"')
    path = str((tmp_path / "a.json").resolve())
    assert local == [{"__file_uri": "file:" + path, "__file_path": path, "__file_bucket": None}]
    remote = srv.client.sql('SELECT DISTINCT __file_uri, __file_path, __file_bucket FROM "sys_s3"')
    assert remote == [{"__file_uri": "s3://wiki/sys/a.json", "__file_path": "sys/a.json", "__file_bucket": "wiki"}]


# --- format options ---------------------------------------------------------------------------


def test_json_flatten_spec_paths_jq_and_discovery(srv):
    rows = [{"ts": "2020-01-01T00:00:00Z", "name": "a", "geo": {"country": "FR", "cities": ["Paris", "Lyon"]},
             "tags": [{"k": "x"}, {"k": "y"}], "n": 1},
            {"ts": "2020-01-02T00:00:00Z", "name": "b", "geo": {"country": "DE", "cities": ["Berlin"]}, "n": 2}]
    data = "".join(json.dumps(r) + "\n" for r in rows)
    fields = [{"type": "path", "name": "country", "expr": "$.geo.country"},
              {"type": "path", "name": "first_city", "expr": "$.geo.cities[0]"},
              {"type": "path", "name": "last_tag", "expr": "$['tags'][-1].k"},
              {"type": "jq", "name": "ncities", "expr": ".geo.cities | length"},
              {"type": "tree", "name": "country2", "nodes": ["geo", "country"]},
              {"type": "root", "name": "ts"}]
    sig = [{"name": n, "type": t} for n, t in [("ts", "string"), ("name", "string"), ("country", "string"),
                                                ("first_city", "string"), ("last_tag", "string"),
                                                ("ncities", "long"), ("country2", "string"), ("n", "long")]]
    cols = "name, country, first_city, last_tag, ncities, country2, n"
    for ds, discovery in (("flat_on", True), ("flat_off", False)):
        fmt = {"type": "json", "flattenSpec": {"useFieldDiscovery": discovery, "fields": fields}}
        sql = (f"REPLACE INTO {ds} OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, {cols} "
               f"FROM {extern({'type': 'inline', 'data': data}, fmt, sig)} PARTITIONED BY ALL")
        task_id = srv.client.submit(sql)
        assert srv.client.wait(task_id)["statusCode"] == "SUCCESS", srv.client.report(task_id)["status"]
    on = srv.client.sql(f"SELECT {cols} FROM flat_on ORDER BY __time")
    assert on == [{"name": "a", "country": "FR", "first_city": "Paris", "last_tag": "y", "ncities": 2,
                   "country2": "FR", "n": 1},
                  {"name": "b", "country": "DE", "first_city": "Berlin", "last_tag": None, "ncities": 1,
                   "country2": "DE", "n": 2}]
    off = srv.client.sql(f"SELECT {cols} FROM flat_off ORDER BY __time")
    assert [(r["name"], r["n"], r["country"]) for r in off] == [(None, None, "FR"), (None, None, "DE")]


def test_parquet_nested_paths_and_binary_as_string(srv, tmp_path):
    table = pa.table({"ts": ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"],
                      "geo": pa.array([{"country": "FR", "pop": 5}, {"country": "DE", "pop": 7}]),
                      "raw": pa.array([b"hello", b"world"], pa.binary())})
    pq.write_table(table, tmp_path / "n.parquet")
    sig = [{"name": "ts", "type": "string"}, {"name": "country", "type": "string"}, {"name": "pop", "type": "long"},
           {"name": "raw", "type": "string"}]
    for ds, as_string in (("pq_text", True), ("pq_b64", False)):
        fmt = {"type": "parquet", "binaryAsString": as_string, "flattenSpec": {"fields": [
            {"type": "path", "name": "country", "expr": "$.geo.country"},
            {"type": "path", "name": "pop", "expr": "$.geo.pop"}]}}
        sql = (f"REPLACE INTO {ds} OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, country, pop, raw "
               f"FROM {extern({'type': 'local', 'files': [str(tmp_path / 'n.parquet')]}, fmt, sig)} "
               "PARTITIONED BY ALL")
        task_id = srv.client.submit(sql)
        assert srv.client.wait(task_id)["statusCode"] == "SUCCESS", srv.client.report(task_id)["status"]
    assert srv.client.sql("SELECT country, pop, raw FROM pq_text ORDER BY __time") == [
        {"country": "FR", "pop": 5, "raw": "hello"}, {"country": "DE", "pop": 7, "raw": "world"}]
    assert [r["raw"] for r in srv.client.sql("SELECT raw FROM pq_b64 ORDER BY __time")] == \
        [base64.b64encode(b"hello").decode(), base64.b64encode(b"world").decode()]


def test_csv_skip_header_rows_lines_format_and_odd_rows(srv):
    csv_data = "# exported\n# by a tool\nts,k,n\n2020-01-01,a,1\n2020-01-02,\"b, quoted\",2\n2020-01-03,c\n" \
               "2020-01-04,d,4,extra\n"
    sig = [{"name": "ts", "type": "string"}, {"name": "k", "type": "string"}, {"name": "n", "type": "long"}]
    fmt = {"type": "csv", "skipHeaderRows": 2, "findColumnsFromHeader": True}
    task_id = srv.client.submit(f"REPLACE INTO opts_csv OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, k, n "
                                f"FROM {extern({'type': 'inline', 'data': csv_data}, fmt, sig)} PARTITIONED BY ALL")
    lines = "first line\nsecond, with comma\n\tthird\n"
    task_lines = srv.client.submit(
        f"REPLACE INTO opts_lines OVERWRITE ALL SELECT line FROM "
        f"{extern({'type': 'inline', 'data': lines}, {'type': 'lines'}, [{'name': 'line', 'type': 'string'}])} "
        "PARTITIONED BY ALL")
    for t in (task_id, task_lines):
        assert srv.client.wait(t)["statusCode"] == "SUCCESS", srv.client.report(t)["status"]
    # Druid zips a row's values with the columns: short rows get nulls, extra values are dropped.
    assert srv.client.sql("SELECT k, n FROM opts_csv ORDER BY __time") == [
        {"k": "a", "n": 1}, {"k": "b, quoted", "n": 2}, {"k": "c", "n": None}, {"k": "d", "n": 4}]
    assert sorted(r["line"] for r in srv.client.sql("SELECT line FROM opts_lines")) == \
        sorted(["first line", "second, with comma", "\tthird"])


# --- bad input ---------------------------------------------------------------------------------

BAD_JSON = (json.dumps(dict(zip(COLUMNS, WIKI[0]))) + "\n"
            "{\"timestamp\": \"2013-08-31T02:00:00Z\", \"page\": \n"
            + json.dumps(dict(zip(COLUMNS, WIKI[1]))) + "\n"
            "\n"
            + json.dumps(dict(zip(COLUMNS, WIKI[2]))) + "\n")


def test_malformed_rows_fail_the_task_by_default(srv, tmp_path):
    (tmp_path / "bad.json").write_text(BAD_JSON)
    status, report = run_failing(srv.client, {"type": "local", "files": [str(tmp_path / "bad.json")]},
                                 {"type": "json"})
    error = report["status"]["errorReport"]["error"]
    path = str((tmp_path / "bad.json").resolve())
    assert error["errorCode"] == "CannotParseExternalData"
    assert error["errorMessage"] == ('Unable to parse row [{"timestamp": "2013-08-31T02:00:00Z", "page": ] '
                                     f"(Path: file:{path}, Record: 2, Line: 2)")
    assert status["errorMsg"].startswith("CannotParseExternalData: Unable to parse row")


def test_malformed_rows_are_skipped_and_counted_when_allowed(srv, tmp_path):
    (tmp_path / "bad.json").write_text(BAD_JSON)
    source = {"type": "local", "files": [str(tmp_path / "bad.json")]}
    reports = ingest_all(srv.client, {"skipbad": (source, {"type": "json"})}, {"maxParseExceptions": -1})
    assert [r["page"] for r in contents(srv.client, "skipbad")] == [r[1] for r in WIKI[:3]]
    worker = reports["skipbad"]["counters"]["0"]["0"]
    assert worker["warnings"] == {"type": "warnings", "CannotParseExternalData": 2}
    assert worker["input0"]["rows"] == [3]
    messages = [w["error"]["errorMessage"] for w in reports["skipbad"]["status"].get("warnings", [])]
    path = str((tmp_path / "bad.json").resolve())
    assert messages == [
        f'Unable to parse row [{{"timestamp": "2013-08-31T02:00:00Z", "page": ] '
        f"(Path: file:{path}, Record: 2, Line: 2)",
        f"Unable to parse row [] (Path: file:{path}, Record: 3, Line: 4)"]


def test_too_many_malformed_rows_fail_with_too_many_warnings(srv, tmp_path):
    (tmp_path / "bad.json").write_text(BAD_JSON)
    status, report = run_failing(srv.client, {"type": "local", "files": [str(tmp_path / "bad.json")]},
                                 {"type": "json"}, {"maxParseExceptions": 1})
    error = report["status"]["errorReport"]["error"]
    assert error == {"errorCode": "TooManyWarnings", "maxWarnings": 1, "rootErrorCode": "CannotParseExternalData",
                     "errorMessage": "Too many warnings of type CannotParseExternalData generated (max = 1)"}


def test_bad_csv_row_names_file_and_line(srv, tmp_path):
    (tmp_path / "bad.csv").write_text("timestamp,page\n2013-08-31T01:02:33Z,ok\n2013-08-31T01:02:34Z,\"open\n")
    _, report = run_failing(srv.client, {"type": "local", "baseDir": str(tmp_path), "filter": "*.csv"},
                            {"type": "csv", "findColumnsFromHeader": True})
    error = report["status"]["errorReport"]["error"]
    assert error["errorCode"] == "CannotParseExternalData"
    assert error["errorMessage"].endswith(f"(Path: file:{(tmp_path / 'bad.csv').resolve()}, Record: 2, Line: 3)")


def test_unreadable_gzip_fails_naming_the_file(srv, tmp_path):
    (tmp_path / "broken.json.gz").write_bytes(b"this is not gzip at all\n")
    status, report = run_failing(srv.client, {"type": "local", "files": [str(tmp_path / "broken.json.gz")]},
                                 {"type": "json"})
    error = report["status"]["errorReport"]["error"]
    assert error["errorCode"] == "UnknownError"
    assert "broken.json.gz" in error["errorMessage"] and "gzip" in error["errorMessage"]


def test_truncated_gzip_fails_naming_the_file(srv, tmp_path):
    data = gzip.compress(as_json() * 200)
    (tmp_path / "cut.json.gz").write_bytes(data[: len(data) // 2])
    _, report = run_failing(srv.client, {"type": "local", "files": [str(tmp_path / "cut.json.gz")]},
                            {"type": "json"})
    error = report["status"]["errorReport"]["error"]
    assert error["errorCode"] == "UnknownError" and "cut.json.gz" in error["errorMessage"]


def test_missing_file_fails_naming_it(srv, tmp_path):
    status, report = run_failing(srv.client, {"type": "local", "files": [str(tmp_path / "absent.json")]},
                                 {"type": "json"})
    assert status["errorMsg"].startswith("UnknownError: ") and "absent.json" in status["errorMsg"]


def test_http_404_fails_naming_the_uri(srv, www):
    base_url, _ = www
    uri = f"{base_url}/nothing-here.json"
    status, report = run_failing(srv.client, {"type": "http", "uris": [uri], "httpAuthenticationUsername": "druid",
                                              "httpAuthenticationPassword": "secret",
                                              "requestHeaders": {"X-Team": "msq"}}, {"type": "json"})
    assert uri in status["errorMsg"] and "404" in status["errorMsg"]


def test_http_wrong_password_fails_with_401(srv, www):
    base_url, root = www
    (root / "private.json").write_bytes(as_json())
    uri = f"{base_url}/private.json"
    status, _ = run_failing(srv.client, {"type": "http", "uris": [uri], "httpAuthenticationUsername": "druid",
                                         "httpAuthenticationPassword": {"type": "default", "password": "wrong"},
                                         "requestHeaders": {"X-Team": "msq"}}, {"type": "json"})
    assert uri in status["errorMsg"] and "401" in status["errorMsg"]


def test_http_refused_fails_fast_naming_the_uri(srv):
    uri = f"http://127.0.0.1:{free_port()}/wiki.json"
    status, _ = run_failing(srv.client, {"type": "http", "uris": [uri]}, {"type": "json"}, timeout=60)
    assert status["errorMsg"].startswith("UnknownError: ") and uri in status["errorMsg"]


def test_wrong_s3_key_fails_naming_the_object(srv, s3):
    endpoint, _ = s3
    source = {"type": "s3", "uris": ["s3://wiki/no/such/key.json"], "properties": AWS,
              "endpointConfig": {"url": endpoint}}
    status, _ = run_failing(srv.client, source, {"type": "json"}, timeout=60)
    assert status["errorMsg"].startswith("UnknownError: ") and "s3://wiki/no/such/key.json" in status["errorMsg"]


@pytest.mark.parametrize("source, fmt, needle", [
    ({"type": "azure", "uris": ["azure://container/a.json"]}, {"type": "json"}, "AZURE_STORAGE_ACCOUNT"),
    ({"type": "azureStorage", "uris": ["azureStorage:///c/a.json"]}, {"type": "json"}, "ACCOUNT"),
    ({"type": "azureStorage", "objects": [{"bucket": "acct", "path": "only-container"}]}, {"type": "json"},
     "CONTAINER/PATH"),
    ({"type": "hdfs", "paths": ["/x"]}, {"type": "json"}, "hdfs"),
    ({"type": "http", "uris": ["ftp://example.org/x.json"]}, {"type": "json"}, "protocols"),
    ({"type": "s3", "uris": ["s3://b/k"], "prefixes": ["s3://b/"]}, {"type": "json"}, "Exactly one of"),
    ({"type": "s3", "uris": ["gs://b/k"]}, {"type": "json"}, "must be [s3]"),
    ({"type": "s3", "uris": ["s3://b/k"], "properties": {"accessKeyId": "a"}}, {"type": "json"}, "secretAccessKey"),
    ({"type": "local", "files": ["/x"], "systemFields": ["__file_bucket"]}, {"type": "json"}, "__file_bucket"),
    ({"type": "combining", "delegates": []}, {"type": "json"}, "delegates"),
    ({"type": "inline", "data": "x"}, {"type": "csv"}, "findColumnsFromHeader"),
    ({"type": "inline", "data": "x"}, {"type": "avro_stream"}, "avro_ocf"),
    ({"type": "inline", "data": "x"}, {"type": "xml"}, "xml"),
    ({"type": "inline", "data": "x"}, {"type": "json", "flattenSpec": {"fields": [
        {"type": "path", "name": "a", "expr": "$.a[?(@.b > 1)]"}]}}, "JsonPath"),
    ({"type": "inline", "data": "x"}, {"type": "parquet", "flattenSpec": {"fields": [
        {"type": "jq", "name": "a", "expr": ".a"}]}}, "jq"),
    ({"type": "inline", "data": "x"}, {"type": "regex", "pattern": "(unclosed"}, "regex"),
])
def test_refused_specs_are_400(srv, source, fmt, needle):
    from client import HttpError
    with pytest.raises(HttpError) as e:
        srv.client.request("POST", "/druid/v2/sql/task", {"query": (
            f"INSERT INTO r SELECT page FROM {extern(source, fmt, [{'name': 'page', 'type': 'string'}])} "
            "PARTITIONED BY ALL")})
    assert e.value.status == 400 and needle in e.value.json()["errorMessage"]
