"""Backup and sync of personal deltas: a store per user, directly or behind an HTTP server.

- ``store``: ``DeltaStore``, the database (SQLAlchemy; a SQLite file by default): per user a
  token digest, the base model's hash and a linear history of checked deltas; the
  concurrency rule ("pull version N first").
- ``server``: the Starlette app and ``serve`` (uvicorn) in front of one store; tokens,
  401/403, upload size limit.
- ``client``: ``open_store`` (direct or ``http://``), ``push_model`` and ``pull_model``.

Needs the ``sync`` extra (``pip install "pippin[sync]"``: SQLAlchemy, Starlette, uvicorn).
"""

from .client import DirectClient, HttpClient, open_store, pull_model, push_model
from .server import make_app, serve
from .store import MAX_UPLOAD_BYTES, DeltaStore, SyncError, database_url

__all__ = ["DeltaStore", "SyncError", "database_url", "MAX_UPLOAD_BYTES", "make_app", "serve", "open_store",
           "DirectClient", "HttpClient", "push_model", "pull_model"]
