"""Fixtures: a real ``msqcore serve`` process on 127.0.0.1, and a local HTTP file server."""
from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import struct
import time
import zlib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from client import Client

# Druid's quickstart sample (examples/quickstart/tutorial, Apache-2.0), kept here so a bare
# clone can run the tests: 39,244 rows of 2015-09-12.
WIKITICKER = Path(__file__).resolve().parent / "data" / "wikiticker-2015-09-12-sampled.json.gz"


def relabel_segment_version(path: Path, version: int) -> None:
    """Relabel a segment file written without version 4's byte planes and version 5's bit-packed
    ids (``written_before_version_4``) as an older version (header and table of contents, with
    its checksum)."""
    from msqcore.storage.segment import FORMAT_VERSION
    raw = bytearray(path.read_bytes())
    toc_len = struct.unpack_from("<I", raw, 8)[0]
    toc = bytes(raw[32:32 + toc_len])
    assert b'"idBits"' not in toc, "write the file with no_bit_packed_ids or written_before_version_4"
    toc = toc.replace(b'"version":%d' % FORMAT_VERSION, b'"version":%d' % version)
    raw[32:32 + toc_len] = toc
    struct.pack_into("<HII", raw, 6, version, toc_len, zlib.crc32(toc))
    path.write_bytes(bytes(raw))


def no_bit_packed_ids(monkeypatch) -> None:
    """Segments written from here on store every string column's ids in whole bytes, as before
    format version 5."""
    from msqcore.storage import segment
    monkeypatch.setattr(segment._k, "id_bits", lambda cardinality: 0)


def written_before_version_4(monkeypatch) -> None:
    """Segments written from here on use neither version 4's byte planes (a LONG's values, the
    lengths and counts parts) nor version 5's bit-packed ids."""
    from msqcore.storage import segment
    no_bit_packed_ids(monkeypatch)
    monkeypatch.setattr(segment, "_long_values",
                        lambda w, data, width, first_size=None: w.part("values", data, segment.ROWS_PER_BLOCK * width))
    monkeypatch.setattr(segment, "_write_lengths",
                        lambda w, name, offsets: w.part(name, segment._k.lengths(offsets), segment.ROWS_PER_BLOCK * 4))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``msqcore serve`` process; can be stopped and started again on the same data dir."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    @property
    def client(self) -> Client:
        return Client(f"http://127.0.0.1:{self.port}")

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "msqcore", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if self.client.get("/status/health") is True:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "var")
    srv.start()
    yield srv
    srv.stop()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _SlowHandler(_QuietHandler):
    """Sends ``/slow/<name>`` a little at a time, so a task stays busy reading it."""

    def do_GET(self):
        if not self.path.startswith("/slow/"):
            return super().do_GET()
        data = Path(self.directory, self.path[len("/slow/"):]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for i in range(0, len(data), 1024):
                self.wfile.write(data[i:i + 1024])
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def files_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_SlowHandler, directory=str(root)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


SEED_COLUMNS = ["added", "channel", "cityName", "comment", "commentLength", "countryIsoCode", "countryName",
                "deleted", "delta", "deltaBucket", "diffUrl", "flags", "isAnonymous", "isMinor", "isNew", "isRobot",
                "isUnpatrolled", "metroCode", "namespace", "page", "regionIsoCode", "regionName", "timestamp", "user"]


def seed_style_wikipedia(path: Path) -> int:
    """The wikiticker sample rewritten with the seed query's fields (``timestamp`` ...), gzipped."""
    rows = 0
    with gzip.open(WIKITICKER, "rt", encoding="utf-8") as src, gzip.open(path, "wt", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            row["timestamp"] = row.pop("time")
            row["commentLength"] = len(row.get("comment") or "")
            row["deltaBucket"] = str(abs(row.get("delta") or 0) // 100 * 100)
            row["diffUrl"] = f"https://example.org/diff/{rows}"
            row["flags"] = ""
            dst.write(json.dumps(row) + "\n")
            rows += 1
    return rows
