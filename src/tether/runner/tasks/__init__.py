"""The built-in task handlers, run inside a task execution's own (sandboxed) process.

A task execution's script calls ``run``; it asks the engine for the task's unmasked inputs,
talks to the other system, saves the outputs, and ends ENDED_ERROR with what that system
answered when it failed. Nothing here touches the store.
"""

from __future__ import annotations

import importlib
from typing import Any

from tether.runner import flow_api

# Task type -> the module (of this package) whose perform(inputs, this) does it.
_MODULES = {"REST": "rest", "SMTP": "smtp", "SSH": "ssh", "SFTP": "sftp", "SCP": "sftp"}


class TaskFailed(Exception):
    """The other system refused or failed; the message says what it answered."""

    def __init__(self, message: str, outputs: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.outputs = outputs


def run(system: flow_api.System, this: flow_api.Execution, task_type: str) -> None:
    """Run this task execution: a connector of ``task_type`` with the engine's inputs."""
    answer = this._engine.call("task_inputs")
    module = importlib.import_module(f"{__name__}.{_MODULES[answer['type']]}")
    try:
        outputs = module.perform(answer["inputs"], this)
    except TaskFailed as exc:
        if exc.outputs is not None:
            this.save(output_value=exc.outputs)
        this.error(f"{task_type} task failed: {exc}")
    this.save(output_value=outputs)


def required(inputs: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``inputs``; TaskFailed naming them if none is."""
    for name in names:
        if inputs.get(name) not in (None, ""):
            return inputs[name]
    raise TaskFailed(f"the input {names[0]!r} is required")


def optional(inputs: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in ``inputs``, else ``default``."""
    for name in names:
        if inputs.get(name) is not None:
            return inputs[name]
    return default


def unknown_inputs(inputs: dict[str, Any], known: set[str]) -> None:
    """Refuse inputs the task does not know: a misspelt one would be silently ignored."""
    extra = sorted(set(inputs) - known)
    if extra:
        raise TaskFailed(f"unknown input {extra[0]!r}; this task takes {', '.join(sorted(known))}")
