"""The command line: serve a workspace, generate keys, run the demo, talk to a workspace."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import logging
import os
import sys
from typing import Any

from tether import client, config

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(config.Settings)}


def _flag(
    parser: argparse.ArgumentParser,
    name: str,
    help_text: str,
    *,
    field: str | None = None,
    **kwargs: Any,
) -> None:
    field = field or name.lstrip("-").replace("-", "_")
    default = _DEFAULTS.get(field)
    if "(default" not in help_text and default not in (None, (), dataclasses.MISSING):
        help_text = f"{help_text} (default {default})"
    help_line = f"{help_text} [env {config.env_name(field)}]"
    parser.add_argument(name, dest=field, default=None, help=help_line, **kwargs)


def _serve_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser("serve", help="run a workspace")
    _flag(serve, "--data-dir", "directory for the SQLite store and the workspace secret")
    _flag(serve, "--host", "address to listen on (default 127.0.0.1)")
    _flag(serve, "--port", "port to listen on, 0 for any free one (default 8080)", type=int)
    _flag(serve, "--name", "this workspace's name")
    _flag(serve, "--database-url", "PostgreSQL URL instead of SQLite in the data directory")
    _flag(serve, "--secret-file", "file holding the workspace secret (default DATA_DIR/secret.key)")
    _flag(serve, "--tls-cert", "PEM certificate to serve HTTPS with")
    _flag(serve, "--tls-key", "PEM private key of --tls-cert")
    _flag(serve, "--long-poll-s", "seconds a link's long-poll request is held open", type=float)
    _flag(
        serve,
        "--no-runner",
        "run no executions here (API, UI and links only); needs PostgreSQL and `tether worker`s",
        action="store_true",
    )
    _flag(
        serve,
        "--process-name",
        "this process's name in the workspace's process list (default: the host's name)",
    )
    _execution_flags(serve)
    _session_flags(serve)


def _worker_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = commands.add_parser(
        "worker", help="run a PostgreSQL workspace's executions (no HTTP, no links)"
    )
    _flag(worker, "--database-url", "the workspace's PostgreSQL URL (required)")
    _flag(
        worker,
        "--name",
        "this worker's name in the workspace's process list (default: the host's name)",
        field="process_name",
    )
    _execution_flags(worker)


def _execution_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of running executions, shared by `serve` and `worker`."""
    _flag(
        parser, "--max-running", "how many executions run at once; the rest wait queued", type=int
    )
    _flag(
        parser,
        "--cancel-grace-s",
        "seconds a cancelled script gets before its processes are killed",
        type=float,
    )
    _flag(
        parser,
        "--lease-s",
        "seconds this process's lease lasts; it renews it six times as often, and one that "
        "could not is counted dead and its executions end (default 30)",
        type=float,
    )
    _sandbox_flags(parser)


def _sandbox_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the sandbox around every execution (docs/security.md)."""
    _flag(
        parser,
        "--sandbox",
        "'on' (default): confine every execution; 'off': flows get the server's own powers",
        choices=config.SANDBOX_MODES,
    )
    _flag(
        parser,
        "--sandbox-writable",
        "a directory flows may write (repeatable; the variable takes several, "
        f"'{os.pathsep}'-separated)",
        action="append",
        metavar="DIR",
    )
    _flag(
        parser,
        "--sandbox-env",
        "a variable flows see: NAME passes this server's value on, NAME=VALUE sets one "
        f"(repeatable; '{os.pathsep}'-separated in the variable)",
        action="append",
        metavar="NAME[=VALUE]",
    )
    _flag(
        parser, "--run-as", "the account executions run as when the server is root (default nobody)"
    )
    _flag(
        parser,
        "--execution-memory-mb",
        "address space of one execution's process, in MiB (default 4096)",
        type=int,
    )
    _flag(
        parser,
        "--execution-processes",
        "processes the execution account may have at once (default 4096)",
        type=int,
    )
    _flag(
        parser,
        "--execution-open-files",
        "open files of one execution's process (default 1024)",
        type=int,
    )
    _flag(
        parser,
        "--execution-log-mb",
        "one execution's whole log, in MiB; past it the log says it was cut and keeps no more "
        "(default 256)",
        type=int,
    )


def _session_flags(serve: argparse.ArgumentParser) -> None:
    _flag(
        serve,
        "--session-ttl-s",
        "seconds an API token or UI session lasts after login at most (default 43200: 12 h)",
        type=float,
    )
    _flag(
        serve,
        "--session-idle-s",
        "seconds without use after which an API token or UI session ends (default 3600)",
        type=float,
    )


def serve(args: argparse.Namespace) -> int:
    from tether import errors, malloc
    from tether.web import server
    from tether.web.app import create_app

    malloc.tune()
    try:
        settings = config.load(**{k: v for k, v in vars(args).items() if k != "command"})
        app = create_app(settings)
    except errors.SettingsInvalid as exc:
        return _fail(exc.message)
    if not settings.is_sandbox_on:
        logging.getLogger("tether").warning(
            "the sandbox is off (--sandbox off): every flow runs with this server's own powers"
        )
    server.serve(app, settings)
    return 0


def worker(args: argparse.Namespace) -> int:
    import asyncio

    from tether import errors, malloc
    from tether.runner import sandbox

    malloc.tune()
    try:
        settings = config.load(**{k: v for k, v in vars(args).items() if k != "command"})
        config.require_shared_store(settings, "tether worker")
        if settings.is_sandbox_on:
            sandbox.check_kernel()
        confinement = sandbox.policy(settings)
        asyncio.run(_run_worker(settings, confinement))
    except errors.TetherError as exc:
        return _fail(exc.message)
    return 0


async def _run_worker(settings: config.Settings, confinement: dict[str, Any] | None) -> None:
    """Join the workspace's processes and run executions until SIGTERM or SIGINT."""
    import asyncio
    import signal

    from tether.actions.context import Context
    from tether.actions.events import Events
    from tether.actions.membership import Membership
    from tether.actions.wakeups import Wakeups, origin_token
    from tether.runner.runner import Runner
    from tether.store.database import Database

    database = Database(settings.resolved_database_url)
    try:
        database.migrate()
        ctx = Context(database, Events(), settings.name, origin=origin_token())
        loop = asyncio.get_running_loop()
        ctx.events.bind(loop)
        wakeups = Wakeups(ctx)
        membership = Membership(
            ctx, kind="worker", name=settings.process_name, lease_s=settings.lease_s
        )
        runner = Runner(
            ctx,
            membership=membership,
            max_running=settings.max_running,
            cancel_grace_s=settings.cancel_grace_s,
            sandbox=confinement,
        )
        await wakeups.start()
        await membership.start()
        await runner.start()
        print(f"tether worker running executions as process {membership.process_id}", flush=True)
        stopping = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stopping.set)
        await stopping.wait()
        await runner.stop()
        await membership.stop()
        await wakeups.stop()
        await loop.shutdown_default_executor()
    finally:
        database.dispose()


def keygen(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from tether.link import keys

    path = Path(args.path)
    public_path = Path(f"{path}.pub")
    if args.bits < keys.MIN_BITS:
        return _fail(f"--bits {args.bits} is too small: links need {keys.MIN_BITS} bits or more")
    for existing in (path, public_path):
        if existing.exists():
            return _fail(f"{existing} exists: keygen never overwrites a key; pick another PATH")
    key = keys.generate_private_key(args.bits)
    try:
        # Created 0600 from the start (O_EXCL), so the key is never readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(keys.private_pem(key))
        with public_path.open("x") as handle:
            handle.write(keys.public_pem(key))
    except OSError as exc:
        return _fail(f"cannot write {exc.filename}: {exc.strerror}")
    print(f"wrote {path} (private, mode 0600) and {public_path}")
    print(f"fingerprint: {keys.fingerprint(key.public_key())}")
    return 0


def _fail(message: str) -> int:
    """Print a command's error for a person to read; the exit status to return."""
    print(f"tether: {message}", file=sys.stderr)
    return 1


def demo(args: argparse.Namespace) -> int:
    from tether import demo as demo_module

    return demo_module.main(once=args.once)


# --- tether admin: offline administration on the store itself ---------------------------

MIN_PASSWORD_CHARS = 8


def _admin_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    admin = commands.add_parser("admin", help="offline administration on the store itself")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    reset = admin_commands.add_parser(
        "reset-password",
        help="set a user's password and end their sessions; the new password is read from "
        f"{config.env_name('new_password')}, else from standard input, else prompted for",
    )
    reset.add_argument("user", help="the user whose password to set")
    _flag(reset, "--data-dir", "the workspace's data directory (its SQLite store)")
    _flag(reset, "--database-url", "the workspace's PostgreSQL URL instead of --data-dir")


def _new_password() -> str:
    """The new password: from TETHER_NEW_PASSWORD, a piped standard input, or asked twice."""
    import getpass

    given = config.read_env("new_password")
    if given:
        return given
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def reset_password(args: argparse.Namespace) -> int:
    from tether import errors
    from tether.actions import users
    from tether.actions.context import Context
    from tether.actions.events import Events
    from tether.store.database import Database

    settings = config.load(data_dir=args.data_dir, database_url=args.database_url)
    if not settings.database_url and not settings.sqlite_path.exists():
        return _fail(f"no store at {settings.sqlite_path}: give the workspace's --data-dir")
    try:
        password = _new_password()
    except ValueError as exc:
        return _fail(str(exc))
    if len(password) < MIN_PASSWORD_CHARS:
        return _fail(f"the password needs {MIN_PASSWORD_CHARS} characters or more")
    database = Database(settings.resolved_database_url)
    try:
        database.migrate()
        user = users.reset_password(Context(database, Events(), settings.name), args.user, password)
    except errors.TetherError as exc:
        return _fail(exc.message)
    finally:
        database.dispose()
    disabled = "" if user.is_enabled else " (the user is disabled: an admin must enable it)"
    print(f"set the password of '{user.name}' and ended their sessions{disabled}")
    return 0


def admin(args: argparse.Namespace) -> int:
    return {"reset-password": reset_password}[args.admin_command](args)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Their INFO lines (each migration step, each HTTP request) say nothing to an operator.
    for chatty in ("alembic", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(
        prog="tether", description="self-hosted automation with signed workspace links"
    )
    parser.add_argument("--version", action="version", version=f"tether {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    _worker_parser(commands)
    keygen_parser = commands.add_parser("keygen", help="write an RSA key pair for a link")
    keygen_parser.add_argument(
        "path", help="private key file (mode 0600); the public key goes to PATH.pub"
    )
    keygen_parser.add_argument(
        "--bits", type=int, default=3072, help="key size, 2048 or more (default 3072)"
    )
    demo_parser = commands.add_parser(
        "demo", help="two linked workspaces on loopback running a flow remotely"
    )
    demo_parser.add_argument("--once", action="store_true", help="exit after printing the result")
    _admin_parser(commands)
    client.add_commands(commands)
    args = parser.parse_args(argv)
    handlers = {"serve": serve, "worker": worker, "keygen": keygen, "demo": demo, "admin": admin}
    return handlers.get(args.command, client.main)(args)


def _version() -> str:
    try:
        return importlib.metadata.version("tether")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


if __name__ == "__main__":
    sys.exit(main())
