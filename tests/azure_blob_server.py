"""A small Azure Blob Storage look-alike for the tests, on 127.0.0.1.

No Azure emulator can be installed here (Azurite is an npm package), so this serves the
few Blob REST calls the ``azureStorage`` input source makes through
``pyarrow.fs.AzureFileSystem``: List Blobs, Get Blob Properties and Get Blob (with a
``Range``/``x-ms-range``), on Azurite's path-style URLs ``/<account>/<container>/<blob>``.
The Data Lake probe pyarrow makes is answered the way a flat-namespace account answers
it. Every request must carry a valid SharedKey signature for the account key, or the
SAS token the server was given; anything else gets Azure's ``403 AuthenticationFailed``.
"""
from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import threading
import urllib.parse
from xml.sax.saxutils import escape

from aiohttp import web

_XML = "application/xml"


class AzureBlobServer:
    """Blobs in memory, served over HTTP from a thread of its own."""

    def __init__(self, account: str, key: str, sas_token: str | None = None):
        self.account = account
        self.key = key  # base64, as Azure shows account keys
        self.sas = dict(urllib.parse.parse_qsl(sas_token.lstrip("?"))) if sas_token else None
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, auth kind)
        self.ranges: list[str] = []  # every Range a Get Blob asked for
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, container: str, name: str, data: bytes) -> None:
        self.blobs[(container, name)] = data

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the Azure Blob test server did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # --- requests ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        auth = self._authenticate(request)
        self.requests.append((request.method, request.path, auth or "denied"))
        if auth is None:
            return _error(403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the "
                                                        "value of Authorization header is formed correctly "
                                                        "including the signature.", request.method == "HEAD")
        parts = request.path.lstrip("/").split("/", 2)
        if parts[0] != self.account:
            return _error(400, "InvalidUri", "The requested URI does not represent any resource on the server.")
        query = request.query
        container = parts[1] if len(parts) > 1 else ""
        name = urllib.parse.unquote(parts[2]) if len(parts) > 2 else ""
        head = request.method == "HEAD"
        exists = any(c == container for c, _ in self.blobs)
        if container and not name and "restype" not in query:
            # pyarrow's Data Lake probe (properties of the container's root directory): a
            # flat-namespace account answers 409, a missing container 404.
            if not exists:
                return _error(404, "ContainerNotFound", "The specified container does not exist.", head)
            return _error(409, "EndpointUnsupportedAccountFeatures",
                          "This endpoint does not support BlobStorageEvents or SoftDelete.", head)
        if query.get("comp") == "list" and query.get("restype") == "container":
            return self._list(container, query)
        if query.get("restype") == "container" and not name:
            if not exists:
                return _error(404, "ContainerNotFound", "The specified container does not exist.", head)
            return web.Response(status=200, headers=_common())
        if query.get("restype") == "account" or not container:
            return web.Response(status=200, headers={**_common(), "x-ms-is-hns-enabled": "false",
                                                     "x-ms-account-kind": "StorageV2"})
        if request.method not in ("GET", "HEAD"):
            return _error(405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
        data = self.blobs.get((container, name))
        if data is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.", head)
        headers = {**_common(), "x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream",
                   "ETag": _etag(data), "Last-Modified": _HTTP_DATE, "x-ms-creation-time": _HTTP_DATE,
                   "Accept-Ranges": "bytes", "x-ms-server-encrypted": "true", "x-ms-lease-state": "available",
                   "x-ms-lease-status": "unlocked", "x-ms-access-tier": "Hot", "x-ms-access-tier-inferred": "true"}
        if head:
            return web.Response(status=200, headers={**headers, "Content-Length": str(len(data))})
        wanted = request.headers.get("x-ms-range") or request.headers.get("Range")
        if wanted:
            self.ranges.append(wanted)
            start, _, end = wanted.removeprefix("bytes=").partition("-")
            first, last = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            if first >= len(data):
                return _error(416, "InvalidRange", "The range specified is invalid for the current size of the "
                                                   "resource.")
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            return web.Response(status=206, body=data[first:last + 1], headers=headers)
        return web.Response(status=200, body=data, headers=headers)

    def _list(self, container: str, query) -> web.Response:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter")
        names = sorted(n for c, n in self.blobs if c == container and n.startswith(prefix))
        blobs, prefixes = [], []
        for n in names:
            cut = n.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                p = n[:cut + len(delimiter)]
                if p not in prefixes:
                    prefixes.append(p)
            else:
                blobs.append(n)
        items = [f"<Blob><Name>{escape(n)}</Name><Properties><Creation-Time>{_HTTP_DATE}</Creation-Time>"
                 f"<Last-Modified>{_HTTP_DATE}</Last-Modified><Etag>{_etag(self.blobs[(container, n)])}</Etag>"
                 f"<Content-Length>{len(self.blobs[(container, n)])}</Content-Length>"
                 "<Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType>"
                 "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState></Properties></Blob>"
                 for n in blobs]
        items += [f"<BlobPrefix><Name>{escape(p)}</Name></BlobPrefix>" for p in prefixes]
        body = ('<?xml version="1.0" encoding="utf-8"?>'
                f'<EnumerationResults ServiceEndpoint="{self.endpoint}/{self.account}" '
                f'ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix>'
                + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
                + f"<Blobs>{''.join(items)}</Blobs><NextMarker /></EnumerationResults>")
        return web.Response(status=200, body=body.encode(), headers={**_common(), "Content-Type": _XML})

    # --- auth ------------------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> str | None:
        """``"sharedkey"`` or ``"sas"`` when the request is signed for this account, else None."""
        header = request.headers.get("Authorization", "")
        if header.startswith("SharedKey "):
            account, _, signature = header[len("SharedKey "):].partition(":")
            if account == self.account and "x-ms-date" in request.headers and \
                    hmac.compare_digest(signature, self._shared_key_signature(request)):
                return "sharedkey"
            return None
        if self.sas is not None and not header:
            given = {k: v for k, v in request.query.items() if k in self.sas}
            if given == self.sas:
                return "sas"
        return None

    def _shared_key_signature(self, request: web.Request) -> str:
        """Azure's Shared Key string-to-sign for the Blob service (version 2009-09-19 and later)."""
        h = request.headers
        length = h.get("Content-Length", "")
        ms = sorted((k.lower(), " ".join(v.split())) for k, v in h.items() if k.lower().startswith("x-ms-"))
        resource = f"/{self.account}{urllib.parse.quote(urllib.parse.unquote(request.path), safe='/')}"
        params: dict[str, list[str]] = {}
        for k, v in request.query.items():
            params.setdefault(k.lower(), []).append(v)
        resource += "".join(f"\n{k}:{','.join(sorted(params[k]))}" for k in sorted(params))
        to_sign = "\n".join([
            request.method, h.get("Content-Encoding", ""), h.get("Content-Language", ""),
            "" if length == "0" else length, h.get("Content-MD5", ""), h.get("Content-Type", ""), h.get("Date", ""),
            h.get("If-Modified-Since", ""), h.get("If-Match", ""), h.get("If-None-Match", ""),
            h.get("If-Unmodified-Since", ""), h.get("Range", ""),
        ]) + "\n" + "".join(f"{k}:{v}\n" for k, v in ms) + resource
        digest = hmac.new(base64.b64decode(self.key), to_sign.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()


_HTTP_DATE = email.utils.formatdate(1_700_000_000, usegmt=True)


def _etag(data: bytes) -> str:
    return '"0x' + hashlib.md5(data).hexdigest()[:16].upper() + '"'


def _common() -> dict[str, str]:
    return {"x-ms-request-id": "00000000-0000-0000-0000-000000000000", "x-ms-version": "2023-11-03",
            "Date": email.utils.formatdate(usegmt=True)}


def _error(status: int, code: str, message: str, head: bool = False) -> web.Response:
    headers = {**_common(), "x-ms-error-code": code}
    if head:
        return web.Response(status=status, headers=headers)
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>'
    return web.Response(status=status, body=body.encode(), headers={**headers, "Content-Type": _XML})
