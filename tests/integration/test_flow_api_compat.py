"""Cloudomation's names and call forms that flow scripts use, each run by real child processes."""

from __future__ import annotations

import textwrap
from typing import Any

from tests.support.workspace import ApiClient


def flow(api: ApiClient, name: str, script: str) -> None:
    api.create_flow(name, textwrap.dedent(script))


def succeeded(api: ApiClient, name: str) -> dict[str, Any]:
    record = api.run(name)
    assert record["status"] == "ENDED_SUCCESS", record
    output: dict[str, Any] = record["output_value"]
    return output


def test_handler_annotations_name_real_flow_api_types(api: ApiClient) -> None:
    """typing.get_type_hints works, and annotations are not strings (no inherited __future__)."""
    flow(
        api,
        "typed",
        """
        import typing
        import flow_api

        def handler(system: flow_api.System, this: flow_api.Execution):
            hints = typing.get_type_hints(handler)
            this.save(output_value={
                'system': hints['system'] is flow_api.System,
                'this': hints['this'] is flow_api.Execution,
                'evaluated': handler.__annotations__['this'] is flow_api.Execution,
                'names': [n for n in ('Setting', 'File', 'Flow') if hasattr(flow_api, n)],
                'is_instance': isinstance(this, flow_api.Execution),
            })
        """,
    )
    out = succeeded(api, "typed")
    assert out == {
        "system": True,
        "this": True,
        "evaluated": True,
        "names": ["Setting", "File", "Flow"],
        "is_instance": True,
    }


def test_set_output_takes_keyword_pairs_and_the_positional_form(api: ApiClient) -> None:
    flow(
        api,
        "outputs",
        """
        def handler(system, this):
            this.set_output('a', 1)
            this.set_output(b=2, c={'d': 3})
        """,
    )
    assert succeeded(api, "outputs") == {"a": 1, "b": 2, "c": {"d": 3}}


def test_save_name_renames_the_execution(api: ApiClient) -> None:
    flow(api, "renamed", "def handler(system, this):\n    this.save(name='nightly report')\n")
    record = api.run("renamed")
    assert record["status"] == "ENDED_SUCCESS", record
    assert record["name"] == "nightly report"
    assert record["flow_name"] == "renamed"


def test_system_flow_by_id_and_saving_a_flows_script(api: ApiClient) -> None:
    flow(api, "target", "def handler(system, this):\n    this.set_output('v', 1)\n")
    flow(
        api,
        "editor",
        """
        import flow_api

        def handler(system, this):
            target = system.flow('target', by='id')
            script = target.get('script').replace("'v', 1", "'v', 2")
            system.flow('target').save(script=script)
            this.set_output('id', target.id)
            try:
                target.save(script='def handler(:')
            except flow_api.InvalidInputError as exc:
                this.set_output('refused', str(exc))
        """,
    )
    out = succeeded(api, "editor")
    assert out["id"] == "target"
    assert "does not compile" in out["refused"]
    assert succeeded(api, "target") == {"v": 2}


def test_system_executions_lists_matching_executions(api: ApiClient) -> None:
    flow(api, "leaf", "def handler(system, this):\n    pass\n")
    flow(
        api,
        "lister",
        """
        def handler(system, this):
            for tag in ('x', 'y'):
                this.flow('leaf', name='leaf-' + tag)
            found = system.executions(flow_name='leaf', parent_id=this.id)
            named = system.executions(name='leaf-y')
            this.save(output_value={
                'names': sorted(e.get('name') for e in found),
                'named': [e.get('name') for e in named],
            })
        """,
    )
    out = succeeded(api, "lister")
    assert out == {"names": ["leaf-x", "leaf-y"], "named": ["leaf-y"]}


def test_system_executions_refuses_an_unknown_filter(api: ApiClient) -> None:
    flow(api, "bad_filter", "def handler(system, this):\n    system.executions(colour='red')\n")
    record = api.run("bad_filter")
    assert record["status"] == "ENDED_ERROR"
    assert "cannot filter by 'colour'" in record["message"]


# A child that takes setting 'counter''s lock, reads, pauses, writes and releases: without
# the lock, children running at once lose each other's increments.
LOCKED_INCREMENT = """
import time

def handler(system, this):
    counter = system.setting('counter')
    counter.acquire()
    try:
        value = counter.get('value')
        time.sleep(0.1)
        counter.save(value=value + 1)
    finally:
        counter.release()
"""


def test_setting_acquire_serialises_executions(api: ApiClient) -> None:
    api.set_setting("counter", 0)
    flow(api, "increment", LOCKED_INCREMENT)
    flow(
        api,
        "fan_out",
        """
        def handler(system, this):
            children = [this.flow('increment', wait=False) for _ in range(4)]
            this.wait_for(*children)
        """,
    )
    succeeded(api, "fan_out")
    assert api.ok("GET", "/setting/counter")["value"] == 4


def test_acquire_waits_while_another_execution_holds_the_lock(api: ApiClient) -> None:
    flow(
        api,
        "holder",
        """
        def handler(system, this):
            system.setting('door').acquire()
            system.setting('held').save(value=True)
            while not system.setting('go').exists():
                this.sleep(0.02)
        """,
    )
    flow(
        api,
        "waiter",
        """
        import flow_api

        def handler(system, this):
            try:
                system.setting('door').acquire(timeout=0.3)
            except flow_api.TimeoutExceededError:
                this.set_output('first', 'timed out')
            system.setting('go').save(value=True)
            system.setting('door').acquire()  # the holder ends without releasing it
            this.set_output('second', 'acquired')
            system.setting('door').release()
            try:
                system.setting('door').release()
            except flow_api.FlowApiError as exc:
                this.set_output('again', str(exc))
        """,
    )
    holder = api.start("holder")
    api.wait_setting("held")
    out = succeeded(api, "waiter")
    assert out["first"] == "timed out"
    assert out["second"] == "acquired"
    assert "not locked by this execution" in out["again"]
    assert api.wait_ended(holder["id"])["status"] == "ENDED_SUCCESS"


def test_files_in_cloudomations_names(api: ApiClient) -> None:
    flow(
        api,
        "files",
        """
        def handler(system, this):
            system.file('report.txt').save_text_content('héllo')
            system.file('report.bin').save_bytes_content(bytes([0, 255]))
            system.file('other.b64').save_base64_content('aGk=')
            this.save(output_value={
                'text': system.file('report.txt').get_text_content(),
                'bytes': list(system.file('report.bin').get_bytes_content()),
                'base64': system.file('report.bin').get_base64_content(),
                'decoded': system.file('other.b64').get_text_content(),
                'reports': [f.name for f in system.files('report.')],
                'all': [f.name for f in system.files()],
            })
        """,
    )
    out = succeeded(api, "files")
    assert out == {
        "text": "héllo",
        "bytes": [0, 255],
        "base64": "AP8=",
        "decoded": "hi",
        "reports": ["report.bin", "report.txt"],
        "all": ["other.b64", "report.bin", "report.txt"],
    }


def test_execution_options_are_not_passed_to_the_child_as_inputs(api: ApiClient) -> None:
    flow(api, "child", "def handler(system, this, inputs):\n    this.set_output('got', inputs)\n")
    flow(
        api,
        "parent",
        """
        def handler(system, this):
            child = this.flow(
                'child',
                location_inheritance=True,
                protect_inputs=True,
                protect_outputs=False,
                input_value={'a': 1, 'b': 1},
                b=2,
                max_runtime=30,
            )
            this.save(output_value={
                'got': child.get('output_value')['got'],
                'max_runtime_s': child.get('max_runtime_s'),
            })
        """,
    )
    assert succeeded(api, "parent") == {"got": {"a": 1, "b": 2}, "max_runtime_s": 30}


def test_a_cancel_swallowed_by_a_bare_except_ends_the_script_at_its_next_sleep(
    api: ApiClient,
) -> None:
    """As in Cloudomation, a bare except around this.sleep does not keep a cancelled script going."""
    flow(
        api,
        "stubborn",
        """
        def handler(system, this):
            system.setting('started').save(value=True)
            swallowed = 0
            while True:
                try:
                    this.sleep(0.05)
                except:
                    swallowed += 1
                    system.setting('swallowed').save(value=swallowed)
        """,
    )
    started = api.start("stubborn")
    api.wait_setting("started")
    api.ok("POST", f"/execution/{started['id']}/cancel")
    record = api.wait_ended(started["id"])
    assert record["status"] == "ENDED_CANCELLED"
    # Not "... did not stop within 1 s and was killed": it ended at its next sleep.
    assert record["message"] == "cancelled", record
    assert api.ok("GET", "/setting/swallowed")["value"] == 1
