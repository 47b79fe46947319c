"""The local model's own process: ``python -m agenthost.llm.local.worker --model PATH --slot-ctx N``.

It runs llama.cpp's HTTP server engine (through ``xllamacpp``, prebuilt wheels) on a loopback port of
its own: continuous batching over ``--slots`` parallel slots of ``--slot-ctx`` tokens each, chat
templates, JSON-schema constrained output, log probabilities, token counting. llama.cpp computes on
threads of this process, never in the server's (where a crash by a signal would take the server
down with it). This is the only module that imports ``xllamacpp``.

Protocol: the server writes an API key as the first line of the worker's stdin (requests without it
get 401, so other users of the machine cannot use the port). Once the model is loaded the worker
writes one JSON line, ``{"ready": true, "address", "load_s", "system_info"}`` or
``{"ready": false, "error"}``, and then serves until its stdin closes, when it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import xllamacpp


def start(args: argparse.Namespace, key: str) -> xllamacpp.Server:
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_parallel = args.slots
    # Each slot gets a window of its own (no unified KV cache), and a full window is the end of an
    # answer rather than a silent shift that forgets the start of the prompt.
    params.n_ctx = args.slot_ctx * args.slots
    params.kv_unified = False
    params.ctx_shift = False
    params.fit_params = False  # the sizes asked for, not ones "fitted" to a device
    # Prompt states a slot gives up are kept in RAM for a prompt that comes back: llama.cpp allows
    # 8 GiB for them; 1 GiB holds about 40 agents' 1,000-token prompts of SmolLM2.
    params.cache_ram_mib = 1024
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # a free port, chosen by the system
    params.api_keys = [key]
    params.cors_origins = ""
    params.verbosity = args.verbosity
    if args.threads:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    return xllamacpp.Server(params)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--slot-ctx", type=int, required=True)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--verbosity", type=int, default=1)
    args = parser.parse_args()
    # The ready line gets a private copy of stdout; fd 1 itself points at stderr from here on, so
    # nothing llama.cpp prints can be mistaken for it.
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    key = sys.stdin.readline().strip()
    started = time.perf_counter()
    try:
        server = start(args, key)
    except Exception as exc:  # a file that is not a model, too little memory: the log says which
        reply.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        reply.flush()
        return 1
    ready = {
        "ready": True,
        "address": server.listening_address,
        "load_s": time.perf_counter() - started,
        "system_info": xllamacpp.get_system_info(),
    }
    reply.write(json.dumps(ready) + "\n")
    reply.flush()
    sys.stdin.read()  # until the server closes the pipe (or dies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
