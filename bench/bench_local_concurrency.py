"""Concurrency benchmark of the embedded local model: N agents send a message at the same moment.

For N in --agents (default 1, 4, 16), N completions with distinct prompts start together; the figures
are the aggregate generation rate (output tokens of all N over the wall time), the time to first token
(the first streamed piece; a client that does not stream answers whole, so its first token is its
whole answer) and the latency of each request, p50 and max. It measures; it asserts nothing.

    cd /work/main && .venv/bin/python bench/bench_local_concurrency.py [--agents 1 4 16]
        [--max-tokens 64] [--rounds 2] [--threads N] [--parallel SLOTS]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from agenthost.llm.base import Delta, LLMClient, LLMRequest
from agenthost.llm.local import local_client
from agenthost.settings import Settings

MODEL_NAME = "smollm2-135m"


@dataclass
class FirstPiece:
    """A delta sink that notes when the first piece arrived."""

    at: float | None = None
    pieces: list[str] = field(default_factory=list)

    def delta(self, piece: Delta) -> None:
        if self.at is None:
            self.at = time.perf_counter()
        self.pieces.append(piece.text)

    def restart(self) -> None:
        self.pieces.clear()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def request(agent: int, round_: int, max_tokens: int) -> LLMRequest:
    messages = [
        {"role": "system", "content": f"You are agent {agent} (round {round_}), a storyteller."},
        {"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."},
    ]
    return LLMRequest(MODEL_NAME, messages, max_tokens=max_tokens)


async def one(client: LLMClient, req: LLMRequest, start: float) -> tuple[float, float, int]:
    sink = FirstPiece()
    response = await client.complete(req, sink)
    done = time.perf_counter()
    return (sink.at or done) - start, done - start, response.completion_tokens


async def main(args: argparse.Namespace) -> None:
    options = {"local_parallel": args.parallel} if args.parallel else {}  # (a setting the old client lacks)
    client = local_client(Settings(local_model="on", local_threads=args.threads, **options))
    if client is None:
        raise SystemExit("the local model is not installed: pip install 'agenthost[local-llm]'")
    print(
        f"client: {type(client).__module__}; streams deltas: {getattr(client, 'streams_deltas', False)}; "
        f"parallel slots: {getattr(client, 'parallel', 1)}"
    )
    try:
        await client.complete(LLMRequest(MODEL_NAME, [{"role": "user", "content": "Hi."}], max_tokens=1))
        if (pid := getattr(client, "worker_pid", None)) is not None:
            print(f"worker RSS after load: {rss_mib(pid):.0f} MiB")
        for n in args.agents:
            ttfts: list[float] = []
            latencies: list[float] = []
            rates: list[float] = []
            for round_ in range(args.rounds):
                start = time.perf_counter()
                results = await asyncio.gather(
                    *(one(client, request(i, round_, args.max_tokens), start) for i in range(n))
                )
                wall = time.perf_counter() - start
                rates.append(sum(tokens for _, _, tokens in results) / wall)
                ttfts += [ttft for ttft, _, _ in results]
                latencies += [latency for _, latency, _ in results]
            peak = f"; worker RSS {rss_mib(pid):.0f} MiB" if pid is not None else ""
            print(
                f"{n:>3} at once: {statistics.median(rates):6.1f} tok/s aggregate; first token p50 "
                f"{statistics.median(ttfts) * 1000:6.0f} ms, max {max(ttfts) * 1000:6.0f} ms; latency p50 "
                f"{statistics.median(latencies) * 1000:6.0f} ms, max {max(latencies) * 1000:6.0f} ms{peak}"
            )
    finally:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=None, help="slots (default: the server's default)")
    asyncio.run(main(parser.parse_args()))
