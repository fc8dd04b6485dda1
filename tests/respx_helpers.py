"""Shared by the tests that mock HTTP with respx: the JSON body of a recorded request."""

from __future__ import annotations

import json
from typing import Any

import respx


def body_of(route: respx.Route, i: int = -1) -> dict[str, Any]:
    """The JSON body of call ``i`` (default: the last) that ``route`` received."""
    return json.loads(route.calls[i].request.content)  # type: ignore[no-any-return]
