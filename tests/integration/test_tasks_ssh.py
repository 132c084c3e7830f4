"""this.task('SSH'/'SFTP'/'SCP') and SSH connectors against Debian's sshd on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.connector_servers import Sshd, sshd_server
from tests.support.workspace import ApiClient

# One account per test process: parallel workers each make and remove their own (sharing
# one, a worker removed it while another still logged in with it).
PASSWORD_USER = f"tether-ssh-{os.getpid()}"
PASSWORD = "ssh-test-Passw0rd"


@contextlib.contextmanager
def password_account() -> Iterator[tuple[str, str] | None]:
    """A throwaway local account with a password (as root), removed afterwards; else None."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        yield None
        return
    existed = subprocess.run(["id", PASSWORD_USER], capture_output=True).returncode == 0
    if not existed:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", PASSWORD_USER], check=True)
    subprocess.run(["chpasswd"], input=f"{PASSWORD_USER}:{PASSWORD}", text=True, check=True)
    try:
        yield PASSWORD_USER, PASSWORD
    finally:
        if not existed:
            subprocess.run(["userdel", PASSWORD_USER], capture_output=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with (
        password_account() as account,
        sshd_server(tmp_path_factory.mktemp("sshd"), account) as server,
    ):
        yield server


def flow(api: ApiClient, name: str, script: str) -> None:
    api.create_flow(name, textwrap.dedent(script))


def run_task(api: ApiClient, task_type: str, **inputs: Any) -> dict[str, Any]:
    """Run one task from a parent flow (inputs passed through a setting) and return the task."""
    api.set_setting("inputs", inputs)
    if api.get("/flow/caller").status_code == 404:
        flow(
            api,
            "caller",
            """
            def handler(system, this, inputs):
                task_inputs = system.setting('inputs').get('value')
                this.task(inputs['type'], wait=system.return_when.ALL_ENDED, **task_inputs)
            """,
        )
    parent = api.run("caller", input_value={"type": task_type})
    assert parent["status"] == "ENDED_SUCCESS", parent
    tasks: list[dict[str, Any]] = api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    [task] = tasks
    return task


def key_login(sshd: Sshd, **more: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "key": sshd.client_key,
        "host_key": sshd.host_key_line,
        **more,
    }


def test_a_script_runs_with_a_key_and_a_pinned_host_key(api: ApiClient, sshd: Sshd) -> None:
    task = run_task(api, "SSH", **key_login(sshd, script="echo out; echo err >&2; id -un"))
    assert task["status"] == "ENDED_SUCCESS", task
    assert task["output_value"] == {
        "stdout": f"out\n{sshd.user}\n",
        "stderr": "err\n",
        "exit_code": 0,
    }
    assert task["input_value"]["key"] == "********"
    assert "OPENSSH PRIVATE KEY" not in json.dumps(task)


def test_a_fingerprint_pin_and_known_hosts_are_accepted(api: ApiClient, sshd: Sshd) -> None:
    pinned = run_task(api, "SSH", **key_login(sshd, host_key=sshd.host_fingerprint, script="true"))
    assert pinned["status"] == "ENDED_SUCCESS", pinned
    known = f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n"
    checked = run_task(
        api, "SSH", **key_login(sshd, host_key=None, known_hosts=known, script="true")
    )
    assert checked["status"] == "ENDED_SUCCESS", checked


def test_an_unvouched_or_wrong_host_key_is_refused(api: ApiClient, sshd: Sshd) -> None:
    unvouched = run_task(api, "SSH", **key_login(sshd, host_key=None, script="true"))
    assert unvouched["status"] == "ENDED_ERROR"
    assert f"pin it with host_key='{sshd.host_fingerprint}'" in unvouched["message"]
    wrong = "SHA256:" + "A" * 43
    mismatched = run_task(api, "SSH", **key_login(sshd, host_key=wrong, script="true"))
    assert mismatched["status"] == "ENDED_ERROR"
    assert f"is {sshd.host_fingerprint}, not the pinned {wrong}" in mismatched["message"]


def test_a_failing_script_fails_the_task_with_its_exit_code_and_stderr(
    api: ApiClient, sshd: Sshd
) -> None:
    failed = run_task(api, "SSH", **key_login(sshd, script="echo broken >&2; exit 3"))
    assert failed["status"] == "ENDED_ERROR"
    assert "exited with code 3: broken" in failed["message"]
    assert failed["output_value"]["exit_code"] == 3
    tolerated = run_task(api, "SSH", **key_login(sshd, script="exit 3", check_exit_code=False))
    assert tolerated["status"] == "ENDED_SUCCESS"
    assert tolerated["output_value"]["exit_code"] == 3


def test_password_login_and_a_wrong_password(api: ApiClient, sshd: Sshd) -> None:
    if sshd.password is None:
        pytest.skip("a password login needs a local account with a password: run as root")
    common = {"host": "127.0.0.1", "port": sshd.port, "host_key": sshd.host_key_line}
    task = run_task(
        api, "SSH", **common, user=sshd.password_user, password=sshd.password, script="id -un"
    )
    assert task["status"] == "ENDED_SUCCESS", task
    assert task["output_value"]["stdout"] == f"{sshd.password_user}\n"
    assert task["input_value"]["password"] == "********"
    refused = run_task(
        api, "SSH", **common, user=sshd.password_user, password="wrong", script="true"
    )
    assert refused["status"] == "ENDED_ERROR"
    assert f"{sshd.password_user}@127.0.0.1:{sshd.port} refused the login" in refused["message"]


@pytest.mark.parametrize("task_type", ["SFTP", "SCP"])
def test_files_are_copied_between_the_workspace_and_the_host(
    api: ApiClient, sshd: Sshd, tmp_path: Path, task_type: str
) -> None:
    api.ok("POST", "/file", json={"name": "upload.bin", "content_base64": "AAEC/w=="})
    remote = tmp_path / "copied.bin"
    put = run_task(
        api, task_type, **key_login(sshd, src="cloudomation:upload.bin", dst=str(remote))
    )
    assert put["status"] == "ENDED_SUCCESS", put
    assert remote.read_bytes() == bytes([0, 1, 2, 255])
    remote.write_bytes(b"from the host")
    got = run_task(
        api, task_type, **key_login(sshd, src=str(remote), dst="workspace:downloaded.txt")
    )
    assert got["status"] == "ENDED_SUCCESS", got
    assert got["output_value"]["copied"][0]["size"] == len(b"from the host")
    assert api.ok("GET", "/file/downloaded.txt")["content"] == "from the host"
    missing = run_task(
        api, task_type, **key_login(sshd, src=str(tmp_path / "nope"), dst="workspace:x")
    )
    assert missing["status"] == "ENDED_ERROR"
    assert "the host answered" in missing["message"] and "No such file" in missing["message"]


def test_an_ssh_connector_keeps_host_user_key_and_host_key_from_the_flow(
    api: ApiClient, sshd: Sshd
) -> None:
    api.ok(
        "POST",
        "/connector",
        json={
            "name": "box",
            "type": "SSH",
            "host": "127.0.0.1",
            "value": {"port": sshd.port, "user": sshd.user, "host_key": sshd.host_fingerprint},
            "credentials": {"key": sshd.client_key},
        },
    )
    flow(
        api,
        "df",
        """
        def handler(system, this):
            task = this.connect('box', script='echo connected')
            this.set_output('stdout', task.get('output_value')['stdout'])
        """,
    )
    parent = api.run("df")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"]["stdout"] == "connected\n"
    [task] = api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert task["input_value"] == {"connector": "box", "script": "echo connected"}
