"""The pure parts of tasks: masking what a task shows, sealing credentials, refusing overrides."""

from __future__ import annotations

import pytest

from tether import errors
from tether.actions import connectors, tasks


def test_masked_hides_secret_inputs_and_headers_and_keeps_the_rest() -> None:
    shown = tasks.masked(
        {
            "url": "https://x/",
            "password": "p",
            "Token": "t",
            "auth": ["u", "p"],
            "headers": {"Authorization": "Bearer t", "Accept": "json", "cookie": "c"},
            "key": None,
        }
    )
    assert shown == {
        "url": "https://x/",
        "password": tasks.MASK,
        "Token": tasks.MASK,
        "auth": tasks.MASK,
        "headers": {"Authorization": tasks.MASK, "Accept": "json", "cookie": tasks.MASK},
        "key": None,
    }


@pytest.mark.parametrize("task_type", connectors.TASK_TYPES)
def test_the_built_in_script_of_each_type_compiles_and_names_it(task_type: str) -> None:
    script = tasks.script_of(task_type)
    compile(script, "<task>", "exec", dont_inherit=True)
    assert f"built-in task {task_type}" in script
    assert f"tasks.run(system, this, {task_type!r})" in script


def test_sealed_credentials_open_only_with_the_same_secret() -> None:
    sealed = connectors.seal(b"s" * 32, {"password": "hunter2"})
    assert "hunter2" not in sealed
    assert connectors.unseal(b"s" * 32, sealed) == {"password": "hunter2"}
    with pytest.raises(errors.ConnectorInvalid, match="cannot be decrypted"):
        connectors.unseal(b"t" * 32, sealed)


def test_a_flow_cannot_override_what_a_connector_sets_under_any_alias() -> None:
    fixed = {"host": "db", "user": "ops", "password": "p"}
    tasks._refuse_overrides("box", fixed, {"script": "df -h", "timeout": 5})
    for name in ("host", "hostname", "smtp_host", "login", "username", "password"):
        with pytest.raises(errors.InvalidInput, match=f"connector 'box' sets {name}"):
            tasks._refuse_overrides("box", fixed, {name: "x"})


def test_an_unknown_task_type_is_refused_with_the_known_ones() -> None:
    with pytest.raises(errors.ConnectorInvalid, match="use one of REST, SMTP, SSH, SFTP, SCP"):
        connectors.check_type("FTP")
