"""Read scalar metadata from a GGUF file's header, without llama.cpp.

The server needs a model's trained context length before (and without) starting the model's
process; the GGUF header holds it as ``<architecture>.context_length``. Layout (GGUF v2 and v3, all
little-endian): magic ``GGUF``, u32 version, u64 tensor count, u64 key/value count, then each pair
as a string key (u64 length + UTF-8), a u32 value type and the value. Arrays (the tokenizer's
vocabulary) are skipped, not read.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_SCALARS: dict[int, str] = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING = 8
_ARRAY = 9

Scalar = int | float | bool | str


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


def read_metadata(path: Path) -> dict[str, Scalar]:
    """Every scalar key/value of the header (arrays are left out)."""
    out: dict[str, Scalar] = {}
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise GGUFError(f"{path} is not a GGUF file")
        (version,) = struct.unpack("<I", _exact(f, 4))
        if version not in (2, 3):
            raise GGUFError(f"{path}: unsupported GGUF version {version}")
        _tensors, count = struct.unpack("<QQ", _exact(f, 16))
        for _ in range(count):
            key = _string(f)
            (kind,) = struct.unpack("<I", _exact(f, 4))
            if kind == _ARRAY:
                _skip_array(f)
            else:
                out[key] = _value(f, kind)
    return out


def context_length(path: Path) -> int | None:
    """The context length the model was trained with, if the header says."""
    meta = read_metadata(path)
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length") if isinstance(arch, str) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("truncated GGUF header")
    return data


def _string(f: BinaryIO) -> str:
    (size,) = struct.unpack("<Q", _exact(f, 8))
    return _exact(f, size).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int) -> Scalar:
    if kind == _STRING:
        return _string(f)
    fmt = _SCALARS.get(kind)
    if fmt is None:
        raise GGUFError(f"unknown GGUF value type {kind}")
    (value,) = struct.unpack(fmt, _exact(f, struct.calcsize(fmt)))
    return value  # type: ignore[no-any-return]


def _skip_array(f: BinaryIO) -> None:
    kind, count = struct.unpack("<IQ", _exact(f, 12))
    if kind == _STRING:
        for _ in range(count):
            (size,) = struct.unpack("<Q", _exact(f, 8))
            f.seek(size, 1)
    elif kind == _ARRAY:
        for _ in range(count):
            _skip_array(f)
    elif kind in _SCALARS:
        f.seek(count * struct.calcsize(_SCALARS[kind]), 1)
    else:
        raise GGUFError(f"unknown GGUF array type {kind}")
