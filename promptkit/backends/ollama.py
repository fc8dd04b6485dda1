"""Ollama, through its native API (``/api/chat``, ``/api/generate`` and ``/api/embed``)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from .._errors import ConfigurationError, ParameterError
from .._params import SAMPLING_FIELDS
from .._types import Choice, Completion, Delta, Embeddings, Request, TokenLogprob, Usage
from ._http import Body, HTTPBackend, _Failure, dumps, loads

__all__ = ["OllamaBackend"]

#: Request fields that sit at the top of the body; any other ``extra`` key is a model
#: option and goes into ``body["options"]``.
TOP_LEVEL = frozenset(
    {
        "keep_alive",
        "think",
        "raw",
        "format",
        "system",
        "template",
        "context",
        "images",
        "suffix",
        "tools",
        "stream",
        "logprobs",
        "top_logprobs",
        "truncate",
        "shift",
    }
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


class OllamaBackend(HTTPBackend):
    """A model served by Ollama (``ollama serve``), through Ollama's native API.

    >>> OllamaBackend(model="llama3.2")
    <OllamaBackend model='llama3.2' base_url='http://127.0.0.1:11434'>

    Messages go to ``/api/chat``, raw prompts to ``/api/generate`` (with ``raw: true``, so
    the text is continued as it is). Sampling parameters go into ``options``:
    ``max_tokens`` as ``num_predict`` and ``repetition_penalty`` as ``repeat_penalty``;
    ``logprobs``/``top_logprobs`` are top-level fields (Ollama 0.12.11 and later). One
    request gives one choice, so ``n`` is made of several requests. JSON-schema output is
    sent as ``format``. ``extra`` keys that are request fields (``keep_alive``, ``think``,
    ``raw``, ...) go at the top of the body, other keys (``num_ctx``, ``mirostat``, ...)
    into ``options``.

    ``base_url`` is the server root (default ``http://127.0.0.1:11434``), without
    ``/api`` or ``/v1``. Options are those of
    :class:`~promptkit.backends._http.HTTPBackend` (``timeout``, ``headers``,
    ``max_retries``, ``retry_*``); ``api_key`` is sent as a Bearer token (for a proxy, or
    ollama.com).

    Embeddings: ``POST /api/embed`` with ``{"model", "input": [...]}``, 32 texts a
    request; ``embedding_model`` (default ``model``) names an embedding model such as
    ``"nomic-embed-text"`` or ``"all-minilm"``.
    """

    name: ClassVar[str] = "ollama"
    #: Every sampling parameter but ``n`` (one request gives one choice).
    supports: ClassVar[frozenset[str]] = frozenset(SAMPLING_FIELDS) - {"n"}
    native_n: ClassVar[bool] = False
    supports_json_schema: ClassVar[bool] = True
    supports_embeddings: ClassVar[bool] = True
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
        self._chat_url = self._url("/api/chat")
        self._generate_url = self._url("/api/generate")
        self._embed_url = self._url("/api/embed")

    # ------------------------------------------------------------------ request body

    def _body(self, request: Request, stream: bool) -> Body:
        """The :class:`~promptkit.backends._http.Body` of ``request``."""
        messages = request.messages
        body: dict[str, Any] = {"model": self.model}
        if messages is not None:
            body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
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
        for key, value in request.extra.items():
            if key == "options" and isinstance(value, Mapping):
                options.update(value)
                sent.update(value)
            elif key in TOP_LEVEL:
                body[key] = sent[key] = value
            else:
                options[key] = sent[key] = value
        if options:
            body["options"] = options
        return Body(url, dumps(body), messages is not None, sent, renamed)

    # ------------------------------------------------------------------ replies

    def _not_found(self, failure: _Failure) -> str:
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
            choice = Choice(text, 0, data.get("done_reason"), _logprobs(data.get("logprobs")))
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
        return dumps({"model": self.embedding_model or self.model, "input": list(texts)})

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
            if data.get("done"):
                return Delta(
                    text or "",
                    finish_reason=data.get("done_reason") or "stop",
                    usage=_usage(data),
                    model=data.get("model") or self.model,
                )
            return Delta(text) if text else None
        except (TypeError, AttributeError) as exc:
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
