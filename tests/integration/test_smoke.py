"""The engine end to end in-process: a flow runs in a child process and a child's output returns."""

from tests.support.workspace import ApiClient


def test_parent_receives_child_output(api: ApiClient) -> None:
    api.create_flow(
        "child",
        "def handler(system, this, inputs):\n    this.save(output_value={'double': inputs['x'] * 2})\n",
    )
    api.create_flow(
        "parent",
        "def handler(system, this):\n    c = this.flow('child', x=21)\n    this.set_output('r', c.get('output_value'))\n",
    )
    record = api.run("parent")
    assert record["status"] == "ENDED_SUCCESS", record
    assert record["output_value"] == {"r": {"double": 42}}
