"""A small, defensive UBJSON decoder: the format XGBoost writes its ``.ubj`` models in.

Writing UBJSON is left to the native library (``Booster.save_raw("ubj")``), which knows the exact
layout its own versions expect.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ...errors import ModelFormatError

_UBJ_SCALARS = {
    b"i": (">i1", 1), b"U": (">u1", 1), b"I": (">i2", 2), b"l": (">i4", 4), b"L": (">i8", 8),
    b"d": (">f4", 4), b"D": (">f8", 8),
}
_UBJ_STRUCT = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}
_UBJ_MAX_DEPTH = 64


class _UBJReader:
    """A small, defensive UBJSON decoder (the subset XGBoost writes, plus the rest of the spec).

    Typed numeric arrays come back as numpy arrays; every length is checked against the bytes left
    so that junk or truncated input raises :class:`ModelFormatError` instead of allocating or
    looping.
    """

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"not a valid XGBoost UBJSON model: {what} at byte {self.pos}")

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail("unexpected end of data (the file looks truncated)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def marker(self) -> bytes:
        while True:
            m = bytes(self.take(1))
            if m != b"N":  # no-op
                return m

    def number(self, m: bytes) -> Any:
        fmt = _UBJ_STRUCT.get(m)
        if fmt is None:
            raise self.fail(f"expected a number, found marker {m!r}")
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def length(self) -> int:
        m = self.marker()
        if m not in (b"i", b"U", b"I", b"l", b"L"):
            raise self.fail(f"expected an integer length, found marker {m!r}")
        n = int(self.number(m))
        if n < 0 or n > len(self.data) - self.pos + (1 << 20):
            raise self.fail(f"impossible length {n}")
        return n

    def string(self) -> str:
        n = self.length()
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail("string is not valid UTF-8") from exc

    def value(self, m: bytes, depth: int) -> Any:
        if m in _UBJ_STRUCT:
            return self.number(m)
        if m == b"S" or m == b"H":
            return self.string()
        if m == b"C":
            return bytes(self.take(1)).decode("latin-1")
        if m == b"Z":
            return None
        if m == b"T":
            return True
        if m == b"F":
            return False
        if m == b"[":
            return self.array(depth + 1)
        if m == b"{":
            return self.object(depth + 1)
        raise self.fail(f"unknown marker {m!r}")

    def container_header(self) -> tuple[bytes | None, int | None]:
        typ = count = None
        if self.pos < len(self.data) and self.data[self.pos:self.pos + 1] == b"$":
            self.pos += 1
            typ = bytes(self.take(1))
            if self.data[self.pos:self.pos + 1] != b"#":
                raise self.fail("a typed container must give its count")
        if self.pos < len(self.data) and self.data[self.pos:self.pos + 1] == b"#":
            self.pos += 1
            count = self.length()
        return typ, count

    def array(self, depth: int) -> Any:
        if depth > _UBJ_MAX_DEPTH:
            raise self.fail("containers nested too deeply")
        typ, count = self.container_header()
        if typ is not None and typ in _UBJ_SCALARS:
            dtype, size = _UBJ_SCALARS[typ]
            raw = self.take(count * size)  # type: ignore[operator]
            return np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))
        out = []
        if count is not None:
            if typ is None and count > len(self.data) - self.pos:
                raise self.fail(f"array count {count} exceeds the data left")
            for _ in range(count):
                out.append(self.value(typ if typ is not None else self.marker(), depth))
            return out
        while True:
            m = self.marker()
            if m == b"]":
                return out
            out.append(self.value(m, depth))

    def object(self, depth: int) -> dict[str, Any]:
        if depth > _UBJ_MAX_DEPTH:
            raise self.fail("containers nested too deeply")
        typ, count = self.container_header()
        out: dict[str, Any] = {}
        if count is not None:
            if count > len(self.data) - self.pos:
                raise self.fail(f"object count {count} exceeds the data left")
            for _ in range(count):
                key = self.string()
                out[key] = self.value(typ if typ is not None else self.marker(), depth)
            return out
        while True:
            if self.pos < len(self.data) and self.data[self.pos:self.pos + 1] == b"}":
                self.pos += 1
                return out
            key = self.string()
            out[key] = self.value(self.marker(), depth)


def parse_ubj(data: bytes) -> Any:
    reader = _UBJReader(data)
    m = reader.marker()
    if m != b"{":
        raise reader.fail("an XGBoost UBJSON model starts with '{'")
    return reader.object(1)


__all__ = ["parse_ubj"]
