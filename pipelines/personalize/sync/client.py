"""Talking to a store: directly (a database URL or SQLite path) or over HTTP (a server URL and a token).

``open_store(location, user, token=None)`` gives an object with ``status()``,
``fetch(version=None) -> (version, bytes)`` and ``push(data, *, parent, device)``,
the same for both kinds; ``push_model`` and ``pull_model`` are the two halves of
sync built on it (``diff``/``apply_bytes`` from ``delta``). The HTTP client is the
standard library's ``urllib`` (loopback or any reachable server).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..delta import Delta, apply_bytes, diff
from .store import DeltaStore, SyncError

__all__ = ["open_store", "DirectClient", "HttpClient", "push_model", "pull_model"]


class DirectClient:
    """One user's view of a store database (no token needed: whoever can open the file owns it)."""

    def __init__(self, location: str | os.PathLike, user: str):
        if "://" not in str(location) and not os.path.exists(location):  # never create a store by a typo
            raise SyncError("no such store file", where=str(location),
                            hint="'pippin sync add-user --db FILE' creates one")
        self.store, self.user = DeltaStore(location), user

    def status(self) -> dict:
        return self.store.status(self.user)

    def fetch(self, version: int | None = None) -> tuple[int, bytes]:
        return self.store.fetch(self.user, version)

    def push(self, data: bytes, *, parent: int, device: str = "default") -> dict:
        return self.store.push(self.user, data, parent=parent, sha256=hashlib.sha256(data).hexdigest(), device=device)

    def close(self) -> None:
        self.store.close()


class HttpClient:
    """One user's view of a ``pippin sync serve`` server, with that user's token."""

    def __init__(self, url: str, user: str, token: str | None, *, timeout: float = 60.0):
        if not token:
            raise SyncError(f"a token is required for the server {url}", hint="give --token (from 'sync add-user')")
        self.base = url.rstrip("/") + "/v1/users/" + urllib.parse.quote(user, safe="")
        self.token, self.timeout, self.where = token, timeout, url

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.base + path, data=body, method=method,
                                         headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(), response.headers
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                err = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                err = {"message": f"HTTP {exc.code}: {raw[:200]!r}"}
            raise SyncError(err.get("message", f"HTTP {exc.code}"), status=exc.code,
                            where=err.get("where") or self.where, hint=err.get("hint")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise SyncError(f"cannot reach the server: {getattr(exc, 'reason', exc)}", status=503,
                            where=self.where, hint="is 'pippin sync serve' running?") from None

    def status(self) -> dict:
        return json.loads(self._request("GET", "/status")[0])

    def _health(self) -> dict:
        root = self.base.rsplit("/v1/users/", 1)[0]
        try:
            with urllib.request.urlopen(root + "/v1/health", timeout=self.timeout) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SyncError(f"cannot reach the server: {getattr(exc, 'reason', exc)}", status=503,
                            where=self.where, hint="is 'pippin sync serve' running?") from None

    def fetch(self, version: int | None = None) -> tuple[int, bytes]:
        data, headers = self._request("GET", f"/deltas/{'latest' if version is None else int(version)}")
        if hashlib.sha256(data).hexdigest() != headers.get("X-Pippin-SHA256"):
            raise SyncError("the delta received does not match the SHA-256 the server sent", where=self.where,
                            hint="pull again")
        return int(headers["X-Pippin-Version"]), data

    def push(self, data: bytes, *, parent: int, device: str = "default") -> dict:
        # the server's limit first: a server that refuses a large body mid-upload may reset the connection
        limit = self._health().get("max_bytes")
        if isinstance(limit, int) and len(data) > limit:
            raise SyncError(f"the delta is {len(data)} bytes, more than the server's limit of {limit} bytes",
                            status=413, where=self.where, hint="personalize fewer parameters, or ask for a larger "
                                                               "--max-bytes")
        query = urllib.parse.urlencode({"parent": int(parent), "device": device})
        raw, _ = self._request("POST", f"/deltas?{query}", data,
                               {"X-Pippin-SHA256": hashlib.sha256(data).hexdigest(),
                                "Content-Type": "application/octet-stream"})
        return json.loads(raw)

    def close(self) -> None:
        pass


def open_store(location: str | os.PathLike, user: str, token: str | None = None) -> DirectClient | HttpClient:
    """A client for ``location``: an ``http://``/``https://`` server URL (token required), else a database."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        return HttpClient(text, user, token)
    return DirectClient(text, user)


def push_model(client, personal: Any, base: Any, *, parent: int, device: str = "default") -> dict:
    """Diff ``personal`` against ``base`` and push the delta as version ``parent + 1``."""
    delta = diff(base, personal)
    with tempfile.TemporaryDirectory() as tmp:
        data = delta.save(os.path.join(tmp, "push.mldelta")).read_bytes()
    return {**client.push(data, parent=parent, device=device), "n_changes": len(delta.changes),
            "bytes": len(data)}


def pull_model(client, base: Any, *, version: int | None = None) -> tuple[int, bytes]:
    """(version, the personal model's bytes): ``base`` with the user's delta applied, both hashes checked."""
    number, data = client.fetch(version)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"v{number}.mldelta")
        with open(path, "wb") as f:
            f.write(data)
        delta = Delta.load(path)
        delta.where = f"version {number}"
        return number, apply_bytes(base, delta)
