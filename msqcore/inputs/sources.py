"""EXTERN input sources: list the splits (files) on the controller, open them on workers.

A split is one file, URL or inline blob; Druid never splits one file across workers.
"""
from __future__ import annotations

import fnmatch
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO

from msqcore.errors import InvalidInput, UnknownError

SUPPORTED = ("inline", "local", "http")


@dataclass
class InputFile:
    kind: str  # inline | local | http
    uri: str  # path or URL, as error messages name it
    size: int | None  # raw bytes when known up front
    data: str | None = None  # inline payload
    auth: tuple[str, str] | None = None


def validate_input_source(spec: dict) -> None:
    """Refuse at submit time what cannot run (Druid answers these with 400)."""
    kind = spec.get("type")
    if kind not in SUPPORTED:
        raise InvalidInput(f"Could not resolve type id '{kind}' as a subtype of InputSource; "
                           f"supported here: {', '.join(SUPPORTED)}")
    if kind == "inline" and not isinstance(spec.get("data"), str):
        raise InvalidInput("Missing required creator property 'data' for inline inputSource")
    if kind == "http":
        uris = spec.get("uris")
        if not isinstance(uris, list) or not uris:
            raise InvalidInput("Missing required creator property 'uris' for http inputSource")
        for uri in uris:
            scheme = str(uri).split(":", 1)[0].lower()
            if scheme not in ("http", "https"):
                raise InvalidInput(f"Only [http, https] protocols are allowed, got [{uri}]")
    if kind == "local":
        if not spec.get("files") and not (spec.get("baseDir") and spec.get("filter")):
            raise InvalidInput("At least one of [baseDir + filter] or [files] must be set for local inputSource")


def list_files(spec: dict) -> list[InputFile]:
    """The splits of an input source, in a stable order."""
    validate_input_source(spec)
    kind = spec["type"]
    if kind == "inline":
        return [InputFile("inline", "inline", len(spec["data"].encode()), data=spec["data"])]
    if kind == "http":
        user = spec.get("httpAuthenticationUsername")
        password = spec.get("httpAuthenticationPassword")
        if isinstance(password, dict):
            password = password.get("password") if password.get("type", "default") == "default" else \
                os.environ.get(password.get("variable", ""), "")
        auth = (user, password or "") if user else None
        return [InputFile("http", uri, None, auth=auth) for uri in spec["uris"]]
    out: list[InputFile] = []
    for path in spec.get("files") or []:
        if not os.path.isfile(path):
            raise UnknownError(f"Input file [{path}] does not exist")
        out.append(InputFile("local", os.path.abspath(path), os.path.getsize(path)))
    base = spec.get("baseDir")
    if base:
        if not os.path.isdir(base):
            raise UnknownError(f"Input baseDir [{base}] does not exist or is not a directory")
        pattern = spec.get("filter") or "*"
        found = []
        for root, _, names in os.walk(base):
            for name in names:
                if fnmatch.fnmatchcase(name, pattern):
                    path = os.path.join(root, name)
                    found.append(path)
        for path in sorted(found):
            size = os.path.getsize(path)
            if size:  # Druid skips empty files
                out.append(InputFile("local", os.path.abspath(path), size))
    return out


class CountingReader:
    """Wraps a raw byte stream and counts what was read (the input ``bytes`` counter)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.count = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True
        self.raw.close()


def open_raw(f: InputFile, timeout: float = 60.0) -> CountingReader:
    """Open a split's raw (still compressed) bytes."""
    if f.kind == "inline":
        import io
        return CountingReader(io.BytesIO(f.data.encode()))
    if f.kind == "local":
        try:
            return CountingReader(open(f.uri, "rb"))
        except OSError as e:
            raise UnknownError(f"Cannot open input file [{f.uri}]: {e.strerror}") from None
    request = urllib.request.Request(f.uri)
    if f.auth:
        import base64
        token = base64.b64encode(f"{f.auth[0]}:{f.auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        return CountingReader(urllib.request.urlopen(request, timeout=timeout))
    except urllib.error.HTTPError as e:
        raise UnknownError(f"Cannot read input [{f.uri}]: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise UnknownError(f"Cannot read input [{f.uri}]: {getattr(e, 'reason', e)}") from None
