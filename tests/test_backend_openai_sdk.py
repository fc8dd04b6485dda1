"""The openai-sdk and azure backends: a user's openai client carries promptkit's requests.

Every request is answered by respx (through :mod:`sdk_respx`, which also catches the SDK's
httpx2 traffic); waiting between retries is recorded, not done.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sdk_respx import sdk_mock

import promptkit as pk
from promptkit._client import LLM
from promptkit._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    ContentFilteredError,
    ContextLengthError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
)
from promptkit.backends.openai import OpenAIBackend

openai = pytest.importorskip("openai")

from promptkit.backends.openai_sdk import AzureOpenAIBackend, OpenAISDKBackend  # noqa: E402

BASE = "http://127.0.0.1:8080/v1"
KEY = "sk-proj-SECRETSECRETSECRET0123456789"
AZURE = "https://unit-test.openai.azure.com"
AZURE_KEY = "azkey-0123456789abcdef0123456789abcdef"

OK = {
    "id": "c1",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris"},
            "finish_reason": "stop",
            "logprobs": {
                "content": [
                    {
                        "token": "Paris",
                        "logprob": -0.01,
                        "top_logprobs": [{"token": "Paris", "logprob": -0.01}],
                    }
                ]
            },
        },
        {"index": 1, "message": {"role": "assistant", "content": "Lyon"}, "finish_reason": "stop"},
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}
ONE = {**OK, "choices": [OK["choices"][1] | {"index": 0}]}

SSE = (
    'data: {"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}\n\n'
    'data: {"model":"m","choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n'
    'data: {"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    'data: {"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,'
    '"total_tokens":5}}\n\n'
    "data: [DONE]\n\n"
)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
        monkeypatch.delenv(var, raising=False)
    with sdk_mock(monkeypatch) as router:
        yield router


def sync_client(**kw: Any) -> Any:
    kw.setdefault("max_retries", 5)  # promptkit calls it with max_retries=0 anyway
    return openai.OpenAI(base_url=BASE, api_key=KEY, **kw)


def async_client(**kw: Any) -> Any:
    kw.setdefault("max_retries", 5)
    return openai.AsyncOpenAI(base_url=BASE, api_key=KEY, **kw)


def wrap(llm: LLM) -> Sleeps:
    sleeps = Sleeps()
    backend: Any = llm.backend
    backend.retry.sleep = sleeps
    backend.retry.asleep = sleeps.asleep
    backend.retry.base_delay = 0
    return sleeps


def sent(route: respx.Route, i: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[i].request.content)
    return body


# --------------------------------------------------------------------------- connecting


def test_connect_with_a_client_infers_the_backend_and_takes_nothing_from_the_environment(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTKIT_BASE_URL", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("PROMPTKIT_API_KEY", "sk-elsewhere-000000000000")
    client = sync_client()
    cfg = pk.resolve_config(client=client, model="m")
    assert cfg.backend == "openai-sdk" and cfg.sources["backend"].startswith("inferred")
    assert cfg.base_url is None and not cfg.has_api_key
    llm = pk.connect(client=client, model="m")
    assert isinstance(llm.backend, OpenAISDKBackend) and llm.backend.client is not client
    assert llm.backend.client.max_retries == 0 and client.max_retries == 5
    assert llm.backend.base_url == BASE
    azure = openai.AzureOpenAI(azure_endpoint=AZURE, api_key=AZURE_KEY, api_version="2024-10-21")
    assert pk.resolve_config(client=azure, model="dep", env={}).backend == "azure"


def test_a_client_and_base_url_or_api_key_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="belong to the openai client"):
        OpenAISDKBackend(client=sync_client(), base_url=BASE, model="m")
    with pytest.raises(ConfigurationError, match=r"expected an openai\.OpenAI"):
        OpenAISDKBackend(client=httpx.Client(), model="m")
    with pytest.raises(ConfigurationError, match="retries="):
        OpenAISDKBackend(client=sync_client(), model="m", retries="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown option"):
        OpenAISDKBackend(base_url=BASE, model="m", temprature=0)


def test_importing_the_backend_module_does_not_import_openai() -> None:
    code = (
        "import sys, promptkit, promptkit.backends.openai_sdk\n"
        "assert 'openai' not in sys.modules, 'openai imported'\n"
        "promptkit.backends.backend_class('azure')\n"
        "assert 'openai' not in sys.modules, 'openai imported by backend_class'\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# --------------------------------------------------------------------------- the wire


def test_chat_body_and_completion_are_the_built_in_backends(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions").respond(json=OK)
    schema = {"name": "city", "schema": {"type": "object"}, "strict": True}
    kw: dict[str, Any] = {"n": 2, "temperature": 0.5, "max_tokens": 9, "top_logprobs": 1}
    sdk = LLM(OpenAISDKBackend(client=sync_client(), model="m"))
    got = sdk.complete("Capital?", response_format=schema, seed=3, **kw)
    raw = LLM(OpenAIBackend(base_url=BASE, api_key=KEY, model="m"))
    want = raw.complete("Capital?", response_format=schema, seed=3, **kw)
    assert route.call_count == 2
    assert sent(route, 0) == sent(route, 1)
    request, _ = raw.prepare_request("Capital?", response_format=schema, seed=3, **kw)
    assert sent(route, 0) == raw.backend.build_body(request)  # type: ignore[attr-defined]
    assert sent(route, 0)["response_format"]["type"] == "json_schema"
    assert sent(route, 0)["n"] == 2 and sent(route, 0)["logprobs"] is True
    assert got.choices == want.choices and got.usage == want.usage and got.raw == want.raw
    assert got.params_sent == want.params_sent and got.texts == ["Paris", "Lyon"]
    assert got.choices[0].logprobs is not None and got.choices[0].logprobs[0].token == "Paris"
    assert got.backend == "openai-sdk"
    assert route.calls[0].request.headers["authorization"] == f"Bearer {KEY}"


def test_completions_endpoint_with_logprobs(mock: respx.MockRouter) -> None:
    reply = {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "text": " world",
                "finish_reason": "length",
                "logprobs": {
                    "tokens": [" world"],
                    "token_logprobs": [-0.5],
                    "top_logprobs": [{" world": -0.5, " there": -1.5}],
                },
            }
        ],
    }
    route = mock.post(BASE + "/completions").respond(json=reply)
    llm = LLM(OpenAISDKBackend(client=sync_client(), model="m"))
    done = llm.complete_prompt("Hello", max_tokens=1, top_logprobs=2)
    assert sent(route) == {"model": "m", "prompt": "Hello", "max_tokens": 1, "logprobs": 2}
    assert done.text == " world" and done.finish_reason == "length"
    assert done.choices[0].logprobs is not None
    assert done.choices[0].logprobs[0].top == ((" world", -0.5), (" there", -1.5))


def test_async_client_async_calls(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions").respond(json=ONE)
    llm = pk.connect(client=async_client(), model="m")

    async def go() -> str:
        done = await llm.acomplete("Hi", temperature=0)
        await llm.aclose()
        return done.text

    assert asyncio.run(go()) == "Lyon"
    assert route.calls[0].request.headers["x-stainless-async"].startswith("async")
    with pytest.raises(ConfigurationError, match="only an async openai client"):
        llm.complete("Hi")


def test_sync_and_async_clients_together(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions").respond(json=ONE)
    llm = pk.connect(client=sync_client(), async_client=async_client(), model="m")
    assert llm.complete("a").text == "Lyon"
    assert asyncio.run(llm.acomplete("b")).text == "Lyon"
    flags = [c.request.headers["x-stainless-async"] for c in route.calls]
    assert flags[0] == "false" and flags[1].startswith("async")


def test_only_a_sync_client_serves_async_calls_in_threads(mock: respx.MockRouter) -> None:
    chat = mock.post(BASE + "/chat/completions")
    chat.side_effect = [
        httpx.Response(200, json=ONE),
        httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"}),
    ]
    mock.post(BASE + "/embeddings").respond(
        json={"data": [{"index": 0, "embedding": [1.0, 0.0]}], "model": "e"}
    )
    llm = pk.connect(client=sync_client(), model="m")

    async def go() -> tuple[str, int, str]:
        done = await llm.acomplete("a")
        emb = await llm.aembed(["x"])
        pieces = [p async for p in llm.astream("b")]
        return done.text, emb.dim, "".join(pieces)

    assert asyncio.run(go()) == ("Lyon", 2, "Hello")
    assert chat.calls[0].request.headers["x-stainless-async"] == "false"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streaming(mock: respx.MockRouter, mode: str) -> None:
    route = mock.post(BASE + "/chat/completions").respond(
        text=SSE, headers={"content-type": "text/event-stream"}
    )
    llm = pk.connect(
        client=sync_client(), async_client=async_client(), model="m", stream_usage=True
    )
    if mode == "sync":
        stream = llm.stream("Hi", max_tokens=4)
        pieces = list(stream)
    else:
        stream = llm.astream("Hi", max_tokens=4)

        async def go() -> list[str]:
            return [p async for p in stream]

        pieces = asyncio.run(go())
    assert pieces == ["Hel", "lo"]
    assert stream.completion is not None and stream.completion.finish_reason == "stop"
    assert stream.completion.usage.total_tokens == 5
    body = sent(route)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_stream_cut_before_its_end_is_malformed(mock: respx.MockRouter) -> None:
    cut = SSE.split('data: {"model":"m","choices":[{"index":0,"delta":{},')[0]
    mock.post(BASE + "/chat/completions").respond(
        text=cut, headers={"content-type": "text/event-stream"}
    )
    llm = pk.connect(client=sync_client(), model="m")
    with pytest.raises(MalformedResponseError, match="ended before its end"):
        list(llm.stream("Hi"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embeddings(mock: respx.MockRouter, mode: str) -> None:
    reply = {
        "data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}],
        "model": "e",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    route = mock.post(BASE + "/embeddings").respond(json=reply)
    llm = pk.connect(
        client=sync_client(), async_client=async_client(), model="m", embedding_model="e"
    )
    e = llm.embed(["a", "b"]) if mode == "sync" else asyncio.run(llm.aembed(["a", "b"]))
    assert e.vectors == [[1.0, 0.0], [0.0, 1.0]] and e.usage.prompt_tokens == 4
    assert sent(route) == {"model": "e", "input": ["a", "b"], "encoding_format": "float"}


# --------------------------------------------------------------------------- one retry layer


def test_promptkit_retries_and_the_sdks_do_not(mock: respx.MockRouter) -> None:
    """The client says max_retries=5; promptkit's policy (2 retries) is the only one."""
    route = mock.post(BASE + "/chat/completions").respond(503, json={"error": {"message": "busy"}})
    llm = pk.connect(client=sync_client(max_retries=5), model="m", max_retries=2)
    sleeps = wrap(llm)
    with pytest.raises(ServerError) as info:
        llm.complete("Hi")
    assert route.call_count == 3 and info.value.attempts == 3 and len(sleeps.waits) == 2
    assert [c.request.headers["x-stainless-retry-count"] for c in route.calls] == ["0"] * 3


def test_async_retries_count_the_same(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions")
    route.side_effect = [
        httpx.Response(500, json={"error": {"message": "oops"}}),
        httpx.Response(429, json={"error": {"message": "slow"}}, headers={"retry-after": "2"}),
        httpx.Response(200, json=ONE),
    ]
    llm = pk.connect(client=async_client(max_retries=5), model="m")
    sleeps = wrap(llm)
    assert asyncio.run(llm.acomplete("Hi")).text == "Lyon"
    assert route.call_count == 3 and sleeps.waits[1] == 2.0


def test_retries_sdk_leaves_them_to_the_client(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions").respond(
        503, json={"error": {"message": "busy"}}, headers={"retry-after-ms": "1"}
    )
    llm = pk.connect(client=sync_client(max_retries=2), model="m", retries="sdk")
    sleeps = wrap(llm)
    with pytest.raises(ServerError) as info:
        llm.complete("Hi")
    # the SDK's own 2 retries, and promptkit's single attempt around them
    assert route.call_count == 3 and info.value.attempts == 1 and sleeps.waits == []


def test_a_refusal_is_not_retried(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions").respond(
        400, json={"error": {"message": "bad temperature", "code": "invalid_value"}}
    )
    llm = pk.connect(client=sync_client(), model="m")
    with pytest.raises(BadRequestError, match="bad temperature"):
        llm.complete("Hi")
    assert route.call_count == 1


# --------------------------------------------------------------------------- typed errors


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (
            401,
            {"error": {"message": f"Incorrect API key provided: {KEY}"}},
            {},
            AuthenticationError,
        ),
        (403, {"error": {"message": "no access"}}, {}, AuthenticationError),
        (429, {"error": {"message": "slow down"}}, {"retry-after": "7"}, RateLimitError),
        (400, {"error": {"message": "bad", "code": "invalid"}}, {}, BadRequestError),
        (404, {"error": {"message": "no such model"}}, {}, BadRequestError),
        (
            400,
            {"error": {"message": "This model's maximum context length is 8192 tokens"}},
            {},
            ContextLengthError,
        ),
        (500, {"error": {"message": "boom"}}, {}, ServerError),
        (
            400,
            {"error": {"message": "The response was filtered", "code": "content_filter"}},
            {},
            ContentFilteredError,
        ),
    ],
)
def test_status_errors_are_typed(
    mock: respx.MockRouter,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    error: type[Exception],
) -> None:
    mock.post(BASE + "/chat/completions").respond(status, json=body, headers=headers)
    llm = pk.connect(client=sync_client(), model="m", max_retries=0)
    with pytest.raises(error) as info:
        llm.complete("Hi")
    exc: Any = info.value
    assert exc.status == status and exc.backend == "openai-sdk"
    assert KEY not in str(exc) and KEY not in repr(exc) and KEY not in (exc.body or "")
    assert exc.__cause__ is None and exc.__context__ is None
    if error is RateLimitError:
        assert exc.retry_after == 7.0


def test_key_echoed_by_a_401_never_shows(
    mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    mock.post(BASE + "/chat/completions").respond(
        401, text=f"denied for key {KEY} (Bearer {KEY})", headers={"content-type": "text/plain"}
    )
    caplog.set_level("DEBUG")
    llm = pk.connect("openai-sdk", base_url=BASE, api_key=KEY, model="m")
    with pytest.raises(AuthenticationError) as info:
        llm.complete("Hi")
    shown = [str(info.value), repr(info.value), info.value.body or "", repr(llm.backend)]
    shown += [repr(pk.resolve_config("openai-sdk", base_url=BASE, api_key=KEY))]
    shown += [r.getMessage() for r in caplog.records]
    assert not any(KEY in s for s in shown)


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ReadTimeout, BackendTimeoutError),
        (httpx.ConnectError, BackendConnectionError),
        (httpx.RemoteProtocolError, BackendConnectionError),
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_transport_errors_are_typed_and_retried(
    mock: respx.MockRouter, exc: type[Exception], error: type[Exception], mode: str
) -> None:
    route = mock.post(BASE + "/chat/completions").mock(side_effect=exc)
    llm = pk.connect(client=sync_client(), async_client=async_client(), model="m", max_retries=1)
    wrap(llm)
    with pytest.raises(error) as info:
        llm.complete("Hi") if mode == "sync" else asyncio.run(llm.acomplete("Hi"))
    assert route.call_count == 2 and info.value.attempts == 2  # type: ignore[attr-defined]
    assert info.value.__cause__ is None


def test_content_filter_finish_reason(mock: respx.MockRouter) -> None:
    reply = {**ONE, "choices": [{**ONE["choices"][0], "finish_reason": "content_filter"}]}
    mock.post(BASE + "/chat/completions").respond(json=reply)
    with pytest.raises(ContentFilteredError):
        pk.connect(client=sync_client(), model="m").complete("Hi")


@pytest.mark.parametrize(
    ("content", "ctype", "match"),
    [
        (b'{"choices": [', "application/json", "not a JSON object"),
        (b"<html><body>Sign in</body></html>", "text/html", "text/html, not JSON"),
        (json.dumps({**OK, "choices": []}).encode(), "application/json", "no choices"),
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_sdks_odd_replies_are_malformed(
    mock: respx.MockRouter, content: bytes, ctype: str, match: str, mode: str
) -> None:
    """Malformed JSON (the SDK: a bare JSONDecodeError), an HTML 200 (the SDK: a str) and
    an empty choices list all become MalformedResponseError."""
    route = mock.post(BASE + "/chat/completions").respond(
        200, content=content, headers={"content-type": ctype}
    )
    llm = pk.connect(client=sync_client(), async_client=async_client(), model="m")
    with pytest.raises(MalformedResponseError, match=match):
        llm.complete("Hi") if mode == "sync" else asyncio.run(llm.acomplete("Hi"))
    assert route.call_count == 1


# --------------------------------------------------------------------------- Azure


def test_azure_from_settings_key_deployment_and_api_version(mock: respx.MockRouter) -> None:
    url = AZURE + "/openai/deployments/gpt-prod/chat/completions"
    route = mock.post(url, params={"api-version": "2024-10-21"}).respond(json=ONE)
    embed = mock.post(AZURE + "/openai/deployments/emb/embeddings").respond(
        json={"data": [{"index": 0, "embedding": [0.5]}]}
    )
    llm = pk.connect(
        "azure",
        base_url=AZURE,
        api_key=AZURE_KEY,
        model="gpt-prod",
        api_version="2024-10-21",
        embedding_model="emb",
    )
    assert isinstance(llm.backend, AzureOpenAIBackend)
    assert llm.complete("Hi", max_tokens=5).text == "Lyon"
    request = route.calls.last.request
    assert request.headers["api-key"] == AZURE_KEY
    assert sent(route) == {
        "model": "gpt-prod",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 5,
    }
    assert llm.embed("x").vectors == [[0.5]] and embed.call_count == 1
    assert AZURE_KEY not in repr(llm.backend)


def test_azure_token_provider_async(mock: respx.MockRouter) -> None:
    route = mock.post(AZURE + "/openai/deployments/dep/chat/completions").respond(json=ONE)
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return "entra-token"

    llm = pk.connect(
        "azure",
        base_url=AZURE,
        model="dep",
        api_version="2024-10-21",
        azure_ad_token_provider=token,
    )
    assert asyncio.run(llm.acomplete("Hi")).text == "Lyon"
    assert llm.complete("Hi").text == "Lyon"
    assert route.calls[0].request.headers["authorization"] == "Bearer entra-token"
    assert len(calls) == 2


def test_azure_wrapping_a_client_and_its_errors(mock: respx.MockRouter) -> None:
    route = mock.post(AZURE + "/openai/deployments/dep/chat/completions").respond(
        400,
        json={
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure "
                "OpenAI's content management policy.",
                "code": "content_filter",
            }
        },
    )
    client = openai.AzureOpenAI(azure_endpoint=AZURE, api_key=AZURE_KEY, api_version="2024-10-21")
    llm = pk.connect(client=client, model="dep")
    assert llm.backend.name == "azure"
    with pytest.raises(ContentFilteredError) as info:
        llm.complete("Hi")
    assert route.call_count == 1 and info.value.status == 400  # type: ignore[attr-defined]
    mock.post(AZURE + "/openai/deployments/dep/chat/completions").respond(
        401, json={"error": {"message": f"bad key {AZURE_KEY}"}}
    )
    with pytest.raises(AuthenticationError) as auth:
        llm.complete("Hi")
    assert AZURE_KEY not in str(auth.value) and "deployment 'dep'" in str(auth.value)


def test_azure_from_environment_variables(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "PROMPTKIT_BACKEND": "azure",
        "AZURE_OPENAI_ENDPOINT": AZURE,
        "AZURE_OPENAI_API_KEY": AZURE_KEY,
        "AZURE_OPENAI_DEPLOYMENT": "dep",
        "AZURE_OPENAI_API_VERSION": "2025-01-01",
    }
    cfg = pk.resolve_config(env=env, cwd=Path("/"))
    assert (cfg.backend, cfg.base_url, cfg.model) == ("azure", AZURE, "dep")
    assert cfg.options == {"api_version": "2025-01-01"} and cfg.has_api_key
    assert cfg.sources["api_key"] == "env AZURE_OPENAI_API_KEY"
    assert AZURE_KEY not in repr(cfg) and AZURE_KEY not in cfg.describe()
    # the key of AZURE_OPENAI_ENDPOINT is never sent to another endpoint
    other = pk.resolve_config(env=env, cwd=Path("/"), base_url="https://other.openai.azure.com")
    assert not other.has_api_key
    route = mock.post(AZURE + "/openai/deployments/dep/chat/completions").respond(json=ONE)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir("/")
    assert pk.connect().complete("Hi").text == "Lyon"
    assert route.calls.last.request.url.params["api-version"] == "2025-01-01"


def test_azure_from_a_promptkit_toml_profile(mock: respx.MockRouter, tmp_path: Path) -> None:
    (tmp_path / "promptkit.toml").write_text(
        'backend = "ollama"\n'
        "[profiles.azure]\n"
        'backend = "azure"\n'
        'model = "dep"\n'
        f'base_url = "{AZURE}"\n'
        'api_key_env = "MY_AZURE_KEY"\n'
        'api_version = "2024-10-21"\n'
        "max_retries = 1\n",
        encoding="utf-8",
    )
    env = {"MY_AZURE_KEY": AZURE_KEY, "AZURE_OPENAI_API_VERSION": "1999-01-01"}
    cfg = pk.resolve_config(profile="azure", env=env, cwd=tmp_path)
    assert cfg.backend == "azure" and cfg.options["api_version"] == "2024-10-21"
    route = mock.post(AZURE + "/openai/deployments/dep/chat/completions").respond(500)
    llm = cfg.build()
    wrap(llm)
    with pytest.raises(ServerError):
        llm.complete("Hi")
    assert route.call_count == 2
    assert route.calls.last.request.headers["api-key"] == AZURE_KEY


def test_azure_needs_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_VERSION", raising=False)
    with pytest.raises(ConfigurationError, match="api_version"):
        AzureOpenAIBackend(model="d", base_url=AZURE, api_key="k")
    with pytest.raises(ConfigurationError, match="endpoint"):
        AzureOpenAIBackend(model="d", api_key="k", api_version="v")
    with pytest.raises(ConfigurationError, match="credentials"):
        AzureOpenAIBackend(model="d", base_url=AZURE, api_version="v")
    with pytest.raises(ConfigurationError, match="deployment"):
        AzureOpenAIBackend(base_url=AZURE, api_key="k", api_version="v")


def test_openai_sdk_built_from_settings_reads_openai_variables(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", BASE)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = pk.resolve_config("openai-sdk", model="m", cwd=Path("/"))
    assert cfg.base_url == BASE and cfg.sources["api_key"] == "env OPENAI_API_KEY"
    route = mock.post(BASE + "/chat/completions").respond(json=ONE)
    assert cfg.build().complete("Hi").text == "Lyon"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def test_cli_backends_probes_azure_with_its_header_and_api_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptkit._cli import main

    (tmp_path / "promptkit.toml").write_text(
        'backend = "fake"\n'
        "[profiles.az]\n"
        'backend = "azure"\n'
        'model = "dep"\n'
        f'base_url = "{AZURE}"\n'
        'api_key_env = "MY_AZURE_KEY"\n'
        'api_version = "2024-10-21"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_AZURE_KEY", AZURE_KEY)
    with respx.mock(assert_all_called=False) as router:
        route = router.get(AZURE + "/openai/models", params={"api-version": "2024-10-21"})
        route.respond(json={"data": []})
        assert main(["backends", "--json"]) == 0
    assert route.calls.last.request.headers["api-key"] == AZURE_KEY
    rows = {r["profile"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["az"]["reachable"] is True and AZURE_KEY not in json.dumps(rows)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_refused_stream_is_typed_and_retried(mock: respx.MockRouter, mode: str) -> None:
    route = mock.post(BASE + "/chat/completions")
    route.side_effect = [
        httpx.Response(429, json={"error": {"message": "slow"}}, headers={"retry-after": "3"}),
        httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"}),
    ]
    llm = pk.connect(client=sync_client(), async_client=async_client(), model="m")
    sleeps = wrap(llm)
    if mode == "sync":
        text = "".join(llm.stream("Hi"))
    else:

        async def go() -> str:
            return "".join([p async for p in llm.astream("Hi")])

        text = asyncio.run(go())
    assert text == "Hello" and route.call_count == 2 and sleeps.waits == [3.0]
    mock.post(BASE + "/chat/completions").respond(401, json={"error": {"message": "no"}})
    with pytest.raises(AuthenticationError):
        list(llm.stream("Hi"))


def test_a_calls_timeout_goes_to_the_sdk(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions").respond(json=ONE)
    llm = pk.connect(client=sync_client(timeout=30.0), model="m")
    llm.complete("Hi", timeout=7)
    llm.complete("Hi")
    reads = [c.request.extensions["timeout"]["read"] for c in route.calls]
    assert reads == [7.0, 30.0]
    assert llm.backend.timeout == 30.0  # type: ignore[attr-defined]


def _echo(request: httpx.Request) -> httpx.Response:
    """Replies with the last message's text, so every input gets its own answer."""
    text = json.loads(request.content)["messages"][-1]["content"]
    reply = {"model": "m", "choices": [{"index": 0, "message": {"content": text}}]}
    reply["choices"][0]["finish_reason"] = "stop"
    return httpx.Response(200, json=reply)


@pytest.mark.parametrize("clients", ["sync", "both"])
def test_batch_and_evaluation_run_through_the_sdk(mock: respx.MockRouter, clients: str) -> None:
    from promptkit.runner import run_batch

    route = mock.post(BASE + "/chat/completions").mock(side_effect=_echo)
    both = {"async_client": async_client()} if clients == "both" else {}
    llm = pk.connect(client=sync_client(), model="m", **both)
    prompt = pk.ZeroShot(instruction="Echo.", template="{{ input }}")
    result = run_batch(prompt, llm, [{"input": f"x{i}"} for i in range(6)], progress=False)
    assert result.summary.ok == 6
    assert all(text.strip().endswith(f"x{i}") for i, text in enumerate(result.texts))
    data = pk.Dataset.from_rows([{"input": "7", "expected": "7"}, {"input": "8", "expected": "9"}])
    report = pk.evaluate({"echo": prompt}, data, llm, progress=False)
    assert report["echo"].accuracy == 0.5
    assert route.call_count == 8


def test_retries_sdk_on_clients_promptkit_builds(mock: respx.MockRouter) -> None:
    route = mock.post(BASE + "/chat/completions").respond(
        500, json={"error": {"message": "oops"}}, headers={"retry-after-ms": "1"}
    )
    llm = pk.connect("openai-sdk", base_url=BASE, model="m", max_retries=1, retries="sdk")
    sleeps = wrap(llm)
    with pytest.raises(ServerError) as info:
        llm.complete("Hi")
    assert route.call_count == 2 and info.value.attempts == 1 and sleeps.waits == []
    llm = pk.connect("openai-sdk", base_url=BASE, model="m", max_retries=1)
    sleeps = wrap(llm)
    with pytest.raises(ServerError) as info:
        llm.complete("Hi")
    assert route.call_count == 4 and info.value.attempts == 2 and len(sleeps.waits) == 1


def test_built_clients_serve_async_calls_on_each_event_loop(mock: respx.MockRouter) -> None:
    chat = mock.post(BASE + "/chat/completions")
    chat.side_effect = [
        httpx.Response(200, json=ONE),
        httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"}),
        httpx.Response(200, json=ONE),
    ]
    llm = pk.connect("openai-sdk", base_url=BASE, model="m")

    async def first() -> tuple[str, str]:
        done = await llm.acomplete("a")
        return done.text, "".join([p async for p in llm.astream("b")])

    assert asyncio.run(first()) == ("Lyon", "Hello")
    built = llm.backend.async_client  # type: ignore[attr-defined]
    assert asyncio.run(llm.acomplete("c")).text == "Lyon"  # a new loop: a new client
    assert llm.backend.async_client is not built  # type: ignore[attr-defined]
    assert all(c.request.headers["x-stainless-async"] != "false" for c in chat.calls)


@pytest.mark.parametrize(
    "outcome",
    [json.JSONDecodeError("Expecting value", "<html>", 0), "<html><body>Sign in</body></html>"],
)
def test_what_the_sdk_itself_makes_of_odd_replies_is_malformed(
    outcome: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the SDK parse a reply itself (a client subclass, a future version), its bare
    JSONDecodeError, or the str it returns for a text/html 200, is a MalformedResponseError."""
    backend = OpenAISDKBackend(client=sync_client(), model="m")

    def create(**kwargs: Any) -> Any:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(backend, "_call", lambda *a: (create, {}))
    with pytest.raises(MalformedResponseError) as info:
        LLM(backend).complete("Hi")
    assert info.value.__cause__ is None and info.value.__context__ is None
