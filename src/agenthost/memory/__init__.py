"""Archival memory's embedding models (``embeddings``); the passages themselves live in ``db/vectors.py``.

Nothing heavy is imported here: the local model's torch and sentence-transformers are only ever
imported in its own child process (``local_worker``).
"""
