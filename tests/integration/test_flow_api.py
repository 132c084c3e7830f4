"""The flow_api contract of DESIGN.md, each behaviour run by real child processes."""

from __future__ import annotations

import base64
import datetime
import textwrap
import time
from collections.abc import Callable

import pytest

from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient


def flow(api: ApiClient, name: str, script: str) -> None:
    api.create_flow(name, textwrap.dedent(script))


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# A child that waits until setting 'go' exists, so a test decides when it ends.
GATED_CHILD = """
def handler(system, this, inputs):
    while not system.setting('go').exists():
        this.sleep(0.02)
    this.set_output('done', inputs.get('tag'))
"""
FAILING_CHILD = """
def handler(system, this):
    raise RuntimeError('child broke')
"""
SUCCEEDING_CHILD = """
def handler(system, this, inputs):
    this.save(output_value={'echo': inputs})
"""


# --- child executions ---------------------------------------------------------------


def test_child_receives_inputs_and_parent_reads_its_outputs(api: ApiClient) -> None:
    flow(
        api,
        "child",
        """
        def handler(system, this, inputs):
            this.save(output_value={'sum': inputs['a'] + inputs['b']}, message='added')
        """,
    )
    flow(
        api,
        "parent",
        """
        def handler(system, this):
            child = this.flow('child', name='adder', a=2, b=3)
            this.save(output_value={
                'child_id': child.id,
                'sum': child.get('output_value')['sum'],
                'status': child.get('status'),
            })
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    out = parent["output_value"]
    assert out["sum"] == 5
    assert out["status"] == "ENDED_SUCCESS"
    child = api.ok("GET", f"/execution/{out['child_id']}")
    assert child["input_value"] == {"a": 2, "b": 3}
    assert child["name"] == "adder"
    assert child["flow_name"] == "child"
    assert child["parent_id"] == parent["id"]
    assert child["message"] == "added"


def test_flow_with_wait_false_returns_before_the_child_ends(api: ApiClient) -> None:
    flow(api, "gated", GATED_CHILD)
    flow(
        api,
        "parent",
        """
        def handler(system, this):
            child = this.flow('gated', wait=False, tag='t1')
            this.set_output('status_at_return', child.get('status'))
            system.setting('go').save(value=True)
            child.wait()
            this.set_output('child_output', child.get('output_value'))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"]["status_at_return"] in ("QUEUED", "RUNNING")
    assert parent["output_value"]["child_output"] == {"done": "t1"}


def test_flow_with_run_false_stays_pending_until_run_async(api: ApiClient) -> None:
    flow(api, "child", SUCCEEDING_CHILD)
    flow(
        api,
        "parent",
        """
        import time

        def handler(system, this):
            child = this.flow('child', run=False, x=1)
            time.sleep(0.2)  # a queued child would have started by now
            this.set_output('before', child.get('status'))
            child.run_async()
            child.wait()
            this.set_output('after', child.load('status', 'output_value'))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"]["before"] == "PENDING"
    assert parent["output_value"]["after"] == ["ENDED_SUCCESS", {"echo": {"x": 1}}]


def test_a_failed_child_raises_dependency_failed_error_in_the_waiting_parent(
    api: ApiClient,
) -> None:
    flow(api, "failing", FAILING_CHILD)
    flow(
        api,
        "parent",
        """
        import flow_api

        def handler(system, this):
            try:
                this.flow('failing')
            except flow_api.DependencyFailedError as exc:
                this.set_output('caught', str(exc))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert "ENDED_ERROR" in parent["output_value"]["caught"]
    assert "child broke" in parent["output_value"]["caught"]


def test_an_uncaught_dependency_failure_ends_the_parent_with_error(api: ApiClient) -> None:
    flow(api, "failing", FAILING_CHILD)
    flow(api, "parent", "def handler(system, this):\n    this.flow('failing')\n")
    parent = api.run("parent")
    assert parent["status"] == "ENDED_ERROR"
    assert "DependencyFailedError" in parent["message"]


def test_flow_with_wait_all_ended_returns_a_failed_child_without_raising(
    api: ApiClient,
) -> None:
    flow(api, "failing", FAILING_CHILD)
    flow(
        api,
        "parent",
        """
        def handler(system, this):
            child = this.flow('failing', wait=system.return_when.ALL_ENDED)
            this.set_output('status', child.get('status'))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"] == {"status": "ENDED_ERROR"}


# --- wait_for -----------------------------------------------------------------------


def test_wait_for_all_succeeded_is_the_default_and_raises_when_one_fails(
    api: ApiClient,
) -> None:
    flow(api, "ok", SUCCEEDING_CHILD)
    flow(api, "failing", FAILING_CHILD)
    flow(
        api,
        "parent",
        """
        import flow_api

        def handler(system, this):
            good = this.flow('ok', wait=False)
            bad = this.flow('failing', wait=False)
            try:
                this.wait_for(good, bad)
            except flow_api.DependencyFailedError as exc:
                this.set_output('caught', str(exc))
            both = this.wait_for(good, this.flow('ok', wait=False))
            this.set_output('succeeded', len(both))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert "child broke" in parent["output_value"]["caught"]
    assert parent["output_value"]["succeeded"] == 2


def test_wait_for_all_ended_returns_every_child_without_raising(api: ApiClient) -> None:
    flow(api, "ok", SUCCEEDING_CHILD)
    flow(api, "failing", FAILING_CHILD)
    flow(
        api,
        "parent",
        """
        def handler(system, this):
            children = [this.flow('ok', wait=False), this.flow('failing', wait=False)]
            ended = this.wait_for(*children, return_when=system.return_when.ALL_ENDED)
            this.set_output('statuses', sorted(c.get('status') for c in ended))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"]["statuses"] == ["ENDED_ERROR", "ENDED_SUCCESS"]


def test_wait_for_first_ended_returns_as_soon_as_one_child_ends(api: ApiClient) -> None:
    flow(api, "ok", SUCCEEDING_CHILD)
    flow(api, "gated", GATED_CHILD)
    flow(
        api,
        "parent",
        """
        def handler(system, this):
            slow = this.flow('gated', wait=False)
            fast = this.flow('ok', wait=False)
            ended = this.wait_for(slow, fast, return_when=system.return_when.FIRST_ENDED)
            this.set_output('ended', [c.id for c in ended])
            this.set_output('fast', fast.id)
            this.set_output('slow_status', slow.get('status'))
            system.setting('go').save(value=True)
            this.wait_for(slow)
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    out = parent["output_value"]
    assert out["ended"] == [out["fast"]]
    assert out["slow_status"] in ("QUEUED", "RUNNING")


def test_wait_with_a_timeout_raises_timeout_exceeded_error(api: ApiClient) -> None:
    flow(api, "gated", GATED_CHILD)
    flow(
        api,
        "parent",
        """
        import flow_api

        def handler(system, this):
            child = this.flow('gated', wait=False)
            try:
                child.wait(timeout=0.2)
            except flow_api.TimeoutExceededError as exc:
                this.set_output('timeout', str(exc))
            child.cancel()
            this.wait_for(child, return_when=system.return_when.ALL_ENDED)
            this.set_output('child', child.get('status'))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert "0.2" in parent["output_value"]["timeout"]
    assert parent["output_value"]["child"] == "ENDED_CANCELLED"


# --- lifecycle signals ------------------------------------------------------------------


def test_success_signal_is_not_swallowed_by_except_exception(api: ApiClient) -> None:
    flow(
        api,
        "early",
        """
        def handler(system, this):
            try:
                this.success('finished early')
            except Exception:
                this.set_output('swallowed', True)
            this.set_output('after', True)
        """,
    )
    record = api.run("early")
    assert record["status"] == "ENDED_SUCCESS"
    assert record["message"] == "finished early"
    assert record["output_value"] == {}


def test_error_signal_is_not_swallowed_and_finally_blocks_run(api: ApiClient) -> None:
    flow(
        api,
        "failing",
        """
        def handler(system, this):
            try:
                this.error('gave up')
            except Exception:
                this.set_output('swallowed', True)
            finally:
                this.set_output('finally', True)
        """,
    )
    record = api.run("failing")
    assert record["status"] == "ENDED_ERROR"
    assert record["message"] == "gave up"
    assert record["output_value"] == {"finally": True}


def test_end_signal_sets_the_given_status(api: ApiClient) -> None:
    flow(
        api,
        "ender",
        """
        def handler(system, this):
            try:
                this.end('ENDED_CANCELLED', 'nothing to do')
            except Exception:
                this.set_output('swallowed', True)
        """,
    )
    record = api.run("ender")
    assert record["status"] == "ENDED_CANCELLED"
    assert record["message"] == "nothing to do"
    assert record["output_value"] == {}


def test_cancel_runs_the_scripts_finally_block(api: ApiClient) -> None:
    flow(
        api,
        "looping",
        """
        def handler(system, this):
            try:
                system.setting('started').save(value=True)
                while True:
                    this.sleep(0.05)
            except Exception:
                system.setting('swallowed').save(value=True)
            finally:
                system.setting('cleaned_up').save(value='yes')
        """,
    )
    started = api.start("looping")
    api.wait_setting("started")
    api.ok("POST", f"/execution/{started['id']}/cancel")
    record = api.wait_ended(started["id"])
    assert record["status"] == "ENDED_CANCELLED"
    assert api.ok("GET", "/setting/cleaned_up")["value"] == "yes"
    assert api.get("/setting/swallowed").status_code == 404


def test_cancel_from_a_parent_handle_ends_the_child_cancelled(api: ApiClient) -> None:
    flow(api, "gated", GATED_CHILD)
    flow(
        api,
        "parent",
        """
        def handler(system, this):
            child = this.flow('gated', wait=False)
            child.cancel()
            child.wait(return_when=system.return_when.ALL_ENDED)
            this.set_output('child', child.get('status'))
        """,
    )
    parent = api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"] == {"child": "ENDED_CANCELLED"}


# --- errors, log ------------------------------------------------------------------------


def test_an_unhandled_exception_ends_with_the_traceback_as_message(api: ApiClient) -> None:
    flow(
        api,
        "broken",
        """
        def handler(system, this):
            values = {'a': 1}
            return values['missing']
        """,
    )
    record = api.run("broken")
    assert record["status"] == "ENDED_ERROR"
    message = record["message"]
    assert message.startswith("Traceback")
    assert 'File "<flow broken>", line 4, in handler' in message
    assert "return values['missing']" in message
    assert message.rstrip().endswith("KeyError: 'missing'")
    assert "tether/runner" not in message  # the engine's own frames are left out


def test_a_traceback_through_flow_api_shows_only_the_script_frames(api: ApiClient) -> None:
    flow(
        api,
        "reader",
        """
        def read(system):
            return system.setting('nope').get('value')


        def handler(system, this):
            read(system)
        """,
    )
    message = api.run("reader")["message"]
    assert 'File "<flow reader>", line 7, in handler' in message
    assert 'File "<flow reader>", line 3, in read' in message
    assert "flow_api.py" not in message and "tether/" not in message
    assert message.endswith("flow_api.ResourceNotFoundError: setting 'nope' does not exist")
    assert "tether.runner.flow_api" not in message  # named as scripts import it


def test_a_script_without_handler_ends_with_an_error_naming_it(api: ApiClient) -> None:
    """Saving refuses a script with no handler at all; one that binds the name to something
    else gets past that check (only running it can tell) and ends in error."""
    flow(api, "nohandler", "handler = None\n")
    record = api.run("nohandler")
    assert record["status"] == "ENDED_ERROR"
    assert "handler" in record["message"]


def test_print_goes_to_the_log_and_stderr_is_marked(api: ApiClient) -> None:
    flow(
        api,
        "printer",
        """
        import sys

        def handler(system, this):
            print('hello', 42)
            print('no newline at end', end='')
            print('to stderr', file=sys.stderr)
        """,
    )
    record = api.run("printer")
    assert record["status"] == "ENDED_SUCCESS", record
    entries = api.ok("GET", f"/execution/{record['id']}/log")
    by_message = {e["message"]: e for e in entries}
    assert "hello 42" in by_message
    assert "no newline at end" in by_message
    assert by_message["to stderr"]["fields"] == {"stream": "stderr"}
    assert by_message["hello 42"]["fields"] == {}


def test_log_entries_carry_timestamps_and_fields_in_order(api: ApiClient) -> None:
    flow(
        api,
        "logger",
        """
        def handler(system, this):
            this.log('first', step=1)
            this.sleep(0.01)
            this.log('second', 'part', step=2, user='ann')
        """,
    )
    record = api.run("logger")
    assert record["status"] == "ENDED_SUCCESS", record
    entries = api.ok("GET", f"/execution/{record['id']}/log")
    assert [e["message"] for e in entries] == ["first", "second part"]
    assert [e["fields"] for e in entries] == [{"step": 1}, {"step": 2, "user": "ann"}]
    times = [parse_time(e["time"]) for e in entries]
    assert parse_time(record["created_at"]) <= times[0] < times[1]
    assert times[1] <= parse_time(record["ended_at"])


# --- handler signatures, inputs --------------------------------------------------------


def test_both_handler_signatures_run(api: ApiClient) -> None:
    flow(api, "two", "def handler(system, this):\n    this.set_output('n', 2)\n")
    flow(
        api,
        "three",
        "def handler(system, this, inputs):\n    this.set_output('got', inputs)\n",
    )
    two = api.run("two", input_value={"ignored": True})
    three = api.run("three", input_value={"k": [1, 2]})
    assert (two["status"], two["output_value"]) == ("ENDED_SUCCESS", {"n": 2})
    assert (three["status"], three["output_value"]) == ("ENDED_SUCCESS", {"got": {"k": [1, 2]}})


def test_load_returns_several_fields_at_once(api: ApiClient) -> None:
    flow(
        api,
        "loader",
        """
        def handler(system, this, inputs):
            this.save(message='working')
            name, status, inputs_seen, message = this.load(
                'name', 'status', 'input_value', 'message'
            )
            this.save(output_value={
                'name': name, 'status': status, 'inputs': inputs_seen, 'message': message,
                'single': this.load('flow_name'),
            })
        """,
    )
    record = api.run("loader", name="my run", input_value={"q": 1})
    assert record["status"] == "ENDED_SUCCESS", record
    assert record["output_value"] == {
        "name": "my run",
        "status": "RUNNING",
        "inputs": {"q": 1},
        "message": "working",
        "single": "loader",
    }


# --- refused calls ------------------------------------------------------------------

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("call", "error", "named"),
    [
        ("this.end('RUNNING')", "InvalidInputError", "RUNNING"),  # a status that is not final
        ("this.get('no_such_field')", "InvalidInputError", "no_such_field"),
        ("this.flow('does-not-exist')", "ResourceNotFoundError", "does-not-exist"),
        (f"system.execution('{UNKNOWN_ID}')", "ResourceNotFoundError", UNKNOWN_ID),
        ("system.flow('nope')", "ResourceNotFoundError", "nope"),
    ],
)
def test_the_script_catches_a_refused_call_as_the_named_error(
    api: ApiClient, call: str, error: str, named: str
) -> None:
    """A refused call raises that flow_api error (a script can catch it), naming what was wrong."""
    script = (
        "import flow_api\n\n"
        "def handler(system, this):\n"
        "    try:\n"
        f"        {call}\n"
        f"    except flow_api.{error} as exc:\n"
        "        this.set_output('caught', str(exc))\n"
    )
    api.create_flow("refused", script)
    record = api.run("refused")
    assert record["status"] == "ENDED_SUCCESS", record
    assert named in record["output_value"]["caught"]


# --- settings and files -------------------------------------------------------------


def test_settings_are_saved_read_checked_and_deleted(api: ApiClient) -> None:
    api.set_setting("preset", {"from": "api"})
    flow(
        api,
        "settings",
        """
        import flow_api

        def handler(system, this):
            s = system.setting('counter')
            out = {'exists_before': s.exists()}
            s.save(value={'n': 1, 'list': [1, 'a']})
            out['value'] = s.get('value')
            out['exists_after'] = s.exists()
            out['preset'] = system.setting('preset').get('value')
            system.setting('kept').save(value=7)
            s.delete()
            out['exists_deleted'] = s.exists()
            try:
                s.get('value')
            except flow_api.ResourceNotFoundError as exc:
                out['missing'] = str(exc)
            this.save(output_value=out)
        """,
    )
    record = api.run("settings")
    assert record["status"] == "ENDED_SUCCESS", record
    out = record["output_value"]
    assert out["exists_before"] is False
    assert out["value"] == {"n": 1, "list": [1, "a"]}
    assert out["exists_after"] is True
    assert out["preset"] == {"from": "api"}
    assert out["exists_deleted"] is False
    assert "counter" in out["missing"]
    assert api.ok("GET", "/setting/kept")["value"] == 7
    assert api.get("/setting/counter").status_code == 404


def test_files_hold_text_bytes_and_base64_and_can_be_deleted(api: ApiClient) -> None:
    raw = bytes(range(256))
    api.ok(
        "POST", "/file", json={"name": "blob.bin", "content_base64": base64.b64encode(raw).decode()}
    )
    flow(
        api,
        "files",
        """
        import base64
        import flow_api

        def handler(system, this):
            out = {}
            text = system.file('notes.txt')
            text.save('héllo\\nworld')
            out['text'] = text.get('content')
            blob = system.file('blob.bin')
            out['bytes_ok'] = blob.get('content_bytes') == bytes(range(256))
            out['b64'] = blob.get('content_base64')
            system.file('made.bin').save(b'\\x00\\xff')
            system.file('from64.txt').save(content_base64=base64.b64encode(b'abc').decode())
            out['from64'] = system.file('from64.txt').get('content')
            system.file('from64.txt').delete()
            out['exists_deleted'] = system.file('from64.txt').exists()
            try:
                system.file('from64.txt').get('content')
            except flow_api.ResourceNotFoundError as exc:
                out['missing'] = str(exc)
            this.save(output_value=out)
        """,
    )
    record = api.run("files")
    assert record["status"] == "ENDED_SUCCESS", record
    out = record["output_value"]
    assert out["text"] == "héllo\nworld"
    assert out["bytes_ok"] is True
    assert out["b64"] == base64.b64encode(raw).decode()
    assert out["from64"] == "abc"
    assert out["exists_deleted"] is False
    assert "from64.txt" in out["missing"]
    made = api.ok("GET", "/file/made.bin")
    assert base64.b64decode(made["content_base64"]) == b"\x00\xff"
    assert api.ok("GET", "/file/notes.txt")["content"] == "héllo\nworld"
    assert api.get("/file/from64.txt").status_code == 404


# --- system lookups -----------------------------------------------------------------


def test_system_execution_and_flow_find_records(
    api: ApiClient,
) -> None:
    flow(api, "target", SUCCEEDING_CHILD)
    earlier = api.run("target", input_value={"v": 9})
    flow(
        api,
        "lookup",
        """
        def handler(system, this, inputs):
            out = {}
            other = system.execution(inputs['id'])
            out['other'] = other.load('status', 'output_value')
            out['flow_script'] = system.flow('target').get('script')
            this.save(output_value=out)
        """,
    )
    record = api.run("lookup", input_value={"id": earlier["id"]})
    assert record["status"] == "ENDED_SUCCESS", record
    out = record["output_value"]
    assert out["other"] == ["ENDED_SUCCESS", {"echo": {"v": 9}}]
    assert out["flow_script"] == textwrap.dedent(SUCCEEDING_CHILD)


def test_flow_api_errors_share_one_base_class(api: ApiClient) -> None:
    flow(
        api,
        "classes",
        """
        import flow_api

        def handler(system, this):
            names = ['DependencyFailedError', 'ResourceNotFoundError', 'TimeoutExceededError',
                     'PermissionDenied', 'InvalidInputError']
            bases = set()
            for name in names:
                cls = getattr(flow_api, name)
                bases.add(cls.__mro__[1].__name__)
                assert issubclass(cls, Exception)
            this.set_output('bases', sorted(bases))
        """,
    )
    record = api.run("classes")
    assert record["status"] == "ENDED_SUCCESS", record
    assert len(record["output_value"]["bases"]) == 1
    assert record["output_value"]["bases"] != ["Exception"]


def test_cancel_during_a_wait_on_another_execution_runs_the_finally_block(
    api_with: Callable[..., ApiClient],
) -> None:
    api = api_with(max_running=2)
    flow(api, "gated", GATED_CHILD)
    flow(api, "quick", SUCCEEDING_CHILD)
    other = api.start("gated")
    flow(
        api,
        "waiter",
        """
        def handler(system, this, inputs):
            try:
                system.execution(inputs['other']).wait()
            finally:
                system.setting('cleaned_up').save(value='yes')
        """,
    )
    waiter = api.start("waiter", input_value={"other": other["id"]})
    # Both slots are taken until the waiter's wait reaches the engine, which frees its slot:
    # a third execution ends only then, so the cancel below lands inside the wait.
    assert api.run("quick")["status"] == "ENDED_SUCCESS"
    assert api.ok("GET", f"/execution/{waiter['id']}")["status"] == "RUNNING"
    api.ok("POST", f"/execution/{waiter['id']}/cancel")
    record = api.wait_ended(waiter["id"])
    assert record["status"] == "ENDED_CANCELLED", record
    assert api.ok("GET", "/setting/cleaned_up")["value"] == "yes"
    assert api.ok("GET", f"/execution/{other['id']}")["status"] == "RUNNING"
    api.set_setting("go", True)
    assert api.wait_ended(other["id"])["status"] == "ENDED_SUCCESS"


def test_a_long_log_is_kept_complete_and_in_order(api: ApiClient) -> None:
    flow(
        api,
        "chatty",
        """
        def handler(system, this):
            for i in range(2500):
                print(f'line {i}')
        """,
    )
    record = api.run("chatty")
    assert record["status"] == "ENDED_SUCCESS", record
    messages: list[str] = []
    while page := api.ok("GET", f"/execution/{record['id']}/log", params={"offset": len(messages)}):
        messages += [e["message"] for e in page]
    assert messages == [f"line {i}" for i in range(2500)]


def test_a_trickle_of_lines_is_stored_while_the_script_still_runs(api: ApiClient) -> None:
    # A line every 10 ms and no other request: each line arrives before a timeout per read
    # of the channel would fire, so the engine used to hold them until a batch of 500 filled.
    flow(
        api,
        "trickle",
        """
        import time

        def handler(system, this):
            for i in range(300):
                print(f'line {i}')
                time.sleep(0.01)
        """,
    )
    started = api.start("trickle")
    deadline = time.monotonic() + 10
    while not api.ok("GET", f"/execution/{started['id']}/log"):
        assert time.monotonic() < deadline, "no line stored within 10 s"
        time.sleep(0.05)
    assert api.ok("GET", f"/execution/{started['id']}")["status"] == "RUNNING"
    assert api.wait_ended(started["id"])["status"] == "ENDED_SUCCESS"


def test_flow_api_calls_from_several_threads_each_get_their_answer(api: ApiClient) -> None:
    flow(api, "child", SUCCEEDING_CHILD)
    flow(
        api,
        "threaded",
        """
        from concurrent.futures import ThreadPoolExecutor

        def handler(system, this):
            def work(n):
                system.setting(f's{n}').save(value=n)
                child = this.flow('child', n=n)
                return child.get('output_value')['echo']['n'] + system.setting(f's{n}').get('value')

            with ThreadPoolExecutor(4) as pool:
                this.set_output('sums', list(pool.map(work, range(8))))
        """,
    )
    record = api.wait_ended(api.start("threaded")["id"], timeout_s=20)
    assert record["status"] == "ENDED_SUCCESS", record
    assert record["output_value"] == {"sums": [2 * n for n in range(8)]}


# --- sleeping -----------------------------------------------------------------------


def test_a_long_sleep_holds_no_slot_of_max_running(api_with: Callable[..., ApiClient]) -> None:
    """Thousands of sleeping executions need not raise --max-running (issue 19)."""
    api = api_with(max_running=1)
    flow(
        api,
        "sleeper",
        """
        def handler(system, this):
            this.sleep(60)
        """,
    )
    flow(api, "quick", SUCCEEDING_CHILD)
    sleepers = [api.start("sleeper") for _ in range(3)]

    def all_running() -> bool:
        statuses = [api.ok("GET", f"/execution/{s['id']}")["status"] for s in sleepers]
        return statuses == ["RUNNING"] * 3

    wait_until(all_running, "three sleepers running at once with --max-running 1")
    # The one slot is free while they sleep: another execution runs to its end.
    assert api.run("quick")["status"] == "ENDED_SUCCESS"
    for sleeper in sleepers:
        api.ok("POST", f"/execution/{sleeper['id']}/cancel")
    for sleeper in sleepers:
        record = api.wait_ended(sleeper["id"])
        assert record["status"] == "ENDED_CANCELLED", record
        assert record["message"] == "cancelled", record  # interrupted, not killed


def test_a_sleep_ends_when_its_time_is_up_and_the_script_goes_on(api: ApiClient) -> None:
    flow(
        api,
        "napper",
        """
        import time

        def handler(system, this):
            start = time.monotonic()
            this.sleep(1.2)
            this.set_output('slept', time.monotonic() - start)
        """,
    )
    record = api.run("napper")
    assert record["status"] == "ENDED_SUCCESS", record
    assert 1.2 <= record["output_value"]["slept"] < 10, record


@pytest.mark.parametrize("seconds", ["-1", "'soon'", "True", "1e300"])
def test_a_sleep_request_out_of_range_is_refused(api: ApiClient, seconds: str) -> None:
    """The engine checks what a script may send it directly, bypassing flow_api."""
    flow(
        api,
        "raw",
        f"""
        def handler(system, this):
            this._engine.call('sleep', seconds={seconds})
        """,
    )
    record = api.run("raw")
    assert record["status"] == "ENDED_ERROR", record
    assert "sleep takes a number of seconds from 0 to" in record["message"], record
