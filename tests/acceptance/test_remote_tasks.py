"""A remote flow's tasks run where it runs: in the controlled workspace, with its connectors."""

from __future__ import annotations

from collections.abc import Callable

import trustme

from tests.acceptance.conftest import HUB_DIALS, Pair
from tests.integration.connector_servers import https_server

REMOTE_CALLER = """def handler(system, this):
    task = this.connect('api', url='ping')
    this.save(output_value={
        'path': task.get('output_value')['json']['path'],
        'task_id': task.id,
    })
"""
HUB_PARENT = """def handler(system, this):
    child = this.flow('caller', remote_workspace_name='edge')
    this.save(output_value=child.get('output_value'))
"""


def test_a_remote_flows_task_runs_in_the_controlled_workspace_with_its_connector(
    linked_pair: Callable[..., Pair],
) -> None:
    pair = linked_pair(HUB_DIALS)
    ca = trustme.CA()
    with https_server(ca) as (url, seen):
        # Only the edge holds the connector: the task can only have run there.
        pair.edge_api.ok(
            "POST",
            "/connector",
            json={
                "name": "api",
                "type": "REST",
                "host": url + "/edge",
                "value": {"ca_certificate": ca.cert_pem.bytes().decode()},
                "credentials": {"bearer_token": "edge-only"},
            },
        )
        pair.hub_api.ok("POST", "/flow", json={"name": "caller", "script": REMOTE_CALLER})
        pair.hub_api.ok("POST", "/flow", json={"name": "parent", "script": HUB_PARENT})
        parent = pair.hub_api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent
    assert parent["output_value"]["path"] == "/edge/ping"
    assert seen[0]["headers"]["authorization"] == "Bearer edge-only"
    task = pair.edge_api.ok("GET", f"/execution/{parent['output_value']['task_id']}")
    assert task["status"] == "ENDED_SUCCESS"
    received = pair.edge_api.ok("GET", f"/execution/{task['parent_id']}")
    assert received["origin"] == "received"
    assert received["flow_name"] == "caller"
    assert pair.hub_api.get(f"/execution/{task['id']}").status_code == 404
