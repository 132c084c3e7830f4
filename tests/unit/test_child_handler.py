"""How the child decides whether a handler takes the execution's inputs."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from tether.runner.child import _parameter_count


def two(system, this):  # type: ignore[no-untyped-def]
    pass


def three(system, this, inputs):  # type: ignore[no-untyped-def]
    pass


def star(system, this, *args):  # type: ignore[no-untyped-def]
    pass


def keyword_only(system, this, *, inputs=None):  # type: ignore[no-untyped-def]
    pass


def positional_only(system, /, this, **kwargs):  # type: ignore[no-untyped-def]
    pass


def anything(*args, **kwargs):  # type: ignore[no-untyped-def]
    pass


@functools.wraps(three)
def decorated(*args, **kwargs):  # type: ignore[no-untyped-def]
    pass


class Flow:
    def method(self, system, this, inputs):  # type: ignore[no-untyped-def]
        pass

    def __call__(self, system, this):  # type: ignore[no-untyped-def]
        pass


HANDLERS: list[Callable[..., Any]] = [
    two,
    three,
    star,
    keyword_only,
    positional_only,
    anything,
    decorated,
    Flow().method,
    Flow(),
    lambda system, this: None,
    functools.partial(three, None),
]


def handler_id(handler: Callable[..., Any]) -> str:
    """A name that is the same in every process (a repr's address is not: xdist compares them)."""
    if isinstance(handler, functools.partial):
        return f"partial-{handler.func.__name__}"
    name = getattr(handler, "__qualname__", None) or f"{type(handler).__name__}-instance"
    return "decorated" if handler is decorated else name


@pytest.mark.parametrize("handler", HANDLERS, ids=handler_id)
def test_the_parameter_count_is_the_one_inspect_gives(handler: Callable[..., Any]) -> None:
    assert _parameter_count(handler) == len(inspect.signature(handler).parameters)
