"""Sandbox benchmark: the per-call overhead of running a trivial custom tool, with and without the warm pool.

Prints p50 / p95 / mean latency of ``Sandbox.run`` for a tool that returns a constant, in these cases:

- in-process exec+call of the same source (the floor: what the sandbox adds is everything above it);
- no pool (``pool_size=0``): every call starts a fresh interpreter;
- warm pool, paced: before each call the pool is full and warm again, as when tool calls are separated by
  LLM round trips (the usual case in an agent loop);
- warm pool, back to back: calls one after another with no pause, so replacements are often still starting;
- concurrent: bursts of calls at once (calls/s over the burst).

It measures; it asserts no timings.

    cd /work/main && .venv/bin/python bench/bench_sandbox.py [--calls 200] [--pool 2] [--burst 8] [--uvloop]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agenthost.tools.sandbox import Sandbox

SOURCE = '''
def noop(x: int) -> str:
    """A trivial tool."""
    return "ok"
'''


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def timed(
    calls: int, one: Callable[[], Awaitable[None]], before: Callable[[], Awaitable[None]]
) -> list[float]:
    samples = []
    for _ in range(calls):
        await before()
        t0 = time.perf_counter()
        await one()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def nothing() -> None:
    return None


def call(box: Sandbox) -> Callable[[], Awaitable[None]]:
    async def one() -> None:
        result = await box.run(SOURCE, "noop", {"x": 1}, {"SOME_VAR": "1"})
        if result.status != "success":
            raise RuntimeError(f"the trivial tool failed: {result}")

    return one


def pool_full(box: Sandbox, size: int) -> Callable[[], Awaitable[None]]:
    async def wait() -> None:
        # Until the replacements started after the previous call are warm (private state: a bench only).
        if box._spawning:
            await asyncio.wait(set(box._spawning))
        starting = {worker.ready for worker in box._idle if not worker.ready.done()}
        if starting:
            await asyncio.wait(starting)
        assert len(box._idle) == size, "a pool worker failed to start"

    return wait


async def in_process(calls: int) -> list[float]:
    async def one() -> None:
        namespace: dict[str, Any] = {}
        exec(compile(SOURCE, "tool.py", "exec"), namespace)
        namespace["noop"](x=1)

    return await timed(calls, one, nothing)


async def bench(calls: int, pool: int, burst: int) -> dict[str, Any]:
    out: dict[str, Any] = {"in-process exec + call": await in_process(calls)}

    cold = Sandbox(pool_size=0)
    await cold.start()
    out["no pool (fresh interpreter per call)"] = await timed(calls, call(cold), nothing)
    await cold.close()

    warm = Sandbox(pool_size=pool)
    t0 = time.perf_counter()
    await warm.start()
    out["start() with the pool warm"] = [(time.perf_counter() - t0) * 1000]
    out[f"warm pool of {pool}, paced"] = await timed(calls, call(warm), pool_full(warm, pool))
    await pool_full(warm, pool)()
    out[f"warm pool of {pool}, back to back"] = await timed(calls, call(warm), nothing)

    rates = []
    for _ in range(max(1, calls // burst)):
        await pool_full(warm, pool)()
        t0 = time.perf_counter()
        await asyncio.gather(*(call(warm)() for _ in range(burst)))
        rates.append(burst / (time.perf_counter() - t0))
    out[f"bursts of {burst} concurrent calls (calls/s)"] = rates
    await warm.close()
    return out


def render(out: dict[str, list[float]]) -> str:
    lines = [f"{'case':<44} {'n':>5} {'p50':>9} {'p95':>9} {'mean':>9}"]
    for name, values in out.items():
        unit = "" if "calls/s" in name else " ms"
        lines.append(
            f"{name:<44} {len(values):>5} {pct(values, 50):>6.1f}{unit:3} {pct(values, 95):>6.1f}{unit:3}"
            f" {statistics.fmean(values):>6.1f}{unit:3}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per case (default 200)")
    parser.add_argument("--pool", type=int, default=2, help="pool size of the warm cases (default 2)")
    parser.add_argument("--burst", type=int, default=8, help="calls per concurrent burst (default 8)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as uvicorn does by default")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    args = parser.parse_args(argv)
    runner: Callable[[Awaitable[dict[str, Any]]], dict[str, Any]] = asyncio.run  # type: ignore[assignment]
    if args.uvloop:
        import uvloop

        runner = uvloop.run  # type: ignore[assignment]
    out = runner(bench(args.calls, args.pool, args.burst))
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"Sandbox.run of a trivial tool, {sys.executable} ({sys.version.split()[0]}), {loop} event loop")
    print(render(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
