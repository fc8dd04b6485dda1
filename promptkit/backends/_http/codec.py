"""The JSON codec of the HTTP backends: compact UTF-8 bodies out, parsed replies in
(a sentinel instead of an exception, so that errors are raised outside ``except``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..._errors import ParameterError

__all__ = ["dumps", "loads"]


def dumps(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON for a request body (plain dicts, no pydantic)."""
    problem = ""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
            "utf-8"
        )
    except UnicodeEncodeError:
        # lone surrogates cannot be UTF-8: send them \u-escaped, the server decides
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as exc:
        problem = str(exc)
    raise ParameterError(
        f"The request body cannot be sent as JSON ({problem}). Values in extra= and "
        "response_format must be JSON data (no NaN, infinity, or Python objects)."
    )


_MISSING = object()


def loads(data: bytes | str) -> Any:
    """``json.loads``, returning a sentinel instead of raising (errors are raised by callers
    outside ``except`` blocks)."""
    try:
        return json.loads(data)
    except ValueError:
        return _MISSING
