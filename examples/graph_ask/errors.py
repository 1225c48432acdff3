"""The exceptions of ``graph_ask``: one root, and the bad-input error its handlers answer 400."""

from __future__ import annotations


class GraphAskError(Exception):
    """Root of every exception ``examples.graph_ask`` raises itself."""


class BadInput(GraphAskError, ValueError):
    """A request parameter is missing or out of range; answered 400 naming it."""

    def __init__(self, parameter: str, allowed: str, got: object = None) -> None:
        super().__init__(f"{parameter} must be {allowed}")
        self.parameter = parameter
        self.allowed = allowed
        self.got = got
