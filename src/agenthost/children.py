"""Child processes that serve the server over a pipe (the local chat and embedding models)."""

from __future__ import annotations

import asyncio
import contextlib

CLOSE_TIMEOUT_S = 10.0


async def close_child(proc: asyncio.subprocess.Process, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """End a child that exits when its stdin closes: close it, wait, and kill what is still there."""
    if proc.returncode is not None:
        return
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), timeout=timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
