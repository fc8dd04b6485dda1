"""Finding the JSON value in a model's reply (which may wrap it in prose or code fences)."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["find_json"]

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
#: How many '{' / '[' positions are tried before giving up (bounds the work on long text).
_MAX_STARTS = 200


def find_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, else the first fenced block that parses,
    else the first JSON object (then array) that starts somewhere in the text.

    Raises ``ValueError`` (saying why) when there is none.

    >>> find_json('Sure! Here it is: {"name": "Ada", "age": 36}. Anything else?')
    {'name': 'Ada', 'age': 36}
    >>> find_json('```json\\n[1, 2]\\n```')
    [1, 2]
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("the reply is empty; expected a JSON object")
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCE.findall(text):
        try:
            return json.loads(block.strip())
        except ValueError:
            continue
    first_array: Any = None
    found_array = False
    tried = 0
    skip_to = 0
    for match in re.finditer(r"[{\[]", text):
        if match.start() < skip_to:
            continue  # inside an array already decoded
        tried += 1
        if tried > _MAX_STARTS:
            break
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
        skip_to = end
        if not found_array:
            first_array, found_array = value, True
    if found_array:
        return first_array
    if "{" in text:
        # say where the object breaks, as json does
        start = text.index("{")
        try:
            _DECODER.raw_decode(text, start)
        except ValueError as exc:
            raise ValueError(f"the reply holds no valid JSON object ({exc})") from None
    raise ValueError("the reply holds no JSON object")
