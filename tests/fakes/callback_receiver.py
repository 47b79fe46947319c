"""A callback receiver for tests: an HTTP server in a thread that records POSTs (runs' callbacks)."""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


class CallbackReceiver:
    """An HTTP server in a thread that records every POST and answers with scripted status codes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._posts: list[Post] = []
        self._answers: dict[str, deque[int]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver._record(
                    Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="callback-receiver", daemon=True
        )

    def _record(self, post: Post) -> int:
        with self._cond:
            self._posts.append(post)
            self._cond.notify_all()
            answers = self._answers.get(post.path)
            if answers and len(answers) > 1:
                return answers.popleft()
            return answers[0] if answers else 200

    def url(self, *statuses: int) -> str:
        """A fresh callback URL answered with ``statuses`` in turn (the last one repeats; default 200)."""
        path = f"/cb/{uuid.uuid4().hex[:12]}"
        with self._cond:
            self._answers[path] = deque(statuses or (200,))
        return f"http://127.0.0.1:{self._http.server_address[1]}{path}"

    def posts(self, url: str) -> list[Post]:
        path = urlsplit(url).path
        with self._cond:
            return [p for p in self._posts if p.path == path]

    def wait_for(self, url: str, n: int = 1, timeout: float = 10.0) -> list[Post]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.posts(url)) >= n, timeout):
                raise AssertionError(f"callback receiver: {len(self.posts(url))}/{n} POSTs to {url}")
        return self.posts(url)

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
