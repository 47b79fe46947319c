"""The README's SDK snippet, as written, against a real server on the offline model.

The snippet is taken from the README itself (its first ``python`` block), so the docs cannot drift
from what works: only the server's address is changed, to the test server's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support import ThreadServer, local_model_unavailable

README = Path(__file__).resolve().parents[2] / "README.md"
ADDRESS = "http://127.0.0.1:8283"


def readme_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "the README has no python snippet"
    snippet: str = blocks[0]
    assert ADDRESS in snippet, "the snippet no longer talks to the default address"
    return snippet


_unavailable = local_model_unavailable()


@pytest.mark.skipif(_unavailable is not None, reason=_unavailable or "")
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_readme_snippet_works_offline_as_written(
    fresh_server: Callable[..., ThreadServer], tmp_path: Path
) -> None:
    # As after `make serve` with nothing configured: no provider, so agents get the local model.
    srv = fresh_server(openai_api_key=None, openai_base_url=None, local_model="auto")
    script = tmp_path / "snippet.py"
    script.write_text(readme_snippet().replace(ADDRESS, srv.base_url))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "completed end_turn", done.stdout
    answers = [
        line.removeprefix("assistant_message ") for line in lines if line.startswith("assistant_message")
    ]
    assert answers and all(answer.strip() for answer in answers), done.stdout
