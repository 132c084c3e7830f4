"""The client commands against a real `tether serve`: login, run, flow push and pull."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workspace import ADMIN_PASSWORD, ApiClient, ServedWorkspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorkspace]:
    served = ServedWorkspace("client", tmp_path_factory.mktemp("client") / "data").start()
    yield served
    served.stop()


@pytest.fixture
def api(workspace: ServedWorkspace) -> Iterator[ApiClient]:
    client = workspace.client()
    yield client
    client.client.close()


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


def tether(config_home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the `tether` command line as a user would, with its own configuration directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    return subprocess.run(
        [sys.executable, "-m", "tether.cli", *args],
        env={**clean, "XDG_CONFIG_HOME": str(config_home), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def logged_in(workspace: ServedWorkspace, config_home: Path) -> None:
    done = tether(
        config_home, "login", workspace.url, "--user", "admin", TETHER_PASSWORD=ADMIN_PASSWORD
    )
    assert done.returncode == 0, done.stderr


def test_login_keeps_the_token_in_a_file_only_the_user_can_read(
    workspace: ServedWorkspace, config_home: Path
) -> None:
    logged_in(workspace, config_home)
    path = config_home / "tether" / "login.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["url"] == workspace.url and saved["user"] == "admin" and saved["token"]


def test_a_wrong_password_is_said_and_saves_nothing(
    workspace: ServedWorkspace, config_home: Path
) -> None:
    done = tether(config_home, "login", workspace.url, "--user", "admin", TETHER_PASSWORD="wrong")
    assert done.returncode == 1
    assert "answered 401" in done.stderr, done.stderr
    assert not (config_home / "tether" / "login.json").exists()


def test_without_a_login_the_commands_say_how_to_log_in(config_home: Path) -> None:
    done = tether(config_home, "run", "anything")
    assert done.returncode == 1
    assert "not logged in: run 'tether login URL --user NAME'" in done.stderr


def test_run_follow_prints_the_log_and_the_output_and_exits_0_on_success(
    workspace: ServedWorkspace, api: ApiClient, config_home: Path
) -> None:
    api.create_flow(
        "client-greets",
        "def handler(system, this, inputs):\n"
        "    print('hello', inputs['who'])\n"
        "    this.save(output_value={'greeted': inputs['who']})\n",
    )
    logged_in(workspace, config_home)
    done = tether(config_home, "run", "client-greets", "--input", '{"who": "ops"}', "--follow")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "hello ops"
    assert json.loads(done.stdout.split("\n", 1)[1]) == {"greeted": "ops"}


def test_run_follow_exits_1_when_the_execution_fails(
    workspace: ServedWorkspace, api: ApiClient, config_home: Path
) -> None:
    api.create_flow("client-fails", "def handler(system, this):\n    raise ValueError('no')\n")
    logged_in(workspace, config_home)
    done = tether(config_home, "run", "client-fails", "--follow")
    assert done.returncode == 1
    assert "ENDED_ERROR" in done.stderr and "ValueError: no" in done.stderr


def test_run_without_follow_says_which_execution_started(
    workspace: ServedWorkspace, api: ApiClient, config_home: Path
) -> None:
    api.create_flow("client-quick", "def handler(system, this):\n    pass\n")
    done = tether(
        config_home,
        "run",
        "client-quick",
        TETHER_URL=workspace.url,
        TETHER_TOKEN=api.token,
    )
    assert done.returncode == 0, done.stderr
    execution_id = done.stdout.split()[2]
    assert api.wait_ended(execution_id)["status"] == "ENDED_SUCCESS"


def test_bad_input_and_unknown_flows_get_a_clear_message(
    workspace: ServedWorkspace, config_home: Path
) -> None:
    logged_in(workspace, config_home)
    bad_json = tether(config_home, "run", "client-quick", "--input", "{nope")
    assert bad_json.returncode == 1
    assert "--input is not JSON" in bad_json.stderr
    unknown = tether(config_home, "run", "no-such-flow")
    assert unknown.returncode == 1
    assert "answered 404" in unknown.stderr and "no-such-flow" in unknown.stderr


def test_a_revoked_token_is_told_to_log_in_again(
    workspace: ServedWorkspace, api: ApiClient, config_home: Path
) -> None:
    logged_in(workspace, config_home)
    token = json.loads((config_home / "tether" / "login.json").read_text())["token"]
    revoked = ApiClient(api.client, token)
    assert revoked.post("/auth/logout").status_code == 204
    done = tether(config_home, "run", "client-quick")
    assert done.returncode == 1
    assert "refused the token" in done.stderr and "tether login" in done.stderr


def test_flow_push_creates_updates_and_reports_each_flow(
    workspace: ServedWorkspace, api: ApiClient, config_home: Path, tmp_path: Path
) -> None:
    api.create_flow("push-old", "def handler(system, this):\n    pass\n")
    api.create_flow("push-same", "def handler(system, this):\n    return None\n")
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "push-new.py").write_text("def handler(system, this):\n    print('new')\n")
    (flows / "push-old.py").write_text("def handler(system, this):\n    print('changed')\n")
    (flows / "push-same.py").write_text("def handler(system, this):\n    return None\n")
    (flows / "notes.txt").write_text("not a flow")
    logged_in(workspace, config_home)
    done = tether(config_home, "flow", "push", str(flows))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "created",
        "push-new",
        "updated",
        "push-old",
        "unchanged",
        "push-same",
    ]
    assert "print('changed')" in api.ok("GET", "/flow/push-old")["script"]


def test_flow_push_writes_nothing_when_any_script_is_refused(
    workspace: ServedWorkspace, api: ApiClient, config_home: Path, tmp_path: Path
) -> None:
    api.create_flow("refusal-kept", "def handler(system, this):\n    pass\n")
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "refusal-kept.py").write_text("def handler(system, this):\n    print('changed')\n")
    (flows / "refusal-new.py").write_text("def handler(system, this):\n    pass\n")
    (flows / "refusal-broken.py").write_text("def handler(system, this)\n    pass\n")
    logged_in(workspace, config_home)
    done = tether(config_home, "flow", "push", str(flows))
    assert done.returncode == 1
    assert "nothing was saved" in done.stderr and "refusal-broken" in done.stderr
    assert api.get("/flow/refusal-new").status_code == 404
    assert "print" not in api.ok("GET", "/flow/refusal-kept")["script"]


def test_flow_pull_writes_each_flow_to_its_file(
    workspace: ServedWorkspace, api: ApiClient, config_home: Path, tmp_path: Path
) -> None:
    script = "def handler(system, this):\n    print('pulled')\n"
    api.create_flow("pull-me", script)
    logged_in(workspace, config_home)
    done = tether(config_home, "flow", "pull", str(tmp_path / "pulled"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pulled" / "pull-me.py").read_text() == script
    assert "created   pull-me" in done.stdout
    again = tether(config_home, "flow", "pull", str(tmp_path / "pulled"))
    assert "unchanged pull-me" in again.stdout


def test_version_is_printed(config_home: Path) -> None:
    done = tether(config_home, "--version")
    assert done.returncode == 0
    assert done.stdout.startswith("tether ")
