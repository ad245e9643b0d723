"""Decompression by file extension, streamed (Druid's ``CompressionUtils.decompress``).

Every codec here reads its input a block at a time and hands out decompressed bytes on
demand, so a file is never inflated whole in memory. Extensions, as Druid detects them:
``.gz``, ``.bz2``, ``.xz``, ``.zst``, ``.zip`` (the first entry, like ``ZipInputStream``)
and ``.sz`` (Snappy *framing* format, like ``SnappyFramedInputStream``).
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from typing import BinaryIO

import pyarrow as pa

from msqcore.errors import UnknownError

CODECS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip", ".sz": "snappy"}
_BLOCK = 1 << 20
# What a corrupt or truncated compressed stream raises, codec by codec.
_CODEC_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, pa.ArrowException, ValueError, struct.error)


def codec_for(uri: str) -> str | None:
    """The codec a file name asks for, or None for plain bytes."""
    path = uri.split("?", 1)[0].split("#", 1)[0].lower()
    for ext, codec in CODECS.items():
        if path.endswith(ext):
            return codec
    return None


class ForwardStream:
    """A read-only, forward-only byte stream, as the parsers read splits; ``close`` runs
    ``_release`` once."""

    closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._release()

    def _release(self) -> None:
        pass

    def read_mapped(self, n: int):
        """Up to ``n`` bytes from here as a read-only memory map (an ``mmap``: no copy, no
        fresh pages), or None when this stream cannot map them (then ``read`` them)."""
        return None


class DecompressedStream(ForwardStream):
    """A read-only stream of a split's decompressed bytes; codec failures name the source."""

    def __init__(self, raw: BinaryIO, uri: str, codec: str | None):
        self.uri = uri
        self.codec = codec
        self._raw = raw
        try:
            self._inner = _open_codec(raw, codec)
        except _CODEC_ERRORS as e:
            raise unreadable(uri, codec, e) from None

    def read(self, n: int = -1) -> bytes:
        try:
            return self._inner.read(n)
        except _CODEC_ERRORS as e:
            raise unreadable(self.uri, self.codec, e) from None

    def read_mapped(self, n: int):
        return self._raw.read_mapped(n) if self._inner is self._raw and isinstance(self._raw, ForwardStream) else None

    def _release(self) -> None:
        try:
            if self._inner is not self._raw:
                self._inner.close()
        except _CODEC_ERRORS:
            pass
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def unreadable(uri: str, codec: str | None, e: BaseException) -> UnknownError:
    if isinstance(e, UnknownError):
        return e
    what = f"{codec} data" if codec else "data"
    reason = str(e) or type(e).__name__
    return UnknownError(f"Cannot read {what} from input [{uri}]: {reason}")


def _open_codec(raw: BinaryIO, codec: str | None):
    if codec is None:
        return raw
    if codec == "gzip":
        # GzipFile reads concatenated members, as Druid's gzip stream does.
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
        stream.peek(1)  # fail now on a file that is not gzip at all
        return stream
    if codec == "bz2":
        return bz2.BZ2File(raw, mode="rb")
    if codec == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    if codec == "zstd":
        return pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd")
    if codec == "zip":
        return ZipFirstEntryReader(raw)
    if codec == "snappy":
        return SnappyFramedReader(raw)
    raise ValueError(f"unknown codec {codec}")


def _read_exact(raw: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        chunk = raw.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class ZipFirstEntryReader:
    """The first entry of a zip archive, read forward from its local header (no seeking)."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        header = _read_exact(raw, 30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise ValueError("Not a zip archive (no local file header)")
        flags, method = struct.unpack("<HH", header[6:10])
        csize, = struct.unpack("<I", header[18:22])
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        _read_exact(raw, name_len)
        extra = _read_exact(raw, extra_len)
        if csize == 0xFFFFFFFF:  # zip64: the real size is in extra field 0x0001
            pos = 0
            while pos + 4 <= len(extra):
                tag, size = struct.unpack("<HH", extra[pos:pos + 4])
                if tag == 0x0001 and size >= 16:
                    csize = struct.unpack("<Q", extra[pos + 12:pos + 20])[0]
                    break
                pos += 4 + size
        if flags & 0x1:
            raise ValueError("Encrypted zip entries are not supported")
        self._method = method
        self._left = csize  # stored entries: bytes still to hand out
        self._eof = False
        self._pending = b""
        if method == 8:
            self._inflater = zlib.decompressobj(-15)
        elif method == 0:
            if flags & 0x8:
                raise ValueError("Stored zip entry without a size")
        else:
            raise ValueError(f"Unsupported zip compression method [{method}]")

    def read(self, n: int = -1) -> bytes:
        if self._method == 0:
            want = self._left if n is None or n < 0 else min(n, self._left)
            data = _read_exact(self._raw, want)
            if len(data) < want:
                raise EOFError("Truncated zip entry")
            self._left -= len(data)
            return data
        want = _BLOCK if n is None or n < 0 else n
        out = [self._pending] if self._pending else []
        have = len(self._pending)
        self._pending = b""
        while have < want and not self._eof:
            chunk = self._raw.read(_BLOCK)
            if not chunk:
                raise EOFError("Truncated zip entry")
            data = self._inflater.decompress(chunk)
            if self._inflater.eof:
                self._eof = True
            out.append(data)
            have += len(data)
        if n is None or n < 0:
            while not self._eof:
                out.append(self.read(_BLOCK))
        data = b"".join(out)
        if n is not None and n >= 0 and len(data) > n:
            self._pending = data[n:]
            data = data[:n]
        return data

    def close(self) -> None:
        pass


class SnappyFramedReader:
    """Snappy framing format (``sNaPpY`` stream identifier, chunks of at most 64 KiB)."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._codec = pa.Codec("snappy")
        self._buf = b""
        self._eof = False
        first = _read_exact(raw, 10)
        if first != b"\xff\x06\x00\x00sNaPpY":
            raise ValueError("Not a snappy framed stream (missing sNaPpY stream identifier)")

    def _next_chunk(self) -> bytes | None:
        while True:
            head = _read_exact(self._raw, 4)
            if not head:
                return None
            if len(head) < 4:
                raise EOFError("Truncated snappy chunk header")
            kind = head[0]
            length = head[1] | head[2] << 8 | head[3] << 16
            body = _read_exact(self._raw, length)
            if len(body) < length:
                raise EOFError("Truncated snappy chunk")
            if kind == 0x00:  # compressed: masked CRC-32C, then a raw snappy block
                block = body[4:]
                size, shift, pos = 0, 0, 0
                while True:  # the raw block starts with its uncompressed length (varint)
                    byte = block[pos]
                    size |= (byte & 0x7F) << shift
                    pos += 1
                    if not byte & 0x80:
                        break
                    shift += 7
                return self._codec.decompress(block, decompressed_size=size).to_pybytes()
            if kind == 0x01:  # uncompressed
                return body[4:]
            if kind == 0xFF:  # a repeated stream identifier (concatenated streams)
                if body != b"sNaPpY":
                    raise ValueError("Bad snappy stream identifier")
                continue
            if 0x02 <= kind <= 0x7F:
                raise ValueError(f"Unskippable reserved snappy chunk type [{kind:#x}]")
            # 0x80-0xfe: padding and skippable chunks

    def read(self, n: int = -1) -> bytes:
        want = (1 << 62) if n is None or n < 0 else n
        parts, have = [], 0
        if self._buf:
            parts.append(self._buf)
            have = len(self._buf)
            self._buf = b""
        while have < want and not self._eof:
            chunk = self._next_chunk()
            if chunk is None:
                self._eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if len(data) > want:
            self._buf = data[want:]
            data = data[:want]
        return data

    def close(self) -> None:
        pass
