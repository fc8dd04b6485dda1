"""Ollama, through its native API (``/api/chat``, ``/api/generate`` and ``/api/embed``)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from .._errors import ConfigurationError, ParameterError, UnsupportedPartError
from .._media import ImagePart, Part, check_parts, content_text
from .._params import SAMPLING_FIELDS
from .._types import (
    Choice,
    Completion,
    Delta,
    Embeddings,
    Message,
    Request,
    TokenLogprob,
    Usage,
)
from ._http import Body, Failure, HTTPBackend, dumps, loads
from .openai import function_tools, parse_tool_calls  # the same shapes as OpenAI's

__all__ = ["OllamaBackend"]

#: Model options Ollama documents (the "every available option" example of ``docs/api.md``):
#: name -> (kind, low, high). ``extra`` keys that are not request fields must be one of
#: these; they go into ``body["options"]``.
_INT, _FLOAT, _BOOL, _STOP = "a whole number", "a number", "true or false", "a list of strings"
OPTIONS: dict[str, tuple[str, float | None, float | None]] = {
    # sampling (the first ones are also SamplingParams fields, under Ollama's names)
    "temperature": (_FLOAT, 0, None),
    "top_p": (_FLOAT, 0, 1),
    "top_k": (_INT, 0, None),
    "min_p": (_FLOAT, 0, 1),
    "seed": (_INT, None, None),
    "stop": (_STOP, None, None),
    "num_predict": (_INT, -2, None),
    "repeat_penalty": (_FLOAT, 0, None),
    "presence_penalty": (_FLOAT, None, None),
    "frequency_penalty": (_FLOAT, None, None),
    "num_keep": (_INT, -1, None),
    "typical_p": (_FLOAT, 0, 1),
    "repeat_last_n": (_INT, -1, None),
    "mirostat": (_INT, 0, 2),
    "mirostat_tau": (_FLOAT, 0, None),
    "mirostat_eta": (_FLOAT, 0, None),
    "penalize_newline": (_BOOL, None, None),
    # runner (how the model is loaded)
    "num_ctx": (_INT, 1, None),
    "num_batch": (_INT, 1, None),
    "num_gpu": (_INT, -1, None),
    "main_gpu": (_INT, 0, None),
    "num_thread": (_INT, 0, None),
    "numa": (_BOOL, None, None),
    "low_vram": (_BOOL, None, None),
    "vocab_only": (_BOOL, None, None),
    "use_mmap": (_BOOL, None, None),
    "use_mlock": (_BOOL, None, None),
}

#: Options Ollama had once and now ignores, logging only "invalid option provided".
RETIRED = {
    "tfs_z": "Ollama 0.5.7 removed tail-free sampling",
    "num_gqa": "Ollama reads the GQA group count from the model file",
}

#: Request fields at the top of both ``/api/chat`` and ``/api/generate`` bodies.
TOP_LEVEL = frozenset(
    {"keep_alive", "think", "format", "tools", "logprobs", "top_logprobs", "truncate", "shift"}
)
#: Request fields only ``/api/generate`` reads; ``/api/chat`` ignores them without a word.
GENERATE_ONLY = frozenset({"images", "system", "template", "suffix", "context", "raw"})


def _check_option(key: str, value: Any) -> None:
    """Raise ParameterError unless ``value`` suits the Ollama model option ``key``."""
    kind, low, high = OPTIONS[key]
    if kind == _BOOL:
        ok = isinstance(value, bool)
    elif kind == _STOP:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = ""
        if low is not None or high is not None:
            bounds = " " + (
                f"between {low:g} and {high:g}"
                if low is not None and high is not None
                else f">= {low:g}"
                if low is not None
                else f"<= {high:g}"
            )
        raise ParameterError(
            f"Ollama option {key}={value!r}: expected {kind}{bounds} (Ollama's "
            "docs/modelfile.md). Fix the value in extra=."
        )


def _check_field(key: str, value: Any) -> None:
    """Raise ParameterError unless ``value`` suits the top-level request field ``key``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    checks: dict[str, tuple[bool, str]] = {
        "keep_alive": (isinstance(value, str) or number, "a duration such as '5m' or seconds"),
        "think": (
            isinstance(value, bool) or value in ("low", "medium", "high"),
            "true, false, 'low', 'medium' or 'high'",
        ),
        "format": (value == "json" or isinstance(value, dict), "'json' or a JSON schema"),
        "tools": (isinstance(value, list), "a list of tool definitions"),
        "logprobs": (isinstance(value, bool), "true or false"),
        "top_logprobs": (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 20,
            "a whole number between 0 and 20",
        ),
        "truncate": (isinstance(value, bool), "true or false"),
        "shift": (isinstance(value, bool), "true or false"),
        "raw": (isinstance(value, bool), "true or false"),
        "images": (
            isinstance(value, list) and all(isinstance(v, str) for v in value),
            "a list of base64-encoded images",
        ),
        "system": (isinstance(value, str), "a string"),
        "template": (isinstance(value, str), "a string"),
        "suffix": (isinstance(value, str), "a string"),
        "context": (
            isinstance(value, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "the list of token ids a previous /api/generate reply returned",
        ),
    }
    ok, expected = checks[key]
    if not ok:
        raise ParameterError(f"Ollama request field {key}={value!r}: expected {expected}.")


def _unknown(key: str) -> ParameterError:
    import difflib

    if key in RETIRED:
        return ParameterError(
            f"Ollama option {key!r} is no longer supported ({RETIRED[key]}); the server would "
            "ignore it. Remove it from extra=."
        )

    known = sorted({*OPTIONS, *TOP_LEVEL, *GENERATE_ONLY})
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ParameterError(
        f"Ollama has no request field or model option {key!r}.{hint} Valid extra= keys: "
        f"{', '.join(known)}."
    )


def _keep_alive(value: Any, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
        raise ConfigurationError(
            f"{what}={value!r}: expected a duration such as '5m' or '1h', or seconds "
            "(0 unloads the model after the request, a negative number keeps it loaded)."
        )


def _usage(data: Mapping[str, Any]) -> Usage:
    prompt = data.get("prompt_eval_count")
    out = data.get("eval_count")
    total = (prompt or 0) + (out or 0) if prompt is not None or out is not None else None
    return Usage(prompt, out, total)


def _logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    if not isinstance(raw, list):
        return None
    return tuple(
        TokenLogprob(
            item["token"],
            float(item["logprob"]),
            tuple((t["token"], float(t["logprob"])) for t in item.get("top_logprobs") or ()),
        )
        for item in raw
    )


def _tool_message_fields(message: Message) -> dict[str, Any]:
    """A message's tool fields in Ollama's form: an assistant's ``tool_calls`` with the
    arguments as a JSON object, a tool message's ``tool_name``. Raises
    :class:`~promptkit.ToolArgumentsError` for a call whose arguments are not an object."""
    out: dict[str, Any] = {}
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments}} for c in message.tool_calls
        ]
    if message.role == "tool" and message.name:
        out["tool_name"] = message.name
    return out


def _tool_request_fields(request: Request) -> dict[str, Any]:
    """``tools`` for /api/chat. Ollama has no ``tool_choice`` nor ``parallel_tool_calls``:
    ``"auto"`` is its behaviour, ``"none"`` sends no tools, anything else is refused."""
    if not request.tools:
        return {}
    choice = request.tool_choice
    if choice not in (None, "auto", "none"):
        raise ParameterError(
            f"tool_choice={choice!r}: Ollama's /api/chat cannot force a tool call (it has no "
            "tool_choice); use 'auto', or the openai backend on Ollama's /v1 endpoint."
        )
    if request.parallel_tool_calls is not None:
        raise ParameterError(
            "parallel_tool_calls: Ollama's /api/chat has no such switch; leave it unset."
        )
    if choice == "none":
        return {}
    return {"tools": function_tools(request.tools)}


class OllamaBackend(HTTPBackend):
    """A model served by Ollama (``ollama serve``), through Ollama's native API.

    >>> OllamaBackend(model="llama3.2")
    <OllamaBackend model='llama3.2' base_url='http://127.0.0.1:11434'>

    Messages go to ``/api/chat``, raw prompts to ``/api/generate`` (with ``raw: true``, so
    the text is continued as it is). Sampling parameters go into ``options``:
    ``max_tokens`` as ``num_predict`` and ``repetition_penalty`` as ``repeat_penalty``;
    ``logprobs``/``top_logprobs`` are top-level fields (Ollama 0.12.11 and later). One
    request gives one choice, so ``n`` is made of several requests. JSON-schema output is
    sent as ``format``.

    ``extra`` (per call) takes Ollama's own fields, checked before anything is sent:

    - request fields of both endpoints go at the top of the body: ``keep_alive``,
      ``think``, ``format``, ``tools``, ``logprobs``, ``top_logprobs``, ``truncate``,
      ``shift``;
    - model options Ollama documents go into ``options`` (a mapping under
      ``extra["options"]`` is merged too): ``num_ctx``, ``num_keep``, ``typical_p``,
      ``repeat_last_n``, ``mirostat``, ``mirostat_tau``, ``mirostat_eta``,
      ``penalize_newline``, ``num_batch``, ``num_gpu``, ``main_gpu``, ``num_thread``,
      ``numa``, ``low_vram``, ``vocab_only``, ``use_mmap``, ``use_mlock`` and the sampling
      options under their Ollama names (the list in Ollama's ``docs/api.md``). Each value
      is checked (type and range): ``ParameterError`` names the key; an unknown key names
      the closest valid one; ``tfs_z`` and ``num_gqa``, which Ollama now ignores, are
      refused with the reason.
    - ``/api/generate``-only fields, which ``/api/chat`` would ignore silently: with
      messages, ``images`` (base64 strings) are attached to the last user message and
      ``system`` becomes a leading system message (an error if there is one already);
      ``template``, ``suffix``, ``context`` and ``raw`` raise ``ParameterError`` (send a
      raw prompt instead). With a raw prompt (``raw: true``, no template applied),
      ``system`` and ``template`` raise unless ``extra`` also sets ``raw: False``.

    >>> from promptkit import Message, Request
    >>> OllamaBackend(model="llama3.2").complete(
    ...     Request(messages=[Message.user("Hi")], extra={"num_ctxx": 8192})
    ... )
    Traceback (most recent call last):
    promptkit._errors.ParameterError: Ollama has no ... 'num_ctxx'. Did you mean 'num_ctx'? ...

    ``finish_reason`` is Ollama's ``done_reason``; a final reply without one (older Ollama
    releases send none) gives ``"stop"`` from both ``complete()`` and ``stream()``.

    ``base_url`` is the server root (default ``http://127.0.0.1:11434``), without
    ``/api`` or ``/v1``. Options are those of
    :class:`~promptkit.backends._http.HTTPBackend` (``timeout``, ``headers``,
    ``max_retries``, ``retry_*``); ``api_key`` is sent as a Bearer token (for a proxy, or
    ollama.com).

    Embeddings: ``POST /api/embed`` with ``{"model", "input": [...]}``, 32 texts a
    request; ``embedding_model`` (default ``model``) names an embedding model such as
    ``"nomic-embed-text"`` or ``"all-minilm"``. ``embedding_dimensions`` (an int) asks for
    shorter vectors (``dimensions``, models that support it), ``embedding_truncate`` is
    sent as ``truncate`` (Ollama's default ``true`` cuts texts longer than the context;
    ``False`` makes them an error instead of a silent cut).

    ``keep_alive`` (``"5m"``, ``"1h"``, seconds; ``0`` unloads, negative keeps loaded) is
    sent with every chat, generate and embed request; ``extra={"keep_alive": ...}``
    overrides it for one call.
    """

    name: ClassVar[str] = "ollama"
    #: Every sampling parameter but ``n`` (one request gives one choice).
    supports: ClassVar[frozenset[str]] = frozenset(SAMPLING_FIELDS) - {"n"}
    native_n: ClassVar[bool] = False
    supports_json_schema: ClassVar[bool] = True
    supports_embeddings: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    renames: ClassVar[dict[str, str]] = {
        "max_tokens": "num_predict",
        "repetition_penalty": "repeat_penalty",
    }
    default_base_url: ClassVar[str] = "http://127.0.0.1:11434"

    def __init__(
        self,
        *,
        model: str | None = None,
        embedding_model: str | None = None,
        embedding_dimensions: int | None = None,
        embedding_truncate: bool | None = None,
        keep_alive: str | float | None = None,
        **options: Any,
    ) -> None:
        if not model:
            raise ConfigurationError(
                "The ollama backend needs a model: pass model=..., e.g. 'llama3.2' (see "
                "`ollama list` for the models you have)."
            )
        # base_url, api_key and the transport options: HTTPOptions
        super().__init__(model=model, **options)
        self.embedding_model = embedding_model
        if embedding_dimensions is not None and (
            isinstance(embedding_dimensions, bool)
            or not isinstance(embedding_dimensions, int)
            or embedding_dimensions < 1
        ):
            raise ConfigurationError(
                f"embedding_dimensions={embedding_dimensions!r}: expected a whole number >= 1."
            )
        if embedding_truncate is not None and not isinstance(embedding_truncate, bool):
            raise ConfigurationError(
                f"embedding_truncate={embedding_truncate!r}: expected True or False."
            )
        _keep_alive(keep_alive, "keep_alive")
        self.embedding_dimensions = embedding_dimensions
        self.embedding_truncate = embedding_truncate
        self.keep_alive = keep_alive
        self._chat_url = self._url("/api/chat")
        self._generate_url = self._url("/api/generate")
        self._embed_url = self._url("/api/embed")

    # ------------------------------------------------------------------ request body
    #: Ollama's /api/chat takes images (base64, in the message's ``images`` list); audio
    #: and file parts raise :class:`~promptkit.UnsupportedPartError` before sending.
    content_parts: ClassVar[frozenset[str]] = frozenset({"text", "image"})

    def _body(self, request: Request, stream: bool) -> Body:
        """The :class:`~promptkit.backends._http.Body` of ``request``."""
        messages = request.messages
        body: dict[str, Any] = {"model": self.model}
        if messages is not None:
            body["messages"] = [
                {"role": m.role, **_wire_content(m.content), **_tool_message_fields(m)}
                for m in messages
            ]
            body.update(_tool_request_fields(request))
            url = self._chat_url
        elif request.prompt is not None:
            body["prompt"] = request.prompt
            body["raw"] = True
            url = self._generate_url
        else:
            raise ParameterError("A request needs messages or a prompt; it has neither.")
        body["stream"] = stream
        options: dict[str, Any] = {}
        sent: dict[str, Any] = {}
        renamed: dict[str, str] = {}
        renames = self.renames
        for key, value in request.params.items():
            if key == "n":
                continue
            if key == "logprobs" or key == "top_logprobs":
                if value is not None and value is not False:
                    body[key] = sent[key] = value
                continue
            wire = renames.get(key, key)
            if wire != key:
                renamed[key] = wire
            options[wire] = sent[wire] = value
        if "top_logprobs" in body and "logprobs" not in body:
            body["logprobs"] = sent["logprobs"] = True
        if request.response_format is not None:
            body["format"] = request.response_format["schema"]
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        chat = messages is not None
        extra = dict(request.extra)
        if "raw" in extra and not chat:
            _check_field("raw", extra["raw"])
        for key, value in extra.items():
            if key == "options":
                if not isinstance(value, Mapping):
                    raise ParameterError(
                        f"extra['options']={value!r}: expected a mapping of Ollama model "
                        "options, e.g. {'num_ctx': 8192}."
                    )
                for k, v in value.items():
                    if k not in OPTIONS:
                        raise _unknown(k)
                    _check_option(k, v)
                    options[k] = sent[k] = v
            elif key == "stream":
                raise ParameterError(
                    "extra['stream'] is set by promptkit: call stream() for a streamed reply."
                )
            elif key in TOP_LEVEL:
                _check_field(key, value)
                body[key] = sent[key] = value
            elif key in GENERATE_ONLY:
                _check_field(key, value)
                sent[key] = value
                if chat:
                    self._route_chat(body, key, value)
                    continue
                if key in ("system", "template") and extra.get("raw", True):
                    raise ParameterError(
                        f"extra[{key!r}] does nothing with a raw prompt: Ollama applies no "
                        "template in raw mode, so it would be ignored. Add 'raw': False to "
                        f"extra to have Ollama template the prompt with this {key}, or put "
                        "it in the prompt text yourself."
                    )
                body[key] = value
            elif key in OPTIONS:
                _check_option(key, value)
                options[key] = sent[key] = value
            else:
                raise _unknown(key)
        if options:
            body["options"] = options
        return Body(url, dumps(body), chat, sent, renamed)

    @staticmethod
    def _route_chat(body: dict[str, Any], key: str, value: Any) -> None:
        """Put an ``/api/generate``-only ``extra`` field where ``/api/chat`` reads it."""
        wire: list[dict[str, Any]] = body["messages"]
        if key == "images":
            users = [m for m in wire if m["role"] == "user"]
            if not users:
                raise ParameterError(
                    "extra['images'] goes with the last user message, and this request has "
                    "none: add a user message."
                )
            users[-1]["images"] = [*users[-1].get("images", ()), *value]
        elif key == "system":
            if any(m["role"] == "system" for m in wire):
                raise ParameterError(
                    "extra['system'] and a system message: the request has a system message "
                    "already; put the text in it rather than in extra."
                )
            wire.insert(0, {"role": "system", "content": value})
        else:
            raise ParameterError(
                f"extra[{key!r}] is an /api/generate field, and messages go to /api/chat, "
                "which ignores it. Send a raw prompt (a string, not messages) to use it, or "
                "drop it."
            )

    # ------------------------------------------------------------------ replies

    def _not_found(self, failure: Failure) -> str:
        message = failure.message.lower()
        if "model" in message or "not found" in message:
            model = self.model
            if self.embedding_model and self.embedding_model.lower() in message:
                model = self.embedding_model
            return (
                f"Ollama does not have the model {model!r} (404). Pull the model: "
                f"ollama pull {model}"
            )
        return (
            f"Nothing found at {self.base_url} (404). base_url should be the Ollama server "
            "root, e.g. http://127.0.0.1:11434 (without /api or /v1)."
        )

    def _completion(
        self,
        data: dict[str, Any],
        chat: bool,
        sent: dict[str, Any],
        renamed: dict[str, str],
        attempts: int,
    ) -> Completion:
        if data.get("error"):
            raise self._stream_error(data, attempts)
        problem = ""
        try:
            text = data["message"]["content"] if chat else data["response"]
            if not isinstance(text, str):
                raise TypeError("the reply's text is not a string")
            reason = data.get("done_reason") or "stop"
            calls = parse_tool_calls(data["message"].get("tool_calls")) if chat else ()
            choice = Choice(text, 0, reason, _logprobs(data.get("logprobs")), calls)
            usage = _usage(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            raise self._malformed(
                f"it lacks an expected field ({problem})", attempts, dumps(data).decode()
            )
        return Completion(
            choices=[choice],
            model=data.get("model") or self.model,
            backend=self.name,
            usage=usage,
            params_sent=sent,
            renamed=renamed,
            raw=data,
        )

    # ------------------------------------------------------------------ embeddings

    def _embeddings(self, data: dict[str, Any], n: int, attempts: int) -> Embeddings:
        if data.get("error"):
            raise self._stream_error(data, attempts)
        problem = ""
        try:
            raw = data["embeddings"]
            if not isinstance(raw, list) or len(raw) != n:
                raise ValueError(f"{n} embeddings asked, {len(raw)} returned")
            vectors = []
            for item in raw:
                if not isinstance(item, list) or not item:
                    raise TypeError("an embedding is not a list of numbers")
                vector = [float(x) for x in item]
                if not all(math.isfinite(x) for x in vector):
                    raise ValueError("an embedding holds NaN or infinity")
                vectors.append(vector)
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            raise self._malformed(
                f"it is not an embeddings reply ({problem})",
                attempts,
                json.dumps(data, ensure_ascii=False, default=str)[:2000],
            )
        tokens = data.get("prompt_eval_count")
        return Embeddings(
            vectors,
            model=data.get("model") or self.embedding_model or self.model,
            backend=self.name,
            usage=Usage(tokens, None, tokens),
        )

    def _embed_body(self, texts: Sequence[str]) -> bytes:
        body: dict[str, Any] = {"model": self.embedding_model or self.model, "input": list(texts)}
        if self.embedding_truncate is not None:
            body["truncate"] = self.embedding_truncate
        if self.embedding_dimensions is not None:
            body["dimensions"] = self.embedding_dimensions
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return dumps(body)

    # ------------------------------------------------------------------ streaming

    def _line(self, line: str, chat: bool, attempts: int) -> Delta | None:
        """One NDJSON line -> a text Delta, the final Delta (``done``), or None."""
        if not line.strip():
            return None
        data = loads(line)
        if not isinstance(data, dict):
            raise self._malformed("a stream line is not a JSON object", attempts, line)
        if data.get("error"):
            raise self._stream_error(data, attempts)
        problem = ""
        try:
            text = (data.get("message") or {}).get("content") if chat else data.get("response")
            calls = parse_tool_calls((data.get("message") or {}).get("tool_calls")) if chat else ()
            if data.get("done"):
                return Delta(
                    text or "",
                    finish_reason=data.get("done_reason") or "stop",
                    usage=_usage(data),
                    model=data.get("model") or self.model,
                    tool_calls=calls,
                )
            return Delta(text or "", tool_calls=calls) if text or calls else None
        except (TypeError, AttributeError, KeyError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        raise self._malformed(f"a stream line lacks a field ({problem})", attempts, line)

    def _cut(self, attempts: int) -> Exception:
        return self._malformed(
            "the stream ended before its last line (no done: true); the connection was "
            "probably cut",
            attempts,
        )

    def stream(self, request: Request) -> Iterator[Delta]:
        url, content, chat, _, _ = self._body(request, True)
        resp, attempts = self._send(url, content, request.timeout, stream=True)
        self._check_stream_type(resp, attempts)
        lines = self._lines(resp, attempts)
        for line in lines:
            delta = self._line(line, chat, attempts)
            if delta is not None:
                yield delta
                if delta.finish_reason is not None:
                    lines.close()
                    return
        raise self._cut(attempts)

    async def astream(self, request: Request) -> AsyncIterator[Delta]:
        url, content, chat, _, _ = self._body(request, True)
        resp, attempts = await self._asend(url, content, request.timeout, stream=True)
        await self._acheck_stream_type(resp, attempts)
        lines = self._alines(resp, attempts)
        async for line in lines:
            delta = self._line(line, chat, attempts)
            if delta is not None:
                yield delta
                if delta.finish_reason is not None:
                    await lines.aclose()
                    return
        raise self._cut(attempts)


def _wire_content(content: str | tuple[Part, ...]) -> dict[str, Any]:
    """A message content in Ollama's native form: ``{"content": text}``, plus
    ``"images": [base64, ...]`` for image parts. Text parts are joined by newlines (Ollama
    has one text per message; the model's template puts the images before it). An image
    URL is refused (Ollama takes only inline data and promptkit fetches nothing), as are
    audio and file parts: :class:`~promptkit.UnsupportedPartError`, before sending."""
    if isinstance(content, str):
        return {"content": content}
    check_parts(
        content, OllamaBackend.content_parts, "ollama",
        "Ollama's /api/chat takes text and images only (no audio or documents); use an "
        "OpenAI-compatible server with an audio model, or transcribe the audio first.",
    )
    images = []
    for p in content:
        if isinstance(p, ImagePart):
            if p.url is not None:
                raise UnsupportedPartError(
                    f"ollama takes images as inline base64, not URLs ({p.url}); promptkit "
                    "does not fetch URLs: download the image and pass its bytes or a path.",
                    part_type="image", backend="ollama",
                )
            images.append(p.b64())
    return {"content": content_text(content), "images": images}
