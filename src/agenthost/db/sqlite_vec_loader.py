"""Make sqlite-vec's SQL functions (``vec_distance_cosine`` ...) available on every SQLite connection.

Many Python builds (pyenv's default among them) leave out ``sqlite3.Connection.enable_load_extension``,
so the usual ``conn.load_extension(...)`` is not there to call. The SQLite library itself still
supports extensions: we hand sqlite-vec's entry point to ``sqlite3_auto_extension`` of the very
library the ``_sqlite3`` module is linked with, and SQLite runs it on every connection opened after
that. Where that cannot be done (no sqlite-vec, a statically linked SQLite that exports nothing),
the archival store finds ``vec_version()`` missing and searches in NumPy instead.
"""

from __future__ import annotations

import ctypes
import logging
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_registered: bool | None = None
# Kept alive for the process's life: SQLite holds the raw entry-point address.
_libraries: list[ctypes.CDLL] = []


def register() -> bool:
    """Register sqlite-vec for every SQLite connection opened from now on (once per process)."""
    global _registered
    if _registered is not None:
        return _registered
    with _lock:
        if _registered is None:
            _registered = _register()
    return _registered


def _register() -> bool:
    try:
        import _sqlite3

        import sqlite_vec  # type: ignore[import-untyped]
    except ImportError as exc:
        log.warning("sqlite-vec is not installed (%s): SQLite vector search runs in NumPy", exc)
        return False
    try:
        # Symbols looked up through the _sqlite3 module resolve in the libsqlite3 it uses, not another copy.
        sqlite = ctypes.CDLL(_sqlite3.__file__)
        extension = ctypes.CDLL(sqlite_vec.loadable_path() + ".so")
        auto_extension = sqlite.sqlite3_auto_extension
        auto_extension.argtypes = [ctypes.c_void_p]
        auto_extension.restype = ctypes.c_int
        entry = ctypes.cast(extension.sqlite3_vec_init, ctypes.c_void_p).value
        rc = auto_extension(entry)
    except (OSError, AttributeError) as exc:
        log.warning("cannot register sqlite-vec (%s): SQLite vector search runs in NumPy", exc)
        return False
    if rc != 0:
        log.warning("sqlite3_auto_extension returned %d: SQLite vector search runs in NumPy", rc)
        return False
    _libraries.extend((sqlite, extension))
    return True
