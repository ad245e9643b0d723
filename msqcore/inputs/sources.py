"""EXTERN input sources: list the splits (files) on the controller, open them on workers.

A split is one file, object, URL or inline blob; Druid never splits one file across
workers. ``list_files`` runs on the controller and returns picklable ``InputFile``s;
``open_raw`` (streaming) and ``open_random_access`` (Parquet/ORC) run on the workers.

Cloud object stores (``s3``, ``google``, ``azureStorage``/``azure``) go through
``pyarrow.fs`` (see ``msqcore.inputs.cloud``).
"""
from __future__ import annotations

import base64
import fnmatch
import io
import mmap
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import BinaryIO

from msqcore.errors import InvalidInput, UnknownError
from msqcore.inputs import cloud
from msqcore.inputs.compression import ForwardStream

SUPPORTED = ("inline", "local", "http", "s3", "google", "azureStorage", "azure", "combining")
SYSTEM_FIELDS = ("__file_uri", "__file_path", "__file_bucket")
# Druid's per-source system fields: file-like sources have a URI and a path, cloud
# sources a bucket (container) too.
_SOURCE_SYSTEM_FIELDS = {"local": ("__file_uri", "__file_path"), "http": ("__file_uri", "__file_path"),
                         "s3": SYSTEM_FIELDS, "google": SYSTEM_FIELDS, "azureStorage": SYSTEM_FIELDS,
                         "azure": SYSTEM_FIELDS}
HTTP_TIMEOUT = 60.0


@dataclass
class InputFile:
    """One split. Picklable: the controller sends it to a worker in a WorkOrder."""

    kind: str  # inline | local | http | s3 | google | azure
    uri: str  # local: absolute path; otherwise the URI as the user wrote it
    size: int | None  # raw (compressed) bytes when known up front
    data: str | None = None  # inline payload
    auth: tuple[str, object] | None = None  # http: (user, password or password provider)
    headers: dict[str, str] = field(default_factory=dict)  # http requestHeaders
    fs: dict | None = None  # cloud: how to build the pyarrow filesystem
    path: str | None = None  # cloud: "bucket/key" inside that filesystem
    system: dict[str, str] = field(default_factory=dict)  # requested systemFields → value

    @property
    def source_uri(self) -> str:
        """The URI Druid names in messages (``Path: ...``): ``file:/abs/path`` for local files."""
        return "file:" + self.uri if self.kind == "local" else self.uri


# --- validation --------------------------------------------------------------------------


def resolve_password(value) -> str | None:
    """A Druid PasswordProvider: a plain string, ``default`` or ``environment``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        kind = value.get("type", "default")
        if kind == "default":
            return value.get("password")
        if kind == "environment":
            return os.environ.get(str(value.get("variable", "")))
    raise InvalidInput(f"Could not resolve type id '{value.get('type') if isinstance(value, dict) else value}' "
                       "as a subtype of PasswordProvider; known types: [default, environment]")


def _check_password_provider(value, name: str) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, dict):
        raise InvalidInput(f"[{name}] must be a string or a PasswordProvider object")
    kind = value.get("type", "default")
    if kind == "environment" and not value.get("variable"):
        raise InvalidInput(f"Missing required creator property 'variable' for the environment PasswordProvider "
                           f"of [{name}]")
    resolve_password(value)


def _check_system_fields(spec: dict) -> None:
    fields = spec.get("systemFields")
    if fields is None:
        return
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidInput("systemFields must be an array of strings")
    allowed = _SOURCE_SYSTEM_FIELDS.get(spec["type"], ())
    for name in fields:
        if name not in SYSTEM_FIELDS:
            raise InvalidInput(f"Cannot deserialize value of type `SystemField` from String \"{name}\": not one of "
                               f"the values accepted: {list(SYSTEM_FIELDS)}")
        if name not in allowed:
            raise InvalidInput(f"System field [{name}] is not supported by inputSource type [{spec['type']}]; "
                               f"supported: {list(allowed)}")


def validate_input_source(spec: dict) -> None:
    """Refuse at submit time what cannot run (Druid answers these with 400)."""
    if not isinstance(spec, dict):
        raise InvalidInput("inputSource must be a JSON object")
    kind = spec.get("type")
    if kind not in SUPPORTED:
        raise InvalidInput(f"Could not resolve type id '{kind}' as a subtype of InputSource; "
                           f"supported here: {', '.join(SUPPORTED)}")
    _check_system_fields(spec)
    if kind == "inline":
        if not isinstance(spec.get("data"), str):
            raise InvalidInput("Missing required creator property 'data' for inline inputSource")
    elif kind == "http":
        uris = spec.get("uris")
        if not isinstance(uris, list) or not uris:
            raise InvalidInput("Missing required creator property 'uris' for http inputSource")
        for uri in uris:
            scheme = str(uri).split(":", 1)[0].lower()
            if scheme not in ("http", "https") or "://" not in str(uri):
                raise InvalidInput(f"Only [http, https] protocols are allowed, got [{uri}]")
        _check_password_provider(spec.get("httpAuthenticationPassword"), "httpAuthenticationPassword")
        headers = spec.get("requestHeaders")
        if headers is not None and (not isinstance(headers, dict)
                                    or not all(isinstance(v, str) for v in headers.values())):
            raise InvalidInput("requestHeaders must be a JSON object of strings")
    elif kind == "local":
        files = spec.get("files")
        if files is not None and (not isinstance(files, list) or not all(isinstance(f, str) for f in files)):
            raise InvalidInput("files must be an array of paths")
        if not files and not (spec.get("baseDir") and spec.get("filter")):
            raise InvalidInput("At least one of [baseDir + filter] or [files] must be set for local inputSource")
    elif kind == "combining":
        delegates = spec.get("delegates")
        if not isinstance(delegates, list) or not delegates:
            raise InvalidInput("Missing required creator property 'delegates' for combining inputSource")
        for d in delegates:
            if isinstance(d, dict) and d.get("type") == "combining":
                raise InvalidInput("A combining inputSource cannot delegate to another combining inputSource")
            validate_input_source(d)
    else:
        cloud.validate(spec)


# --- listing -----------------------------------------------------------------------------


def list_files(spec: dict) -> list[InputFile]:
    """The splits of an input source, in a stable order (runs on the controller)."""
    validate_input_source(spec)
    kind = spec["type"]
    if kind == "combining":
        return [f for d in spec["delegates"] for f in list_files(d)]
    wanted = spec.get("systemFields") or []
    if kind == "inline":
        return [InputFile("inline", "inline", len(spec["data"].encode()), data=spec["data"])]
    if kind == "http":
        user = spec.get("httpAuthenticationUsername")
        auth = (user, spec.get("httpAuthenticationPassword")) if user else None
        headers = dict(spec.get("requestHeaders") or {})
        out = []
        for uri in spec["uris"]:
            system = {"__file_uri": uri, "__file_path": urllib.parse.urlsplit(uri).path}
            out.append(InputFile("http", uri, None, auth=auth, headers=headers,
                                 system={k: system[k] for k in wanted}))
        return out
    if kind == "local":
        return [_local(path, wanted) for path in _local_paths(spec)]
    return [InputFile(kind if kind != "azureStorage" else "azure", obj.uri, obj.size, fs=obj.fs, path=obj.path,
                      system={k: obj.system[k] for k in wanted})
            for obj in cloud.list_objects(spec)]


def _local(path: str, wanted: list[str]) -> InputFile:
    path = os.path.abspath(path)
    system = {"__file_uri": "file:" + path, "__file_path": path}
    return InputFile("local", path, os.path.getsize(path), system={k: system[k] for k in wanted})


def _local_paths(spec: dict) -> list[str]:
    out: list[str] = []
    for path in spec.get("files") or []:
        if not os.path.isfile(path):
            raise UnknownError(f"Input file [{path}] does not exist")
        if os.path.getsize(path):  # Druid skips empty files
            out.append(path)
    base = spec.get("baseDir")
    if base:
        if not os.path.isdir(base):
            raise UnknownError(f"Input baseDir [{base}] does not exist or is not a directory")
        # commons-io WildcardFileFilter on the file name; baseDir is searched recursively.
        pattern = spec.get("filter") or "*"
        found = []
        for root, dirs, names in os.walk(base):
            dirs.sort()
            for name in names:
                if fnmatch.fnmatchcase(name, pattern):
                    found.append(os.path.join(root, name))
        out.extend(p for p in sorted(found) if os.path.getsize(p))
    return out


# --- opening -----------------------------------------------------------------------------


class CountingReader(ForwardStream):
    """Wraps a raw byte stream and counts what was read (the input ``bytes`` counter)."""

    def __init__(self, raw: BinaryIO, uri: str = ""):
        self.raw = raw
        self.uri = uri
        self.count = 0
        self._mappable: bool | None = None  # a regular local file (known at the first map)

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.raw.read(n)
        except UnknownError:
            raise
        except OSError as e:
            raise UnknownError(f"Cannot read input [{self.uri}]: {e}") from None
        self.count += len(data)
        return data

    def read_mapped(self, n: int):
        """A local file's next ``n`` bytes as a memory map of its pages in the page cache: a
        block read this way is neither copied out of the page cache nor put in fresh
        memory that the kernel must fault in and zero (a copy, and page faults, for every
        16 MiB read). Only before the file's end, at a page boundary (mmap's offsets are);
        None otherwise."""
        if self._mappable is None:
            try:
                self._mappable = isinstance(self.raw, io.BufferedReader) and \
                    stat.S_ISREG(os.fstat(self.raw.fileno()).st_mode)
            except (OSError, ValueError):
                self._mappable = False
        if not self._mappable:
            return None
        try:
            pos = self.raw.tell()
            if pos % mmap.ALLOCATIONGRANULARITY:
                return None
            length = min(n, os.fstat(self.raw.fileno()).st_size - pos)
            if length <= 0:  # the end, or a file whose size says nothing (/proc): read() tells
                return None
            view = mmap.mmap(self.raw.fileno(), length, access=mmap.ACCESS_READ, offset=pos)
            self.raw.seek(pos + length)
        except OSError as e:
            raise UnknownError(f"Cannot read input [{self.uri}]: {e}") from None
        self.count += length
        return view

    def _release(self) -> None:
        try:
            self.raw.close()
        except OSError:
            pass


def open_raw(f: InputFile, timeout: float = HTTP_TIMEOUT) -> CountingReader:
    """Open a split's raw (still compressed) bytes as a forward-only stream."""
    if f.kind == "inline":
        return CountingReader(io.BytesIO(f.data.encode()), "inline")
    if f.kind == "local":
        try:
            return CountingReader(open(f.uri, "rb"), f.uri)
        except OSError as e:
            raise UnknownError(f"Cannot open input file [{f.uri}]: {e.strerror}") from None
    if f.kind == "http":
        return CountingReader(_open_http(f, timeout), f.uri)
    return CountingReader(cloud.open_stream(f.fs, f.path, f.uri), f.uri)


def _open_http(f: InputFile, timeout: float):
    request = urllib.request.Request(f.uri, headers=dict(f.headers))
    if f.auth:
        user, password = f.auth[0], resolve_password(f.auth[1]) or ""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise UnknownError(f"Cannot read input [{f.uri}]: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise UnknownError(f"Cannot read input [{f.uri}]: {getattr(e, 'reason', e)}") from None


class RandomAccess:
    """A seekable view of a split for Parquet and ORC: the file itself, or a spooled copy."""

    def __init__(self, source, raw_bytes: int, spooled: str | None = None):
        self.source = source  # a path or a pyarrow RandomAccessFile
        self.raw_bytes = raw_bytes
        self._spooled = spooled

    def close(self) -> None:
        if not isinstance(self.source, str):
            self.source.close()
        if self._spooled:
            try:
                os.remove(self._spooled)
            except OSError:
                pass


def open_random_access(f: InputFile, codec: str | None, temp_dir: str | None = None) -> RandomAccess:
    """Parquet and ORC need to seek. Local and cloud files are read in place; HTTP, inline
    and compressed files are first copied, streamed, to a temp file (Druid fetches them too)."""
    if codec is None and f.kind == "local":
        return RandomAccess(f.uri, f.size or os.path.getsize(f.uri))
    if codec is None and f.fs is not None:
        handle = cloud.open_file(f.fs, f.path, f.uri)
        return RandomAccess(handle, handle.size())
    from msqcore.inputs.compression import DecompressedStream
    raw = open_raw(f)
    os.makedirs(temp_dir or tempfile.gettempdir(), exist_ok=True)
    fd, spool = tempfile.mkstemp(prefix="fetch-", dir=temp_dir)
    try:
        with DecompressedStream(raw, f.source_uri, codec) as stream, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
    except BaseException:
        os.remove(spool)
        raise
    return RandomAccess(spool, raw.count, spooled=spool)
