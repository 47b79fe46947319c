"""The ``agenthost`` command."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import signal
import sys
from pathlib import Path

import uvicorn

from agenthost.app import create_app
from agenthost.container import Container
from agenthost.db.database import Database, DatabaseError, DatabaseLocked
from agenthost.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agenthost", description="A Letta-compatible server for stateful agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server (and, by default, a run worker)")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to bind (default 8283)")
    serve.add_argument(
        "--data-dir", type=Path, default=None, help="where the SQLite database lives (~/.agenthost)"
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="API only: runs are executed by `agenthost worker` processes (AGENTHOST_ENGINE=procrastinate)",
    )
    worker = sub.add_parser("worker", help="run a worker of the distributed engine (no API)")
    worker.add_argument("--concurrency", type=int, default=None, help="runs executed at once (default 32)")
    args = parser.parse_args(argv)

    values = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "data_dir": getattr(args, "data_dir", None),
        "worker_concurrency": getattr(args, "concurrency", None),
    }
    try:
        settings = Settings(**{k: v for k, v in values.items() if v})
    except ValueError as exc:
        sys.stderr.write(f"agenthost: {exc}\n")
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per LLM request at INFO is noise at our volumes; failures are logged by our client.
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.command == "worker" or getattr(args, "no_worker", False):
        if settings.engine != "procrastinate":
            sys.stderr.write(
                "agenthost: a separate worker needs the distributed engine: "
                "set AGENTHOST_ENGINE=procrastinate and LETTA_PG_URI\n"
            )
            return 2
    if args.command == "worker":
        _not_dumpable()
        asyncio.run(_work(settings))
        return 0
    # Checked before uvicorn starts too: a failure inside the lifespan would reach the user as a traceback.
    problem = asyncio.run(_preflight(settings))
    if problem is not None:
        sys.stderr.write(f"agenthost: {problem}\n")
        return 2
    _not_dumpable()
    app = create_app(settings, run_worker=not args.no_worker)
    # A request and a run allocate many short-lived objects; the default gen-0 threshold (700) ran the
    # collector thousands of times a second under load. Measured here: +20 % runs/s for the engine
    # alone, +5-10 % on the whole bench (bench/README.md).
    # Objects that live for the whole process (modules, the app) are moved out of its way.
    gc.set_threshold(20_000, 20, 20)
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
    )
    uvicorn.Server(config).run()
    return 0


def _not_dumpable() -> None:
    """Keep other processes of this user (custom tools among them) out of the server's memory.

    With the dumpable flag off, /proc/<pid>/environ and /proc/<pid>/mem of the server belong to root
    and ptrace is refused, so a tool cannot read the API keys the server was started with. It does
    not stop a tool running as root: see docs/tools.md.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        return


_PR_SET_DUMPABLE = 4


async def _work(settings: Settings) -> None:
    """A worker: executes runs until SIGTERM/SIGINT, then stops gracefully (runs still going after the
    grace period are handed back)."""
    container = await Container.start(settings, run_worker=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger(__name__).info("worker started (concurrency %d)", settings.worker_concurrency)
    await stop.wait()
    await container.stop()


async def _preflight(settings: Settings) -> str | None:
    """Can this server own its database? (The lock is taken again, for good, at start-up.)"""
    db = Database(settings.sqlalchemy_url(), pool_size=1)
    try:
        if settings.engine == "embedded":
            await db.acquire_engine_lock(settings.data_dir)
        else:
            await db.ping()
    except DatabaseLocked as exc:
        return exc.message
    except (OSError, DatabaseError) as exc:
        return f"cannot open the database ({type(exc).__name__}: {exc})"
    finally:
        await db.close()
    return None


if __name__ == "__main__":
    raise SystemExit(main())
