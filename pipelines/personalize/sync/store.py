"""The delta store: per user, a base model hash and a linear history of checked deltas.

Tables (SQLAlchemy Core, so any database SQLAlchemy supports works; a SQLite file
is the default)::

    sync_users(id, name UNIQUE, token_sha256 UNIQUE, base_sha256 NULL, created)
    sync_deltas(user_id, version, device, created, n_examples, updated_sha256,
                delta_sha256, n_bytes, data)            PRIMARY KEY (user_id, version)

Each version is a whole delta against the user's base (``pull`` applies only the
latest; older versions are the backup history). The base hash is set by the first
push; later pushes must be diffs of that same base.

The concurrency rule: a push names the version it builds on, its *parent* (0 for
the first). It is stored as ``parent + 1`` only if ``parent`` is still the latest
version; otherwise it is refused with "version N is newer than your parent P; pull
version N first" and nothing is stored. Two devices pushing against the same version:
the first to commit wins, the second is told to pull. The check-and-insert runs in
one transaction and ``(user_id, version)`` is the primary key, so even two writers
that both read the same head cannot both store ``parent + 1``; on SQLite each
write transaction is ``BEGIN IMMEDIATE`` (writers queue) and the journal is WAL with
``synchronous=FULL`` (an acknowledged version survives a crash).

Before a delta is stored it is checked: its size (``max_bytes``), the SHA-256 the
client sent (a delta changed on the way is refused, both digests named), its
structure (read by ``delta_read`` within its size limits: every fault one "not a
pippin delta file" error), its base hash against the user's, and replays (bytes
already stored as an earlier version). Tokens are stored only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..delta import Delta
from ...errors import PipelineError

__all__ = ["DeltaStore", "SyncError", "database_url", "MAX_UPLOAD_BYTES"]

MAX_UPLOAD_BYTES = 64 << 20  # 64 MiB: a personal delta is a head's weights or a k-NN index
USER_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,200}")  # one URL path segment as it is

_meta = sa.MetaData()
users = sa.Table(
    "sync_users", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("base_sha256", sa.String(64), nullable=True),
    sa.Column("created", sa.Float, nullable=False),
)
deltas = sa.Table(
    "sync_deltas", _meta,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("sync_users.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("device", sa.String(200), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("n_examples", sa.BigInteger, nullable=False),
    sa.Column("updated_sha256", sa.String(64), nullable=False),
    sa.Column("delta_sha256", sa.String(64), nullable=False),
    sa.Column("n_bytes", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


class SyncError(PipelineError):
    """A store refused a request; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, *, status: int = 400, where: str | None = None, hint: str | None = None):
        super().__init__(message, where=where, hint=hint)
        self.status = status


def database_url(location: str | os.PathLike) -> str:
    """A SQLAlchemy URL as given, or ``sqlite:///<absolute path>`` for a file path."""
    text = str(location)
    if "://" in text:
        if text.startswith(("http://", "https://")):
            raise SyncError(f"{text!r} is a server URL, expected a database URL or a SQLite file path",
                            hint="'pippin sync serve' and 'add-user' open the database itself")
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_pragmas(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # no implicit BEGIN: the "begin" hook below issues it
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


TOKEN_PREFIX = "pst_"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class DeltaStore:
    """Direct access to a delta store database (no token needed).

    Parameters
    ----------
    location : str or path
        A SQLAlchemy database URL or a SQLite file path (created if missing).
    max_bytes : int
        The largest delta accepted, in bytes.
    """

    def __init__(self, location: str | os.PathLike, *, max_bytes: int = MAX_UPLOAD_BYTES):
        self.url = database_url(location)
        self.where = str(location)
        self.max_bytes = int(max_bytes)
        sqlite = self.url.startswith("sqlite")
        self.engine = sa.create_engine(self.url, connect_args={"check_same_thread": False} if sqlite else {})
        if sqlite:
            _sqlite_pragmas(self.engine)
        try:
            _meta.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise SyncError(f"cannot open the store: {type(exc).__name__}: {exc.args[0] if exc.args else exc}",
                            where=self.where) from None

    def close(self) -> None:
        self.engine.dispose()

    # users and tokens ------------------------------------------------------------
    def add_user(self, user: str) -> str:
        """Create ``user`` and return its token (shown once; only its digest is stored).

        Tokens start with ``pst_`` so none begins with ``-``: a bare urlsafe token does one time in
        64, and ``--token -abc`` is then read by argparse as an unknown option."""
        if not isinstance(user, str) or not USER_NAME.fullmatch(user):
            raise SyncError(f"user name {user!r} must be 1 to 200 letters, digits or . _ @ + -",
                            where=self.where)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(users.insert().values(name=user, token_sha256=token_digest(token), created=time.time()))
        except IntegrityError:
            raise SyncError(f"user {user!r} already exists", status=409, where=self.where) from None
        return token

    def user_of_token(self, token: str | None) -> str | None:
        """The user a token belongs to, or None."""
        if not token:
            return None
        with self.engine.begin() as conn:
            return conn.execute(sa.select(users.c.name).where(users.c.token_sha256 == token_digest(token))).scalar()

    def _user_row(self, conn, user: str):
        row = conn.execute(sa.select(users).where(users.c.name == user)).first()
        if row is None:
            raise SyncError(f"no user {user!r} in the store", status=404, where=self.where,
                            hint="'pippin sync add-user' creates one")
        return row

    # reading ---------------------------------------------------------------------
    def status(self, user: str) -> dict:
        """``{"user", "base_sha256", "latest", "versions": [{version, device, created, ...}], "devices"}``."""
        with self.engine.begin() as conn:
            row = self._user_row(conn, user)
            rows = conn.execute(sa.select(deltas.c.version, deltas.c.device, deltas.c.created, deltas.c.n_examples,
                                          deltas.c.updated_sha256, deltas.c.delta_sha256, deltas.c.n_bytes)
                                .where(deltas.c.user_id == row.id).order_by(deltas.c.version)).all()
        versions = [dict(r._mapping) for r in rows]
        return {"user": user, "base_sha256": row.base_sha256, "latest": versions[-1]["version"] if versions else 0,
                "versions": versions, "devices": sorted({v["device"] for v in versions})}

    def fetch(self, user: str, version: int | None = None) -> tuple[int, bytes]:
        """(version, delta bytes) of ``version`` (default: the latest)."""
        with self.engine.begin() as conn:
            row = self._user_row(conn, user)
            query = sa.select(deltas.c.version, deltas.c.data, deltas.c.delta_sha256).where(deltas.c.user_id == row.id)
            query = query.order_by(deltas.c.version.desc()) if version is None else query.where(
                deltas.c.version == int(version))
            found = conn.execute(query.limit(1)).first()
        if found is None:
            what = "no delta yet" if version is None else f"no version {version}"
            raise SyncError(f"user {user!r} has {what}", status=404, where=self.where,
                            hint="push a personal model first" if version is None else "see 'pippin sync status'")
        data = bytes(found.data)
        if hashlib.sha256(data).hexdigest() != found.delta_sha256:  # storage damage, never silent
            raise SyncError(f"stored version {found.version} does not match its recorded SHA-256", status=500,
                            where=self.where)
        return found.version, data

    # writing ---------------------------------------------------------------------
    def push(self, user: str, data: bytes, *, parent: int, sha256: str, device: str = "default") -> dict:
        """Check ``data`` (a delta file's bytes) and store it as version ``parent + 1``.

        Returns ``{"version", "base_sha256", "delta_sha256", "device"}``.

        Raises
        ------
        SyncError
            Too large (413), a SHA-256 other than ``sha256`` (400), not a delta (400), another
            base than the user's (409), a replay of a stored version (409), or ``parent`` not
            the latest version (409: "pull version N first"). Nothing is stored.
        """
        where = f"push from device {device!r}"
        if len(data) > self.max_bytes:
            raise SyncError(f"the delta is {len(data)} bytes, more than the store's limit of {self.max_bytes} bytes",
                            status=413, where=where, hint="personalize fewer parameters, or raise the limit")
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise SyncError(f"the delta's SHA-256 is {digest}, but the sender computed {sha256}: it was changed "
                            "on the way", where=where, hint="push again")
        delta = _check_delta(data, where)
        try:
            return self._insert(user, data, delta, digest, parent=parent, device=device, where=where)
        except IntegrityError:  # another writer stored parent + 1 between our read and our insert
            raise SyncError(f"another device pushed version {parent + 1} first; pull version {parent + 1} first",
                            status=409, where=where,
                            hint="pull, personalize on top of the pulled model, then push again") from None

    def _insert(self, user: str, data: bytes, delta: Delta, digest: str, *, parent: int, device: str,
                where: str) -> dict:
        with self.engine.begin() as conn:
            row = self._user_row(conn, user)
            if row.base_sha256 is not None and row.base_sha256 != delta.base_sha256:
                raise SyncError(f"the delta was made for base {delta.base_sha256}, but user {user!r}'s base is "
                                f"{row.base_sha256}", status=409, where=where,
                                hint="diff against the user's base model (see 'pippin sync status')")
            latest = conn.execute(sa.select(sa.func.max(deltas.c.version)).where(deltas.c.user_id == row.id)).scalar()
            latest = latest or 0
            replay = conn.execute(sa.select(deltas.c.version).where(
                (deltas.c.user_id == row.id) & (deltas.c.delta_sha256 == digest))).scalar()
            if replay is not None:
                raise SyncError(f"this delta is already stored as version {replay} (a replay); the latest is "
                                f"{latest}", status=409, where=where, hint="nothing to push")
            if parent != latest:
                raise SyncError(f"version {latest} is newer than your parent {parent}; pull version {latest} first",
                                status=409, where=where,
                                hint="pull, personalize on top of the pulled model, then push again")
            if row.base_sha256 is None:
                conn.execute(users.update().where(users.c.id == row.id).values(base_sha256=delta.base_sha256))
            conn.execute(deltas.insert().values(
                user_id=row.id, version=latest + 1, device=str(device)[:200], created=time.time(),
                n_examples=delta.n_examples, updated_sha256=delta.updated_sha256, delta_sha256=digest,
                n_bytes=len(data), data=data))
        return {"version": latest + 1, "base_sha256": delta.base_sha256, "delta_sha256": digest,
                "device": str(device)[:200]}


def _check_delta(data: bytes, where: str) -> Delta:
    """``data`` read as a delta file through ``delta_read``'s limits and format checks."""
    fd, name = tempfile.mkstemp(suffix=".mldelta")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            return Delta.load(name)
        except PipelineError as exc:
            raise SyncError(exc.message.replace(name, "<upload>"), where=where, hint=exc.hint) from None
    finally:
        os.unlink(name)
