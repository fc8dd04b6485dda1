"""Server-sent events, decoded line by line (the streaming replies of OpenAI-compatible
servers)."""

from __future__ import annotations

import json

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Server-sent events, line by line: ``feed(line)`` returns an event's data when the
    event is complete (at its blank line), else ``None``; ``flush()`` returns what is left
    at the end of the stream.

    An ``error: {...}`` line (older llama.cpp servers report a failure mid-stream that way,
    before ``data: [DONE]``) makes its event's data ``{"error": {...}}``, so the reader
    raises the server's error instead of ending the stream with empty text.

    >>> sse = SSEDecoder()
    >>> sse.feed('error: {"code": 500, "message": "boom"}'), sse.feed("")
    (None, '{"error": {"code": 500, "message": "boom"}}')
    """

    __slots__ = ("_data", "_error", "_error_event")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._error: list[str] = []
        self._error_event = False  # an "event: error" line: the data is an error

    def feed(self, line: str) -> str | None:
        if not line:
            if self._error or (self._error_event and self._data):
                error = "\n".join(self._error or self._data)
                self._error.clear()
                self._data.clear()
                self._error_event = False
                return _error_event(error)
            self._error_event = False
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data.clear()
            return data
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
        elif line.startswith("error:"):
            value = line[6:]
            self._error.append(value[1:] if value.startswith(" ") else value)
        elif line.startswith("event:") and line[6:].strip() == "error":
            self._error_event = True
        return None  # comments (":"), other event:, id:, retry: lines

    def flush(self) -> str | None:
        return self.feed("")


def _error_event(value: str) -> str:
    """The data of an ``error:`` SSE line as ``{"error": ...}`` JSON."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = {"message": value.strip() or "unknown error"}
    if isinstance(parsed, dict) and "error" in parsed:
        return json.dumps(parsed, ensure_ascii=False)
    if not isinstance(parsed, dict):
        parsed = {"message": str(parsed)}
    return json.dumps({"error": parsed}, ensure_ascii=False)
