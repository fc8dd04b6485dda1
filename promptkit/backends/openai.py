"""The OpenAI API and OpenAI-compatible servers (LM Studio, ...; llama.cpp's server is
:mod:`promptkit.backends.llama_server`).

Speaks the wire format directly with httpx: ``POST {base_url}/chat/completions`` for
messages, ``POST {base_url}/completions`` for raw prompts, server-sent events for
streaming, ``POST {base_url}/embeddings`` for embeddings. Bodies are plain dicts and
replies are read without validation models, so a call costs little more than the HTTP
round trip itself.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .._errors import ConfigurationError, ParameterError
from .._media import Part, check_parts, openai_parts
from .._params import SAMPLING_FIELDS
from .._types import (
    Choice,
    Completion,
    Delta,
    Embeddings,
    Message,
    Request,
    TokenLogprob,
    ToolCall,
    Usage,
)
from ._http import Body, HTTPBackend, SSEDecoder, dumps, loads

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = [
    "OpenAIBackend",
    "function_tools",
    "parse_choice",
    "parse_tool_calls",
    "parse_usage",
]

OPENAI_BASE_URL = "https://api.openai.com/v1"

#: Parameters that many OpenAI-compatible servers add (vLLM, llama.cpp).
SAMPLER_EXTRAS = frozenset({"top_k", "min_p", "repetition_penalty"})

#: promptkit parameters the OpenAI API honours: all but the sampler extras.
OPENAI_PARAMS = frozenset(SAMPLING_FIELDS) - SAMPLER_EXTRAS


def parse_usage(raw: Any, reply: Any = None) -> Usage:
    """Usage of a reply: OpenAI's ``usage`` object, with the cached prompt tokens from
    ``prompt_tokens_details.cached_tokens`` (OpenAI, vLLM, recent llama.cpp servers), else
    the ``reply``'s llama.cpp ``timings.cache_n`` or ``tokens_cached``."""
    if not isinstance(raw, dict):
        return Usage()
    cached = None
    details = raw.get("prompt_tokens_details")
    timings = reply.get("timings") if isinstance(reply, dict) else None
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        cached = details["cached_tokens"]
    elif isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        cached = timings["cache_n"]
    elif isinstance(reply, dict) and isinstance(reply.get("tokens_cached"), int):
        cached = reply["tokens_cached"]
    return Usage(
        raw.get("prompt_tokens"), raw.get("completion_tokens"), raw.get("total_tokens"), cached
    )


def _logprob(item: Mapping[str, Any]) -> float:
    """A token's log-probability: ``logprob``, or the log of ``prob`` (llama.cpp's
    ``post_sampling_probs`` replies; a probability of 0 is ``-inf``)."""
    if "logprob" in item:
        return float(item["logprob"])
    prob = float(item["prob"])
    return math.log(prob) if prob > 0 else -math.inf


def _content_logprobs(content: Any) -> tuple[TokenLogprob, ...]:
    """``logprobs.content[]`` items (``token``, ``logprob``, ``top_logprobs``; or llama.cpp's
    ``prob``/``top_probs``) -> TokenLogprobs."""
    return tuple(
        TokenLogprob(
            item["token"],
            _logprob(item),
            tuple(
                (t["token"], _logprob(t))
                for t in item.get("top_logprobs") or item.get("top_probs") or ()
            ),
        )
        for item in content
    )


def _chat_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    """``choices[i].logprobs.content[]`` -> TokenLogprobs."""
    if not isinstance(raw, dict):
        return None
    content = raw.get("content")
    if content is None:
        return None
    return _content_logprobs(content)


def _text_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    """Legacy completions: ``tokens`` / ``token_logprobs`` / ``top_logprobs`` (dicts), or
    the chat form ``content[]`` that llama.cpp's server returns on ``/v1/completions``."""
    if not isinstance(raw, dict):
        return None
    if raw.get("tokens") is None:
        content = raw.get("content")
        return None if content is None else _content_logprobs(content)
    tokens = raw["tokens"]
    values = raw.get("token_logprobs") or [None] * len(tokens)
    tops = raw.get("top_logprobs") or [None] * len(tokens)
    return tuple(
        TokenLogprob(
            tok,
            float("nan") if lp is None else float(lp),
            tuple((k, float(v)) for k, v in top.items()) if top else (),
        )
        for tok, lp, top in zip(tokens, values, tops, strict=False)
    )


def parse_choice(raw: Any, i: int, chat: bool) -> Choice:
    """One entry of a reply's ``choices`` (chat or legacy completions), the ``i``-th.
    Raises KeyError/TypeError/AttributeError/ValueError when it is malformed."""
    if chat:
        text = raw["message"].get("content") or ""
        logprobs = _chat_logprobs(raw.get("logprobs"))
    else:
        text = raw["text"]
        logprobs = _text_logprobs(raw.get("logprobs"))
    if not isinstance(text, str):
        raise TypeError("the choice's text is not a string")
    calls = parse_tool_calls(raw["message"].get("tool_calls")) if chat else ()
    return Choice(text, raw.get("index", i), raw.get("finish_reason"), logprobs, calls)


# --------------------------------------------------------------------------- tool calls


def tool_message_fields(message: Message) -> dict[str, Any]:
    """A message's tool fields in the chat-completions form: an assistant's
    ``tool_calls``, a tool message's ``tool_call_id`` (and ``name``). An assistant that
    said nothing keeps ``content: ""`` (not null: llama-cpp-python's server rejects null)."""
    out: dict[str, Any] = {}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.raw_arguments},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
        if message.name:
            out["name"] = message.name
    return out


def function_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tool specs (``name``, ``description``, ``parameters``) in the function form that
    OpenAI's chat API and Ollama's /api/chat both take."""
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description") or "",
                "parameters": t["parameters"],
            },
        }
        for t in tools
    ]


def tool_request_fields(request: Request) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` for the body (empty without
    tools)."""
    if not request.tools:
        return {}
    out: dict[str, Any] = {"tools": function_tools(request.tools)}
    choice = request.tool_choice
    if choice in ("auto", "required", "none"):
        out["tool_choice"] = choice
    elif choice is not None:
        out["tool_choice"] = {"type": "function", "function": {"name": choice}}
    if request.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = request.parallel_tool_calls
    return out


def parse_tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    """A reply message's ``tool_calls`` (None/absent: none), OpenAI's shape and Ollama's.
    Arguments are kept as the text sent; an object (Ollama, some servers) is serialised;
    calls without an id (Ollama) are numbered ``call_0``, ``call_1``, .... Raises
    KeyError/TypeError on a malformed entry."""
    if not raw:
        return ()
    calls = []
    for i, item in enumerate(raw):
        fn = item["function"]
        args = fn.get("arguments")
        text = args if isinstance(args, str) else json.dumps(args if args is not None else {})
        calls.append(
            ToolCall(id=item.get("id") or f"call_{i}", name=str(fn["name"]), raw_arguments=text)
        )
    return tuple(calls)


class ToolCallAssembler:
    """Folds streamed ``delta.tool_calls`` pieces into whole calls, by ``index``: the first
    piece of a call brings its id and name, later ones append to its arguments text. A new
    id at an index already in use (servers that number every call 0) opens a new call."""

    __slots__ = ("_parts", "_slot")

    def __init__(self) -> None:
        self._parts: list[list[Any]] = []  # [id, name, [argument pieces]]
        self._slot: dict[int, int] = {}

    def feed(self, pieces: Any) -> None:
        """One delta's ``tool_calls`` list. Raises TypeError/AttributeError when malformed."""
        for piece in pieces or ():
            index = int(piece.get("index", len(self._slot)))
            fn = piece.get("function") or {}
            call_id = piece.get("id")
            slot = self._slot.get(index)
            known = self._parts[slot][0] if slot is not None else ""
            if slot is None or (call_id and known and call_id != known):
                slot = len(self._parts)
                self._slot[index] = slot
                self._parts.append(["", "", []])
            part = self._parts[slot]
            if call_id:
                part[0] = call_id
            if fn.get("name") and not part[1]:
                part[1] = str(fn["name"])
            args = fn.get("arguments")
            if args:
                part[2].append(args if isinstance(args, str) else json.dumps(args))

    def calls(self) -> tuple[ToolCall, ...]:
        """The whole calls, in order."""
        return tuple(
            ToolCall(id=cid or f"call_{i}", name=name, raw_arguments="".join(args))
            for i, (cid, name, args) in enumerate(self._parts)
        )


def _vector(raw: Any, pool: bool) -> list[float]:
    """One embedding as floats. With ``pool``, one vector per token (what llama.cpp servers
    return for a model without a pooling layer) is mean-pooled into one."""
    if pool and isinstance(raw, list) and raw and all(isinstance(t, list) for t in raw):
        dim = len(raw[0])
        if not dim or any(len(t) != dim for t in raw):
            raise ValueError("the per-token vectors differ in length")
        return [math.fsum(float(t[i]) for t in raw) / len(raw) for i in range(dim)]
    if not isinstance(raw, list) or not raw:
        raise TypeError("an embedding is not a list of numbers")
    out = [float(x) for x in raw]
    if not all(math.isfinite(x) for x in out):
        raise ValueError("an embedding holds NaN or infinity")
    return out


def _is_plain_json(resp: httpx.Response) -> bool:
    ctype = resp.headers.get("content-type", "")
    return "json" in ctype and "event-stream" not in ctype


class _StreamState:
    """Folds SSE events into text pieces and the final Delta."""

    __slots__ = ("chat", "done", "finish", "model", "tools", "usage")

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.tools = ToolCallAssembler()
        self.done = False
        self.finish: str | None = None
        self.model: str | None = None
        self.usage: Usage | None = None

    def event(self, data: dict[str, Any]) -> str:
        """The text piece an event carries ('' if none). Raises KeyError/TypeError on a
        malformed event."""
        if data.get("model"):
            self.model = data["model"]
        if data.get("usage"):
            self.usage = parse_usage(data["usage"], data)
        text = ""
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = (choice.get("delta") or {}) if self.chat else choice
            piece = delta.get("content" if self.chat else "text")
            if piece:
                text += piece
            if self.chat and delta.get("tool_calls"):
                self.tools.feed(delta["tool_calls"])
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return text

    def last(self) -> Delta:
        return Delta(
            "",
            finish_reason=self.finish,
            usage=self.usage,
            model=self.model,
            tool_calls=self.tools.calls(),
        )


class OpenAIBackend(HTTPBackend):
    """The OpenAI API, or any server that speaks it.

    >>> from promptkit import LLM
    >>> llm = LLM(OpenAIBackend(model="gpt-4o-mini", api_key="sk-..."))   # doctest: +SKIP
    >>> llm.complete("Capital of France?", temperature=0).text             # doctest: +SKIP
    'Paris'
    >>> OpenAIBackend(model="my-model", base_url="http://127.0.0.1:1234/v1")
    <OpenAIBackend model='my-model' base_url='http://127.0.0.1:1234/v1'>

    Against the real OpenAI URL (the default) an API key is required (``api_key=`` or the
    ``OPENAI_API_KEY`` environment variable), ``max_tokens`` is sent as
    ``max_completion_tokens`` and streams ask for usage. Other servers get ``max_tokens``
    and only standard fields.

    Options:

    - ``model``, ``base_url`` (default ``https://api.openai.com/v1``), ``api_key`` (sent
      as ``Authorization: Bearer``; never shown in reprs or errors).
    - ``timeout`` (60 s), ``headers`` (extra HTTP headers).
    - ``max_retries`` (3), ``retry_base_delay`` (0.5 s), ``retry_max_delay`` (8 s),
      ``retry_after_max`` (60 s), ``retry_total_timeout`` (120 s): see
      :class:`~promptkit.backends._http.RetryPolicy`.
    - ``extra_params``: more promptkit parameter names the server accepts (for example
      ``["top_k", "min_p"]`` for a compatible server that takes them); sent under the same
      name.
    - ``stream_usage``: ask for token usage at the end of streams
      (``stream_options.include_usage``); default: on the real OpenAI URL and for the vLLM
      and llama-server backends, not for other compatible servers, since some reject
      unknown fields.
    - ``embedding_model``: the model :meth:`~promptkit.LLM.embed` asks for (default:
      ``model``); required on the real OpenAI URL, e.g. ``"text-embedding-3-small"``, since
      chat models do not embed.

    Embeddings: ``POST {base_url}/embeddings`` with ``{"model", "input": [...]}``, 64 texts
    a request, with the same retries and errors as chat calls.

    Tools: ``tools=[...]`` go out as ``tools`` (``{"type": "function", "function": {...}}``),
    ``tool_choice`` (a tool's name as ``{"type": "function", "function": {"name"}}``) and
    ``parallel_tool_calls``; history messages carry ``tool_calls`` / ``tool_call_id``.
    Replies' ``message.tool_calls`` become ``Choice.tool_calls``; in a stream, the
    ``delta.tool_calls`` pieces are assembled by ``index`` and the whole calls are on
    ``TextStream.completion``. A llama.cpp server needs ``--jinja`` for tools; vLLM needs
    ``--enable-auto-tool-choice --tool-call-parser <parser>`` (e.g. ``hermes``).
    """

    name: ClassVar[str] = "openai"
    supports: ClassVar[frozenset[str]] = OPENAI_PARAMS
    native_n: ClassVar[bool] = True
    supports_json_schema: ClassVar[bool] = True
    supports_embeddings: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    embed_batch_size: ClassVar[int] = 64
    #: Mean-pool per-token embeddings (llama.cpp servers on models without pooling).
    pool_token_embeddings: ClassVar[bool] = False
    renames: ClassVar[dict[str, str]] = {}
    default_base_url: ClassVar[str] = OPENAI_BASE_URL
    #: Whether streams ask for usage when ``stream_usage`` is not given (None: OpenAI only).
    default_stream_usage: ClassVar[bool | None] = None
    #: Send ``max_tokens`` as ``max_completion_tokens`` on chat (always on the OpenAI URL).
    max_completion_tokens: ClassVar[bool] = False
    #: The least ``logprobs`` number sent on ``/completions`` when token log-probabilities
    #: are asked (OpenAI reads 0 as "the chosen tokens only"; llama.cpp as "none").
    min_text_logprobs: ClassVar[int] = 0
    #: Content part types the chat endpoint takes (see :mod:`promptkit._media`); a message
    #: holding another type raises :class:`~promptkit.UnsupportedPartError` before sending.
    content_parts: ClassVar[frozenset[str]] = frozenset({"text", "image", "audio", "file"})

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        extra_params: Iterable[str] | None = None,
        stream_usage: bool | None = None,
        embedding_model: str | None = None,
        **options: Any,
    ) -> None:
        url = (base_url or self.default_base_url).strip().rstrip("/")
        official = urlsplit(url).hostname == "api.openai.com"
        if official:
            api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
            if not api_key:
                raise ConfigurationError(
                    "No API key for the OpenAI API: set the OPENAI_API_KEY environment "
                    "variable or pass api_key=... (for a local OpenAI-compatible server, pass "
                    "its base_url, e.g. 'http://127.0.0.1:8000/v1')."
                )
            if not model:
                raise ConfigurationError(
                    "The OpenAI API needs a model: pass model=..., e.g. 'gpt-4o-mini'."
                )
        # the transport options (timeout, max_retries, headers, retry_*): HTTPOptions
        super().__init__(model=model, base_url=url, api_key=api_key, **options)
        self._official = official
        if extra_params:
            extra = frozenset(extra_params)
            unknown = extra - _KNOWN_PARAMS
            if unknown:
                raise ConfigurationError(
                    f"extra_params: {sorted(unknown)} are not promptkit sampling parameters "
                    f"(known: {', '.join(sorted(_KNOWN_PARAMS))}). Server-specific fields go "
                    "in SamplingParams(extra={...})."
                )
            self.supports = type(self).supports | extra  # type: ignore[misc]
        if stream_usage is None:
            default = self.default_stream_usage
            stream_usage = official if default is None else default
        self.stream_usage = stream_usage
        self.embedding_model = embedding_model
        self._chat_url = self._url("/chat/completions")
        self._text_url = self._url("/completions")
        self._embed_url = self._url("/embeddings")

    # ------------------------------------------------------------------ request body

    def _response_format(self, rf: Mapping[str, Any]) -> dict[str, Any]:
        """Request.response_format -> the body's ``response_format`` (``json_object`` with
        the schema once the server refused ``json_schema``, as llama-cpp-python's does)."""
        if self._refused and "json_schema" in self._refused:
            return {"type": "json_object", "schema": rf["schema"]}
        spec: dict[str, Any] = {"name": rf.get("name") or "response", "schema": rf["schema"]}
        if rf.get("strict") is not None:
            spec["strict"] = bool(rf["strict"])
        return {"type": "json_schema", "json_schema": spec}

    def _auth_hint(self) -> str:
        if self._official:
            return (
                "Check that OPENAI_API_KEY (or api_key=...) is valid and has access to model "
                f"{self.model!r}."
            )
        return super()._auth_hint()

    def _wire_content(self, content: str | tuple[Part, ...]) -> Any:
        """A message content in the OpenAI chat form: text as is; parts as ``text``,
        ``image_url`` (http(s) URL passed through, or a ``data:`` URL), ``input_audio``
        (base64 + ``format``) and ``file`` (``file_data`` + ``filename``) objects. A part
        type this server does not take raises :class:`~promptkit.UnsupportedPartError`."""
        if isinstance(content, str):
            return content
        check_parts(content, self.content_parts, self.name)
        return openai_parts(content)

    def _body(self, request: Request, stream: bool) -> Body:
        """(url, JSON body, chat?, params as sent, renames applied)."""
        messages = request.messages
        chat = messages is not None
        body: dict[str, Any] = {}
        if self.model:
            body["model"] = self.model
        if messages is not None:
            body["messages"] = [
                {
                    "role": m.role,
                    "content": self._wire_content(m.content),
                    **tool_message_fields(m),
                }
                for m in messages
            ]
            url = self._chat_url
        elif request.prompt is not None:
            body["prompt"] = request.prompt
            url = self._text_url
        else:
            raise ParameterError("A request needs messages or a prompt; it has neither.")
        sent: dict[str, Any] = {}
        renamed: dict[str, str] = {}
        params = request.params
        renames = self.renames
        for key, value in params.items():
            if key == "logprobs" or key == "top_logprobs":
                continue
            if key == "n" and not self.native_n:
                continue
            wire = renames.get(key, key)
            if key == "max_tokens" and chat and (self._official or self.max_completion_tokens):
                wire = "max_completion_tokens"
            if wire != key:
                renamed[key] = wire
            sent[wire] = value
        logprobs = params.get("logprobs")
        top = params.get("top_logprobs")
        if logprobs or (top is not None and logprobs is not False):
            if chat:
                sent["logprobs"] = True
                if top is not None:
                    sent["top_logprobs"] = top
            else:  # the legacy endpoint takes the number of alternatives
                sent["logprobs"] = max(top or 0, self.min_text_logprobs)
                if top is not None:
                    renamed["top_logprobs"] = "logprobs"
        body.update(sent)
        body.update(tool_request_fields(request))
        if request.response_format is not None:
            body["response_format"] = self._response_format(request.response_format)
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        if request.extra:
            body.update(request.extra)
            sent.update(request.extra)
        return Body(url, dumps(body), chat, sent, renamed)

    def build_body(self, request: Request) -> dict[str, Any]:
        """The JSON body :meth:`complete` would post for ``request`` (to
        ``{base_url}/chat/completions`` for messages, ``{base_url}/completions`` for a raw
        prompt), as plain JSON data. Nothing is sent.

        >>> from promptkit import LLM
        >>> backend = OpenAIBackend(model="m", base_url="http://127.0.0.1:8000/v1")
        >>> request, _ = LLM(backend).prepare_request("Hi", max_tokens=5)
        >>> backend.build_body(request)
        {'model': 'm', 'messages': [{'role': 'user', 'content': 'Hi'}], 'max_tokens': 5}
        """
        content = self._body(request, False).content
        body: dict[str, Any] = json.loads(content)
        return body

    # ------------------------------------------------------------------ replies

    def _completion(
        self,
        data: dict[str, Any],
        chat: bool,
        sent: dict[str, Any],
        renamed: dict[str, str],
        attempts: int,
    ) -> Completion:
        raw_choices = data.get("choices")
        if not raw_choices or not isinstance(raw_choices, list):
            err = data.get("error")
            if err:
                raise self._stream_error(data, attempts)
            raise self._malformed("it has no choices", attempts, dumps(data).decode())
        problem = ""
        try:
            choices = [parse_choice(ch, i, chat) for i, ch in enumerate(raw_choices)]
            usage = parse_usage(data.get("usage"), data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            raise self._malformed(
                f"a choice lacks an expected field ({problem})", attempts, dumps(data).decode()
            )
        return Completion(
            choices=choices,
            model=data.get("model") or self.model,
            backend=self.name,
            usage=usage,
            params_sent=sent,
            renamed=renamed,
            raw=data,
        )

    # ------------------------------------------------------------------ embeddings

    def _embed_body(self, texts: Sequence[str]) -> bytes:
        model = self.embedding_model or (None if self._official else self.model)
        if not model and self._official:
            raise ConfigurationError(
                "The OpenAI API embeds with an embedding model, not a chat model: pass "
                "embedding_model=..., e.g. 'text-embedding-3-small'."
            )
        body: dict[str, Any] = {"input": list(texts)}
        if model:
            body["model"] = model
        return dumps(body)

    def _embeddings(self, data: dict[str, Any], n: int, attempts: int) -> Embeddings:
        if data.get("error"):
            raise self._stream_error(data, attempts)
        problem = ""
        try:
            items = data["data"]
            if not isinstance(items, list) or len(items) != n:
                raise ValueError(f"{n} embeddings asked, {len(items)} returned")
            order = sorted(range(n), key=lambda i: int(items[i].get("index", i)))
            vectors = [_vector(items[i]["embedding"], self.pool_token_embeddings) for i in order]
            usage = parse_usage(data.get("usage"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            raise self._malformed(
                f"it is not an embeddings reply ({problem})",
                attempts,
                json.dumps(data, ensure_ascii=False, default=str)[:2000],
            )
        model = data.get("model")
        return Embeddings(
            vectors,
            model=model if isinstance(model, str) and model else self.embedding_model or self.model,
            backend=self.name,
            usage=usage,
        )

    def token_counter(self) -> TokenCounter:
        """tiktoken for ``model`` on the OpenAI API when tiktoken is installed, else the
        approximation."""
        from .._tokens import APPROX, TiktokenCounter

        if self._official and self.model and importlib.util.find_spec("tiktoken") is not None:
            return TiktokenCounter(self.model)
        return APPROX

    # ------------------------------------------------------------------ streaming

    def _event(self, state: _StreamState, payload: str, attempts: int) -> str:
        """Apply one SSE data payload; the text it carries."""
        if payload == "[DONE]":
            state.done = True
            return ""
        data = loads(payload)
        if not isinstance(data, dict):
            raise self._malformed("a stream event is not a JSON object", attempts, payload)
        if data.get("error"):
            raise self._stream_error(data, attempts)
        problem = ""
        try:
            return state.event(data)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        raise self._malformed(f"a stream event lacks a field ({problem})", attempts, payload)

    def _delta(self, state: _StreamState, payload: str | None, attempts: int) -> Delta | None:
        """The text Delta of a complete SSE event's payload (None: no event, or no text)."""
        if payload is None:
            return None
        text = self._event(state, payload, attempts)
        return Delta(text) if text else None

    def _end(self, state: _StreamState, attempts: int) -> Delta:
        if not state.done and state.finish is None:
            raise self._malformed(
                "the stream ended before its end (no finish_reason and no [DONE]); the "
                "connection was probably cut",
                attempts,
            )
        return state.last()

    def _whole(
        self, resp: httpx.Response, chat: bool, sent: dict[str, Any], attempts: int
    ) -> list[Delta]:
        """A server that ignored ``stream: true`` and sent one JSON reply (already read)."""
        done = self._completion(self._json(resp, attempts), chat, sent, {}, attempts)
        return [
            Delta(done.text),
            Delta(
                "",
                finish_reason=done.finish_reason,
                usage=done.usage,
                model=done.model,
                tool_calls=done.tool_calls,
            ),
        ]

    def stream(self, request: Request) -> Iterator[Delta]:
        url, content, chat, sent, _ = self._body(request, True)
        resp, attempts = self._send(url, content, request.timeout, stream=True)
        self._check_stream_type(resp, attempts)
        if _is_plain_json(resp):
            self._read(resp, attempts)
            yield from self._whole(resp, chat, sent, attempts)
            return
        state = _StreamState(chat)
        sse = SSEDecoder()
        for line in self._lines(resp, attempts):
            delta = self._delta(state, sse.feed(line), attempts)
            if delta is not None:
                yield delta
        delta = self._delta(state, sse.flush(), attempts)
        if delta is not None:
            yield delta
        yield self._end(state, attempts)

    async def astream(self, request: Request) -> AsyncIterator[Delta]:
        url, content, chat, sent, _ = self._body(request, True)
        resp, attempts = await self._asend(url, content, request.timeout, stream=True)
        await self._acheck_stream_type(resp, attempts)
        if _is_plain_json(resp):
            await self._aread(resp, attempts)
            for part in self._whole(resp, chat, sent, attempts):
                yield part
            return
        state = _StreamState(chat)
        sse = SSEDecoder()
        async for line in self._alines(resp, attempts):
            delta = self._delta(state, sse.feed(line), attempts)
            if delta is not None:
                yield delta
        delta = self._delta(state, sse.flush(), attempts)
        if delta is not None:
            yield delta
        yield self._end(state, attempts)


_KNOWN_PARAMS = frozenset(SAMPLING_FIELDS)


def __getattr__(name: str) -> Any:
    # LlamaServerBackend moved to promptkit.backends.llama_server (issue 13)
    if name == "LlamaServerBackend":
        from .llama_server import LlamaServerBackend

        return LlamaServerBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
