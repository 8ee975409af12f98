"""``pippin sync``: back up and sync a user's personal deltas through a store (a database, or a server).

    pippin sync add-user --db DB --user U                 prints the user's token
    pippin sync serve --db DB --host 127.0.0.1 --port N   the HTTP server in front of DB
    pippin sync push PERSONAL --base BASE --store STORE --user U [--token T] [--device D]
    pippin sync pull --base BASE --store STORE --user U [--token T] -o OUT
    pippin sync status --store STORE --user U [--token T] --json

STORE is a database URL or SQLite file path (direct access, no token) or an http:// server
URL (token required); DB is a SQLAlchemy URL or a SQLite file path. A push builds on the
version this device last pushed or pulled (remembered in the state file, or --parent N);
if another device pushed since, it is refused: "pull version N first".
Needs the sync extra: pip install "pippin[sync]".
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import PipelineError
from .exit_codes import HELP_EPILOG
from .output import Result, info

STATE_ENV = "PIPPIN_SYNC_STATE"


def add_parser(subparsers, parents):
    parser = subparsers.add_parser("sync", parents=parents, help="back up and sync personal deltas (store, server)",
                                   description=__doc__.splitlines()[0], epilog=HELP_EPILOG)
    verbs = parser.add_subparsers(dest="sync_command", metavar="VERB", required=True)

    p = verbs.add_parser("add-user", parents=parents, help="create a user and print its token", epilog=HELP_EPILOG)
    p.add_argument("--db", required=True, help="SQLAlchemy URL or SQLite file path")
    p.add_argument("--user", required=True)
    p.set_defaults(handler=run_add_user)

    p = verbs.add_parser("serve", parents=parents, help="serve the store over HTTP", epilog=HELP_EPILOG)
    p.add_argument("--db", required=True, help="SQLAlchemy URL or SQLite file path")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--max-bytes", type=int, default=None, help="largest delta accepted (default 64 MiB)")
    p.set_defaults(handler=run_serve)

    for verb, text in (("push", "diff a personal model against its base and upload the delta"),
                       ("pull", "rebuild the user's latest personal model from its base"),
                       ("status", "the user's versions, devices and base hash")):
        p = verbs.add_parser(verb, parents=parents, help=text, epilog=HELP_EPILOG)
        if verb == "push":
            p.add_argument("personal", metavar="PERSONAL", help="the personalized model")
        if verb != "status":
            p.add_argument("--base", required=True, metavar="BASE", help="the base model the delta is made against")
        p.add_argument("--store", required=True, metavar="STORE", help="database URL or path, or http:// server URL")
        p.add_argument("--user", required=True)
        p.add_argument("--token", default=None, help="the user's token (required for an http:// store)")
        if verb == "push":
            p.add_argument("--device", default="default", help="this device's id (recorded with the version)")
            p.add_argument("--parent", type=int, default=None,
                           help="the version this model builds on (default: the last one this device pushed "
                                "or pulled, 0 if none)")
        if verb == "pull":
            p.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the model")
            p.add_argument("--version", type=int, default=None, help="an older version (default: the latest)")
        if verb != "status":
            p.add_argument("--state", default=None,
                           help=f"this device's sync state file (default: ${STATE_ENV} or ~/.config/pippin/sync.json)")
        p.set_defaults(handler={"push": run_push, "pull": run_pull, "status": run_status}[verb])
    return parser


def _sync():
    try:
        from ..personalize import sync
    except ImportError as exc:
        raise PipelineError(f"the sync extra is not installed ({exc.name} is missing)",
                            hint='pip install "pippin[sync]"') from None
    return sync


def _state_path(args) -> Path:
    return Path(args.state or os.environ.get(STATE_ENV) or Path.home() / ".config" / "pippin" / "sync.json")


def _state_key(args) -> str:
    store = args.store if "://" in args.store else str(Path(args.store).expanduser().resolve())
    return f"{store}|{args.user}"


def _read_state(args) -> dict:
    try:
        state = json.loads(_state_path(args).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise PipelineError(f"cannot read the sync state: {exc}", where=str(_state_path(args)),
                            hint="delete it and pull again") from None
    return state if isinstance(state, dict) else {}


def _remember(args, version: int, sha256: str) -> None:
    """Record that this device's model is ``version`` (the personal model's SHA-256 ``sha256``)."""
    from ..personalize.delta import write_atomically

    state = _read_state(args)
    state[_state_key(args)] = {"version": int(version), "sha256": sha256}
    path = _state_path(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(state, indent=1).encode())


def run_add_user(args):
    store = _sync().DeltaStore(args.db)
    token = store.add_user(args.user)
    store.close()
    return Result({"user": args.user, "token": token}, token)


def run_serve(args):
    sync = _sync()
    kwargs = {} if args.max_bytes is None else {"max_bytes": args.max_bytes}
    store = sync.DeltaStore(args.db, **kwargs)
    info(f"pippin sync: serving {args.db} on http://{args.host}:{args.port} (Ctrl-C stops)")
    sync.serve(store, host=args.host, port=args.port, log_level="info" if args.verbose > 0 else "warning")
    return Result({"stopped": True}, "")


def _parent(args, client) -> int:
    """The version this device builds on: --parent, else the remembered one if the store still holds it
    as recorded (a recreated store or a stale state file counts as none), else 0."""
    if args.parent is not None:
        return args.parent
    known = _read_state(args).get(_state_key(args))
    if not isinstance(known, dict):
        return 0
    versions = {v["version"]: v["updated_sha256"] for v in client.status()["versions"]}
    return known.get("version", 0) if versions.get(known.get("version")) == known.get("sha256") else 0


def run_push(args):
    from ..personalize.delta import fingerprint

    sync = _sync()
    client = sync.open_store(args.store, args.user, args.token)
    try:
        result = sync.push_model(client, args.personal, args.base, parent=_parent(args, client), device=args.device)
    finally:
        client.close()
    _remember(args, result["version"], fingerprint(args.personal))
    return Result(result, f"pushed version {result['version']} ({result['n_changes']} changed fields, "
                          f"{result['bytes']} bytes) from device {result['device']!r}")


def run_pull(args):
    from ..personalize.delta import write_atomically

    sync = _sync()
    client = sync.open_store(args.store, args.user, args.token)
    try:
        version, data = sync.pull_model(client, args.base, version=args.version)
    finally:
        client.close()
    out = write_atomically(args.output, data)
    digest = hashlib.sha256(data).hexdigest()
    if args.version is None:
        _remember(args, version, digest)
    return Result({"model": str(out), "version": version, "sha256": digest},
                  f"pulled version {version} (SHA-256 {digest[:12]}... verified)\nwrote {out}")


def run_status(args):
    sync = _sync()
    client = sync.open_store(args.store, args.user, args.token)
    try:
        status = client.status()
    finally:
        client.close()
    lines = [f"user {status['user']}: base {status['base_sha256'] or '(none yet)'}, latest version {status['latest']}"]
    lines += [f"  v{v['version']}  device {v['device']!r}  {v['n_bytes']} bytes  {v['n_examples']} examples"
              for v in status["versions"]]
    return Result(status, "\n".join(lines))
