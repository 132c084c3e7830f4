"""The sandbox around every execution, as a flow sees it: what works, what is cut off.

The attacks are in tests/acceptance/test_sandbox_attacks.py; here: the flow's environment,
its scratch directory, its limits, its programs' output, and how the server reports it all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient, flow_writable_dir
from tether import config, errors
from tether.runner import landlock
from tether.web.app import create_app


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the sandbox does not depend on the store."""
    return f"sqlite:///{tmp_path / 'store.sqlite3'}"


def run_script(api: ApiClient, script: str, **inputs: object) -> dict[str, Any]:
    api.create_flow("probe", script)
    return api.run("probe", input_value=inputs)


def test_programs_a_script_starts_write_into_its_log(api: ApiClient) -> None:
    ended = run_script(
        api,
        "import os, subprocess\n"
        "def handler(system, this):\n"
        "    subprocess.run(['sh', '-c', 'echo from a program; echo to stderr >&2'])\n"
        "    os.system('echo from os.system')\n"
        "    os.write(1, b'written to fd 1 without a newline')\n",
    )
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    entries = api.ok("GET", f"/execution/{ended['id']}/log")
    seen = {(e["message"], e["fields"].get("stream", "stdout")) for e in entries}
    assert ("from a program", "stdout") in seen
    assert ("to stderr", "stderr") in seen
    assert ("from os.system", "stdout") in seen
    assert ("written to fd 1 without a newline", "stdout") in seen


def test_a_flow_gets_a_clean_environment_and_its_own_scratch_directory(
    api_with: Callable[..., ApiClient],
) -> None:
    api = api_with(sandbox_env=("GREETING=hello",))
    ended = run_script(
        api,
        "import os, tempfile\n"
        "def handler(system, this):\n"
        "    with tempfile.NamedTemporaryFile(delete=False) as f:\n"
        "        f.write(b'x')\n"
        "    this.save(output_value={'env': dict(os.environ), 'cwd': os.getcwd(),\n"
        "                            'temp': f.name, 'fds': sorted(os.listdir('/proc/self/fd')),\n"
        "                            'status': open('/proc/self/status').read()})\n",
    )
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    out = ended["output_value"]
    env = out["env"]
    assert set(env) == {"PATH", "LANG", "HOME", "TMPDIR", "GREETING"} | ({"TZ"} & set(env))
    assert env["GREETING"] == "hello"
    assert env["HOME"] == env["TMPDIR"] == out["cwd"]
    assert os.path.dirname(out["temp"]) == out["cwd"]
    # 0, 1, 2, the channel, and the descriptor listdir itself opened: nothing inherited
    assert len(out["fds"]) == 5, out["fds"]
    assert "NoNewPrivs:\t1" in out["status"]
    # A root server's children lose the bounding set too (the fork server drops it once).
    empty = ["CapInh", "CapPrm", "CapEff", "CapAmb"] + (["CapBnd"] if os.geteuid() == 0 else [])
    for capabilities in empty:
        assert f"{capabilities}:\t0000000000000000" in out["status"], capabilities
    # removed once the child is reaped
    wait_until(lambda: not os.path.exists(out["cwd"]), f"{out['cwd']} to be removed", 10)


def test_a_flow_writes_only_its_scratch_and_the_listed_directories(
    api_with: Callable[..., ApiClient], tmp_path: Path
) -> None:
    listed = flow_writable_dir("tether-listed-")
    api = api_with(sandbox_writable=(listed,))
    unlisted = tmp_path / "unlisted"
    unlisted.mkdir()
    ended = run_script(
        api,
        "def handler(system, this, inputs):\n"
        "    results = {}\n"
        "    for name in ('listed', 'unlisted'):\n"
        "        try:\n"
        "            open(inputs[name] + '/file', 'w').write('x')\n"
        "            results[name] = 'written'\n"
        "        except OSError as exc:\n"
        "            results[name] = exc.strerror\n"
        "    this.save(output_value=results)\n",
        listed=str(listed),
        unlisted=str(unlisted),
    )
    assert ended["output_value"] == {"listed": "written", "unlisted": "Permission denied"}
    assert (listed / "file").exists() and not (unlisted / "file").exists()


def test_resource_limits_hold_and_an_admin_can_raise_them(
    api_with: Callable[..., ApiClient],
) -> None:
    api = api_with(execution_open_files=64, execution_memory_mb=512)
    ended = run_script(
        api,
        "import resource\n"
        "def handler(system, this):\n"
        "    this.save(output_value={k: resource.getrlimit(getattr(resource, k)) for k in\n"
        "        ('RLIMIT_NOFILE', 'RLIMIT_AS', 'RLIMIT_CORE', 'RLIMIT_NPROC')})\n"
        "    b'x' * (600 * 1024 * 1024)\n",
    )
    limits = ended["output_value"]
    assert limits["RLIMIT_NOFILE"] == [64, 64]
    assert limits["RLIMIT_AS"] == [512 * 1024 * 1024] * 2
    assert limits["RLIMIT_CORE"] == [0, 0]
    assert limits["RLIMIT_NPROC"] == [4096, 4096]
    assert ended["status"] == "ENDED_ERROR"
    assert "ran out of memory" in ended["message"]


def test_health_says_how_executions_are_confined(
    api_with: Callable[..., ApiClient],
) -> None:
    on = api_with().client.get("/health").json()
    assert on["sandbox"] == "on"
    assert "uid" in on["identity"]
    off = api_with(sandbox="off").client.get("/health").json()
    assert off == {"status": "ok", "workspace": "test", "sandbox": "off"}


def test_without_landlock_the_server_refuses_to_start_unless_the_sandbox_is_off(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel is the boundary faked here: this one offers Landlock."""
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    with pytest.raises(errors.SandboxUnavailable, match=r"no Landlock.*--sandbox off"):
        create_app(settings)
    assert not settings.data_dir.exists()  # refused before anything was written
    import dataclasses

    create_app(dataclasses.replace(settings, sandbox="off"))


def test_sandbox_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cases = {
        "say 'on' or 'off'": {"sandbox": "maybe"},
        "TETHER_": {"sandbox_env": "TETHER_ADMIN_PASSWORD"},
        "no such directory": {"sandbox_writable": str(tmp_path / "missing")},
        "overlaps": {"sandbox_writable": str(tmp_path)},
        "positive": {"execution_memory_mb": "0"},
        "no such account": {"run_as": "no-such-account-here"},
    }
    for expected, flags in cases.items():
        with pytest.raises(errors.SettingsInvalid, match=expected):
            settings = config.load(data_dir=str(data), **flags)
            create_app(settings)
