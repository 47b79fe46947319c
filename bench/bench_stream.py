"""Streaming benchmark: time to first event, and events per second per stream.

A real ``agenthost serve`` process (bench_core's helpers) against the fake LLM, run in this process so
that it can be scripted. Raw HTTP (httpx), reading the SSE frames as they arrive.

- time to first event: ``POST /v1/agents/{id}/messages/stream`` for a one-step run (the fake answers
  at once), from sending the request to the first ``data:`` frame; and to ``[DONE]``;
- replay rate: a finished run of many steps (the fake is scripted with ``--steps`` tool calls, each
  step a tool call and its return, then an answer) streamed back from its start with
  ``runs/{id}/stream``: events / time, one stream at a time;
- concurrent replay: ``--concurrent`` streams of that run at once: events/s per stream and in total;
- token streaming (``stream_tokens``, a one-step answer of ``--tokens`` tokens): time to the first and
  last delta and deltas/s with a fake that streams at full speed; each delta's lag (from the fake
  sending the token to the client reading it) with a fake that sends a token every 20 ms; the replay
  rate of the finished token run.

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

from tests.fakes.fake_llm import FakeLLM, Paced, Text, ToolCall

from bench_core import agenthost, pct, pg_database

FIRST_EVENT_SAMPLES = 50
REPLAYS = 20
TOKEN_SAMPLES = 20
PACE_S = 0.02


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


async def read_deltas(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> tuple[float, list[float]]:
    """(the request's start, the arrival time of each assistant delta) for one token stream."""
    arrivals: list[float] = []
    t0 = time.perf_counter()
    async with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                break
            if line.startswith("data: ") and '"assistant_message"' in line:
                arrivals.append(time.perf_counter())
    return t0, arrivals


async def run_tokens(client: httpx.AsyncClient, fake: FakeLLM, agent: str, tokens: int) -> dict[str, Any]:
    """Token streaming (``stream_tokens``): how soon the first delta arrives, how fast deltas flow from
    a provider that streams as fast as it can, and how late each delta is behind a paced provider."""
    out: dict[str, Any] = {}
    words = " ".join(f"w{i}" for i in range(tokens))
    path = f"/v1/agents/{agent}/messages/stream"
    body = {"input": "tokens", "include_pings": False, "stream_tokens": True}
    fake.set_default("bench-stream", Paced(0, Text(words)))
    firsts, rates, done = [], [], []
    for _ in range(TOKEN_SAMPLES):
        t0, arrivals = await read_deltas(client, path, body)
        firsts.append((arrivals[0] - t0) * 1000)
        done.append((arrivals[-1] - t0) * 1000)
        rates.append(len(arrivals) / (arrivals[-1] - t0))
    out["token_first_ms"] = (pct(firsts, 50), pct(firsts, 95))
    out["token_last_ms"] = (pct(done, 50), pct(done, 95))
    out["token_rate"] = (pct(rates, 50), pct(rates, 5))
    out["tokens"] = tokens

    # A provider sending a token every PACE_S: each delta's lag is its arrival at the client minus the
    # moment the fake sent that token (the fake runs in this process: one clock).
    lags: list[float] = []
    for _ in range(3):
        sent: list[float] = []
        fake.set_default("bench-stream", Paced(PACE_S, Text(words), sent))
        _, arrivals = await read_deltas(client, path, body)
        lags.extend((at - t) * 1000 for at, t in zip(arrivals, sent, strict=True))
    out["token_lag_ms"] = (pct(lags, 50), pct(lags, 95), max(lags))

    # The finished token run replayed from its start.
    last = (await client.get("/v1/runs/", params={"agent_id": agent, "limit": 1, "order": "desc"})).json()
    replay = f"/v1/runs/{last[0]['id']}/stream"
    replay_rates = []
    for _ in range(REPLAYS):
        _, total, events = await read_stream(client, replay, {"include_pings": False})
        replay_rates.append(events / total)
    out["token_replay"] = (pct(replay_rates, 50), events)
    fake.set_default("bench-stream", Text("ok"))
    return out


async def run(base_url: str, fake: FakeLLM, steps: int, concurrent: int, tokens: int) -> dict[str, Any]:
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
        out.update(await run_tokens(client, fake, agent, tokens))
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
            f"token streaming (stream_tokens; a one-step answer of {out['tokens']} tokens)",
            f"  fake streaming at full speed: first delta p50 {out['token_first_ms'][0]:.1f} ms "
            f"(p95 {out['token_first_ms'][1]:.1f}), last delta p50 {out['token_last_ms'][0]:.1f} ms; "
            f"p50 {out['token_rate'][0]:,.0f} deltas/s per stream, request to last delta "
            f"(p5 {out['token_rate'][1]:,.0f})",
            f"  fake sending a token every {PACE_S * 1000:.0f} ms: "
            f"delta lag p50 {out['token_lag_ms'][0]:.1f} ms, p95 {out['token_lag_ms'][1]:.1f} ms, "
            f"max {out['token_lag_ms'][2]:.1f} ms",
            f"  replay of the finished token run ({out['token_replay'][1]} events): "
            f"p50 {out['token_replay'][0]:,.0f} events/s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", help="PostgreSQL admin URL (a fresh database is made); default SQLite")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=200, help="tokens in the token-streamed answer")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="agenthost-bench-stream-"))
    try:
        with contextlib.ExitStack() as stack:
            fake = stack.enter_context(FakeLLM(record=False))
            pg_url = stack.enter_context(pg_database(args.pg)) if args.pg else None
            server = stack.enter_context(agenthost(fake.base_url, tmp / "data", pg_url))
            out = asyncio.run(run(server.base_url, fake, args.steps, args.concurrent, args.tokens))
        print(render(out, "PostgreSQL" if args.pg else "SQLite"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
