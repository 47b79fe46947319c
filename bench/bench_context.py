"""Step overhead against stored history: a one-step run at 10 and at 10,000 stored messages.

A real ``agenthost serve`` process and the instant fake LLM (bench_core's helpers). For each agent it
measures 20 one-step runs (sync route) after 10 stored messages, fills the history to 10,000 stored
messages, and measures 20 more. Two agents: one whose context window (8,000 tokens) makes compaction
keep the prompt bounded, and one with a 1,000,000-token window where all 10,000 messages stay in
context, to show what compaction saves. Figures: the run's server-side duration (``total_duration_ns``,
from claim to commit, which includes the fake LLM's sub-millisecond answer) and the client's round trip.

    cd /work/main && .venv/bin/python bench/bench_context.py [--pg postgresql://...] [--fill 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import MODEL, agenthost, fake_llm, pct, pg_database

SAMPLES = 20


async def one_run(client: httpx.AsyncClient, agent_id: str, text: str) -> tuple[float, float]:
    """(server-side run ms, client round-trip ms) of one sync one-step run."""
    t0 = time.perf_counter()
    resp = await client.post(f"/v1/agents/{agent_id}/messages", json={"input": text})
    resp.raise_for_status()
    rtt = (time.perf_counter() - t0) * 1000
    run_id = resp.json()["usage"]["run_ids"][0]
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    if run["status"] != "completed":
        raise RuntimeError(f"run {run_id} ended {run['status']}: {run.get('metadata')}")
    return run["total_duration_ns"] / 1e6, rtt


async def stored(client: httpx.AsyncClient, agent_id: str) -> int:
    """Messages stored for the agent (paged count)."""
    total, after = 0, None
    while True:
        params: dict[str, Any] = {"limit": 1000, "order": "asc"}
        if after:
            params["after"] = after
        page = (await client.get(f"/v1/agents/{agent_id}/messages", params=params)).json()
        total += len(page)
        if len(page) < 1000:
            return total
        after = page[-1]["id"]


async def measure(client: httpx.AsyncClient, agent_id: str) -> dict[str, float]:
    server_ms, rtt_ms = [], []
    for i in range(SAMPLES):
        s, r = await one_run(client, agent_id, f"sample {i}: what do you remember?")
        server_ms.append(s)
        rtt_ms.append(r)
    return {"server_p50": pct(server_ms, 50), "server_p95": pct(server_ms, 95), "rtt_p50": pct(rtt_ms, 50)}


async def scenario(client: httpx.AsyncClient, window: int, fill: int) -> dict[str, Any]:
    agent = (
        await client.post(
            "/v1/agents/", json={"name": f"ctx-{window}", "model": MODEL, "context_window_limit": window}
        )
    ).json()
    agent_id = agent["id"]
    for i in range(5):  # 5 runs x (user + assistant) = 10 stored messages
        await one_run(client, agent_id, f"warm-up {i}")
    at_small = await stored(client, agent_id)
    small = await measure(client, agent_id)
    t0 = time.perf_counter()
    count = await stored(client, agent_id)
    i = 0
    while count < fill:
        batch = min(200, (fill - count) // 2 + 1)
        for _ in range(batch):
            await one_run(client, agent_id, f"filler message number {i} with a few words of text")
            i += 1
        count = await stored(client, agent_id)
    fill_s = time.perf_counter() - t0
    at_large = count
    large = await measure(client, agent_id)
    summaries = (
        await client.get(
            f"/v1/agents/{agent_id}/messages",
            params={"limit": 1000, "include_return_message_types": "summary_message"},
        )
    ).json()
    return {
        "window": window,
        "small_n": at_small,
        "small": small,
        "large_n": at_large,
        "large": large,
        "fill_s": fill_s,
        "compactions": len(summaries),
    }


def render(results: list[dict[str, Any]], backend: str) -> str:
    lines = [
        f"step overhead vs stored history ({backend}; one-step runs, instant fake LLM, {SAMPLES} samples)",
        "",
        "| window | stored msgs | run p50 (server) | run p95 (server) | round trip p50 | compactions |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for key, n in (("small", r["small_n"]), ("large", r["large_n"])):
            m = r[key]
            lines.append(
                f"| {r['window']:,} | {n:,} | {m['server_p50']:.1f} ms | {m['server_p95']:.1f} ms "
                f"| {m['rtt_p50']:.1f} ms | {r['compactions'] if key == 'large' else 0} |"
            )
    return "\n".join(lines)


async def run(base_url: str, fill: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        return [await scenario(client, 8_000, fill), await scenario(client, 1_000_000, fill)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", help="PostgreSQL admin URL (a fresh database is made); default SQLite")
    parser.add_argument("--fill", type=int, default=10_000)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="agenthost-bench-ctx-"))
    try:
        with fake_llm() as llm_url:
            if args.pg:
                with pg_database(args.pg) as pg_url, agenthost(llm_url, tmp / "data", pg_url) as server:
                    results = asyncio.run(run(server.base_url, args.fill))
            else:
                with agenthost(llm_url, tmp / "data", None) as server:
                    results = asyncio.run(run(server.base_url, args.fill))
        print(render(results, "PostgreSQL" if args.pg else "SQLite"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
