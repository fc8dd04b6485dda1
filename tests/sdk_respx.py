"""respx for the ``openai`` SDK, whatever HTTP library it runs on.

openai 1.x sends through httpx, which respx mocks as is. openai 3.x sends through httpx2
(an httpx fork with its own classes), which respx does not patch: :func:`sdk_mock` routes
httpx2's transports into the same respx router (requests converted to httpx's, replies
and errors back to httpx2's), so one set of respx routes and call counts serves both.
Nothing reaches the network: an unmatched request fails the test, as with respx.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx


def _sdk_http() -> Any:
    """The HTTP module the installed openai SDK sends with, if it is not httpx."""
    base = importlib.import_module("openai._base_client")
    module = getattr(base, "httpx2", None)
    return module if module is not None and module is not httpx else None


def _to_httpx(request: Any, content: bytes) -> httpx.Request:
    return httpx.Request(
        request.method,
        str(request.url),
        headers=request.headers.multi_items(),
        content=content,
        extensions={"timeout": request.extensions.get("timeout")},
    )


def _back(lib: Any, request: Any, response: httpx.Response) -> Any:
    return lib.Response(
        response.status_code,
        headers=response.headers.multi_items(),
        content=response.content,
        request=request,
    )


def _error(lib: Any, request: Any, exc: Exception) -> Exception:
    cls = getattr(lib, type(exc).__name__, None)
    if cls is None:
        return exc
    return cls(str(exc), request=request)  # type: ignore[no-any-return]


@contextlib.contextmanager
def sdk_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    """A respx router that also catches the openai SDK's requests."""
    with respx.mock(assert_all_called=False) as router:
        lib = _sdk_http()
        if lib is not None:

            def handle(self: Any, request: Any) -> Any:
                try:
                    response = router.handler(_to_httpx(request, request.read()))
                except httpx.HTTPError as exc:
                    raise _error(lib, request, exc) from None
                return _back(lib, request, response)

            async def ahandle(self: Any, request: Any) -> Any:
                content = await request.aread()
                try:
                    response = await router.async_handler(_to_httpx(request, content))
                except httpx.HTTPError as exc:
                    raise _error(lib, request, exc) from None
                await response.aread()
                return _back(lib, request, response)

            monkeypatch.setattr(lib.HTTPTransport, "handle_request", handle)
            monkeypatch.setattr(lib.AsyncHTTPTransport, "handle_async_request", ahandle)
        yield router
