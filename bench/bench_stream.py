"""Streaming benchmark: time to first event, and events per second per stream.

A real ``agenthost serve`` process (bench_core's helpers) against the fake LLM, run in this process so
that it can be scripted. Raw HTTP (httpx), reading the SSE frames as they arrive.

- time to first event: ``POST /v1/agents/{id}/messages/stream`` for a one-step run (the fake answers
  at once), from sending the request to the first ``data:`` frame; and to ``[DONE]``;
- replay rate: a finished run of many steps (the fake is scripted with ``--steps`` tool calls, each
  step a tool call and its return, then an answer) streamed back from its start with
  ``runs/{id}/stream``: events / time, one stream at a time;
- concurrent replay: ``--concurrent`` streams of that run at once: events/s per stream and in total.

    cd /work/main && .venv/bin/python bench/bench_stream.py [--pg postgresql://...] [--steps 50]

It measures; it asserts no timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.fake_llm import FakeLLM, Text, ToolCall

from bench_core import agenthost, pct, pg_database

FIRST_EVENT_SAMPLES = 50
REPLAYS = 20


async def read_stream(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> tuple[float, float, int]:
    """(seconds to the first event, seconds to [DONE], events) for one stream."""
    t0 = time.perf_counter()
    first: float | None = None
    events = 0
    async with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                break
            events += 1
            if first is None:
                first = time.perf_counter() - t0
    return first or 0.0, time.perf_counter() - t0, events


async def run(base_url: str, fake: FakeLLM, steps: int, concurrent: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        agent = (await client.post("/v1/agents/", json={"model": "openai/bench-stream"})).json()["id"]
        fake.set_default("bench-stream", Text("ok"))
        path = f"/v1/agents/{agent}/messages/stream"
        firsts, totals = [], []
        for i in range(FIRST_EVENT_SAMPLES):
            first, total, _ = await read_stream(client, path, {"input": f"hello {i}", "include_pings": False})
            firsts.append(first * 1000)
            totals.append(total * 1000)
        out["first_event_ms"] = (pct(firsts, 50), pct(firsts, 95))
        out["done_ms"] = (pct(totals, 50), pct(totals, 95))

        # A long finished run to replay.
        fake.script("bench-stream", *[ToolCall("conversation_search", {"query": "x"}) for _ in range(steps)])
        body = {"input": "many steps", "max_steps": steps + 5}
        run_id = (await client.post(f"/v1/agents/{agent}/messages/async", json=body)).json()["id"]
        replay = f"/v1/runs/{run_id}/stream"
        await read_stream(client, replay, {"include_pings": False})  # returns once the run has ended
        rates = []
        events = 0
        for _ in range(REPLAYS):
            _, total, events = await read_stream(client, replay, {"include_pings": False})
            rates.append(events / total)
        out["run_events"] = events
        out["replay_events_per_s"] = (pct(rates, 50), pct(rates, 5))
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(read_stream(client, replay, {"include_pings": False}) for _ in range(concurrent))
        )
        wall = time.perf_counter() - t0
        per_stream = [n / total for _, total, n in results]
        out["concurrent"] = concurrent
        out["concurrent_per_stream"] = (pct(per_stream, 50), pct(per_stream, 5))
        out["concurrent_total"] = sum(n for _, _, n in results) / wall
    return out


def render(out: dict[str, Any], backend: str) -> str:
    return "\n".join(
        [
            f"streaming ({backend}; fake LLM answers at once)",
            f"  time to first event, one-step run: p50 {out['first_event_ms'][0]:.1f} ms, "
            f"p95 {out['first_event_ms'][1]:.1f} ms (to [DONE]: p50 {out['done_ms'][0]:.1f} ms, "
            f"p95 {out['done_ms'][1]:.1f} ms)",
            f"  replay of a finished run ({out['run_events']} events), one stream: "
            f"p50 {out['replay_events_per_s'][0]:,.0f} events/s (p5 {out['replay_events_per_s'][1]:,.0f})",
            f"  {out['concurrent']} streams of it at once: "
            f"p50 {out['concurrent_per_stream'][0]:,.0f} events/s per stream "
            f"(p5 {out['concurrent_per_stream'][1]:,.0f}), {out['concurrent_total']:,.0f} events/s in all",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", help="PostgreSQL admin URL (a fresh database is made); default SQLite")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=50)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="agenthost-bench-stream-"))
    try:
        with contextlib.ExitStack() as stack:
            fake = stack.enter_context(FakeLLM(record=False))
            pg_url = stack.enter_context(pg_database(args.pg)) if args.pg else None
            server = stack.enter_context(agenthost(fake.base_url, tmp / "data", pg_url))
            out = asyncio.run(run(server.base_url, fake, args.steps, args.concurrent))
        print(render(out, "PostgreSQL" if args.pg else "SQLite"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
