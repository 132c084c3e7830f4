"""The client commands: log in to a running workspace, run flows, push and pull flow scripts.

They speak only the public API (docs/operators-guide.md, "The command line"); the URL and
token come from `tether login` (a file private to the user) or from TETHER_URL and
TETHER_TOKEN, which win over the file.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tether.statuses import ENDED, Status

FOLLOW_POLL_S = 0.25
LOG_PAGE = 1000
TIMEOUT_S = 30.0


class ClientError(Exception):
    """What went wrong, in words for the terminal; the command exits 1 with it."""


def credentials_file() -> Path:
    """Where `tether login` keeps the URL and token: the user's configuration directory."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tether" / "login.json"


def _save_login(login: dict[str, Any]) -> Path:
    path = credentials_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # Created private (mode 0600, whatever the umask), then moved into place whole.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(login, handle)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def _load_login() -> dict[str, Any]:
    url, token = os.environ.get("TETHER_URL"), os.environ.get("TETHER_TOKEN")
    if url and token:
        return {"url": url, "token": token, "ca_file": os.environ.get("TETHER_CA_FILE")}
    path = credentials_file()
    try:
        login: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(
            "not logged in: run 'tether login URL --user NAME', or set TETHER_URL and TETHER_TOKEN"
        ) from None
    except (OSError, ValueError) as exc:
        raise ClientError(f"{path} is unreadable ({exc}): run 'tether login' again") from exc
    return login


class Api:
    """The workspace's REST API at ``url``, with a bearer token once logged in."""

    def __init__(self, url: str, token: str | None = None, ca_file: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: Any = ca_file if ca_file else True
        self._http = httpx.Client(
            base_url=f"{self.url}/api/latest", headers=headers, verify=verify, timeout=TIMEOUT_S
        )

    @classmethod
    def logged_in(cls) -> Api:
        login = _load_login()
        return cls(login["url"], login["token"], login.get("ca_file"))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code == 401 and "Authorization" in self._http.headers:
            raise ClientError(
                f"{self.url} refused the token ({_message(response)}): run 'tether login' again"
            )
        if response.is_error:
            raise ClientError(f"{self.url} answered {response.status_code}: {_message(response)}")
        return response.json() if response.content else None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500] or response.reason_phrase


def login(args: argparse.Namespace) -> int:
    password = os.environ.get("TETHER_PASSWORD") or getpass.getpass(f"password of {args.user}: ")
    answer = Api(args.url, ca_file=args.ca_file).call(
        "POST", "/auth/login", json={"user_name": args.user, "password": password}
    )
    saved = {"url": args.url.rstrip("/"), "token": answer["token"], "user": args.user}
    if args.ca_file:
        saved["ca_file"] = str(Path(args.ca_file).resolve())
    path = _save_login(saved)
    print(f"logged in to {saved['url']} as {args.user}; the token is in {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        input_value = json.loads(args.input) if args.input is not None else None
    except ValueError as exc:
        raise ClientError(f"--input is not JSON ({exc}): e.g. --input '{{\"n\": 1}}'") from exc
    api = Api.logged_in()
    body = {"flow_name": args.flow, "input_value": input_value}
    if args.remote:
        body["remote_workspace_name"] = args.remote
    execution = api.call("POST", "/execution", json=body)
    if not args.follow:
        print(f"started execution {execution['id']} ({execution['status']})")
        return 0
    ended = _follow(api, execution["id"])
    if ended.get("output_value") is not None:
        print(json.dumps(ended["output_value"], indent=2))
    if ended["status"] != Status.ENDED_SUCCESS:
        print(f"execution {ended['id']} {ended['status']}: {ended.get('message')}", file=sys.stderr)
        return 1
    return 0


def _follow(api: Api, execution_id: str) -> dict[str, Any]:
    """Print the execution's log as it comes; its record once it has ended."""
    offset = 0
    while True:
        execution = api.call("GET", f"/execution/{execution_id}")
        while entries := api.call(
            "GET", f"/execution/{execution_id}/log", params={"offset": offset, "limit": LOG_PAGE}
        ):
            for entry in entries:
                stream = sys.stderr if entry["fields"].get("stream") == "stderr" else sys.stdout
                print(entry["message"], file=stream, flush=True)
            offset += len(entries)
        if execution["status"] in ENDED:
            return dict(execution)  # read before the last log page: nothing came after it
        time.sleep(FOLLOW_POLL_S)


def flow_push(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise ClientError(f"{directory} is not a directory")
    scripts = {path.stem: path.read_text() for path in sorted(directory.glob("*.py"))}
    if not scripts:
        raise ClientError(f"{directory} holds no NAME.py file: nothing to push")
    flows = [{"name": name, "script": script} for name, script in scripts.items()]
    changes = Api.logged_in().call("POST", "/flow/apply", json={"flows": flows})
    for change in ("created", "updated", "unchanged"):
        for name in changes[change]:
            print(f"{change:9} {name}")
    return 0


def flow_pull(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    for flow in Api.logged_in().call("GET", "/flow"):
        path = directory / f"{flow['name']}.py"
        before = path.read_text() if path.exists() else None
        if before == flow["script"]:
            print(f"unchanged {flow['name']}")
            continue
        path.write_text(flow["script"])
        print(f"{'created' if before is None else 'updated':9} {flow['name']}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The client commands, for the command line's parser."""
    login_parser = commands.add_parser("login", help="log in to a running workspace")
    login_parser.add_argument("url", help="the workspace's address, e.g. https://host:8080")
    login_parser.add_argument("--user", required=True, help="user name")
    login_parser.add_argument(
        "--ca-file", help="PEM file of the CA that signed the workspace's certificate"
    )
    run_parser = commands.add_parser("run", help="start a flow in the logged-in workspace")
    run_parser.add_argument("flow", help="name of the flow")
    run_parser.add_argument("--input", help="the execution's input, as JSON")
    run_parser.add_argument("--remote", metavar="SYNC_CONFIG", help="run it over this link")
    run_parser.add_argument(
        "--follow",
        action="store_true",
        help="print the log as it comes, then the output; exit 0 only on ENDED_SUCCESS",
    )
    flow_parser = commands.add_parser("flow", help="keep flow scripts in a directory")
    flow_commands = flow_parser.add_subparsers(dest="flow_command", required=True)
    push = flow_commands.add_parser(
        "push", help="each NAME.py in DIRECTORY becomes flow NAME; all or nothing"
    )
    push.add_argument("directory")
    pull = flow_commands.add_parser("pull", help="write each flow to DIRECTORY/NAME.py")
    pull.add_argument("directory")


def main(args: argparse.Namespace) -> int:
    """Run the client command in ``args``; a ClientError becomes a message and exit 1."""
    handlers = {"login": login, "run": run}
    handler = (
        handlers.get(args.command) or {"push": flow_push, "pull": flow_pull}[args.flow_command]
    )
    try:
        return handler(args)
    except ClientError as exc:
        print(f"tether {args.command}: {exc}", file=sys.stderr)
        return 1
