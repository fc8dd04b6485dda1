"""llama.cpp's HTTP server (``llama-server``) and llama-cpp-python's, through their
OpenAI-compatible API: the OpenAI wire format plus the samplers, tokenizer and embedding
quirks of those servers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from .._errors import BadRequestError
from .._types import Embeddings
from ._http import dumps
from .openai import OPENAI_PARAMS, SAMPLER_EXTRAS, OpenAIBackend

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = ["LlamaServerBackend"]


class LlamaServerBackend(OpenAIBackend):
    """llama.cpp's HTTP server (``llama-server``) or llama-cpp-python's
    (``python -m llama_cpp.server``), through their OpenAI-compatible API.

    >>> LlamaServerBackend()
    <LlamaServerBackend model='' base_url='http://127.0.0.1:8080/v1'>

    No API key is needed (pass ``api_key`` if the server was started with one). Beyond the
    OpenAI parameters it takes ``top_k``, ``min_p`` and ``repetition_penalty`` (sent as
    ``repeat_penalty``). ``n`` is never sent (older llama-server builds refuse ``n`` != 1,
    newer ones honour it, llama-cpp-python's server ignores it): the client makes one
    request per choice, each with its own seed (see :class:`~promptkit.LLM`). JSON-schema
    output is sent as ``{"type": "json_object", "schema": ...}``, the form both servers
    accept. Streams ask for usage (``stream_options.include_usage``, which newer
    llama-server builds need and older ones ignore). Token log-probabilities on
    ``/completions`` are asked with ``logprobs`` >= 1 (llama.cpp reads 0 as "none"), and
    read in either reply form: OpenAI's ``tokens``/``token_logprobs`` or llama.cpp's
    ``content[]``, including ``post_sampling_probs`` replies (``prob``/``top_probs``,
    turned into log-probabilities). A mid-stream ``error:`` event raises
    :class:`~promptkit.ServerError` (or the matching typed error).

    Embeddings need a server started for them (``llama-server --embeddings``,
    ``python -m llama_cpp.server --embedding true``); for a model without a pooling layer
    (a chat model such as SmolLM2) llama-cpp-python's server returns one vector per token,
    which is mean-pooled here. That server (0.3.x) gets the token vectors wrong for all but
    the first text of a request, so once a server answers with token vectors, texts go to
    it one per request. :meth:`tokenize` and :meth:`token_counter` use the server's own
    tokenizer.
    """

    name: ClassVar[str] = "llama-server"
    supports: ClassVar[frozenset[str]] = (OPENAI_PARAMS - {"n"}) | SAMPLER_EXTRAS
    native_n: ClassVar[bool] = False
    renames: ClassVar[dict[str, str]] = {"repetition_penalty": "repeat_penalty"}
    default_base_url: ClassVar[str] = "http://127.0.0.1:8080/v1"
    pool_token_embeddings: ClassVar[bool] = True
    default_stream_usage: ClassVar[bool | None] = True
    min_text_logprobs: ClassVar[int] = 1
    #: llama-server takes ``image_url`` and ``input_audio`` parts when started with a
    #: multimodal projector (``--mmproj``), not OpenAI's ``file`` part.
    content_parts: ClassVar[frozenset[str]] = frozenset({"text", "image", "audio"})

    #: (path, body key) of the tokenize endpoints: llama-server's, then llama-cpp-python's.
    _TOKENIZE_ROUTES: ClassVar[tuple[tuple[str, str], ...]] = (
        ("/tokenize", "content"),
        ("/extras/tokenize", "input"),
    )
    _tokenize_route: tuple[str, str] | None = None
    #: The server answered with per-token vectors: send one text per request.
    _one_text_per_request: bool = False

    @staticmethod
    def _per_token(data: dict[str, Any]) -> bool:
        items = data.get("data")
        if not isinstance(items, list):
            return False
        for item in items:
            vector = item.get("embedding") if isinstance(item, dict) else None
            if isinstance(vector, list) and vector and isinstance(vector[0], list):
                return True
        return False

    @staticmethod
    def _merged(parts: list[Embeddings]) -> Embeddings:
        usage = parts[0].usage
        for part in parts[1:]:
            usage = usage + part.usage
        return Embeddings(
            [v for p in parts for v in p.vectors],
            model=parts[0].model,
            backend=parts[0].backend,
            usage=usage,
            requests=len(parts),
        )

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        if len(texts) > 1 and self._one_text_per_request:
            return self._merged([OpenAIBackend.embed(self, [t], timeout=timeout) for t in texts])
        resp, attempts = self._send(self._embed_url, self._embed_body(texts), timeout)
        data = self._json(resp, attempts)
        if len(texts) > 1 and self._per_token(data):
            self._one_text_per_request = True
            return self.embed(texts, timeout=timeout)
        return self._embeddings(data, len(texts), attempts)

    async def aembed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        if len(texts) > 1 and self._one_text_per_request:
            parts = [await OpenAIBackend.aembed(self, [t], timeout=timeout) for t in texts]
            return self._merged(parts)
        resp, attempts = await self._asend(self._embed_url, self._embed_body(texts), timeout)
        data = self._json(resp, attempts)
        if len(texts) > 1 and self._per_token(data):
            self._one_text_per_request = True
            return await self.aembed(texts, timeout=timeout)
        return self._embeddings(data, len(texts), attempts)

    def tokenize(self, text: str) -> list[int]:
        """The token ids of ``text`` by the server's tokenizer (``POST /tokenize`` on
        llama-server, ``POST /extras/tokenize`` on llama-cpp-python's server).

        >>> LlamaServerBackend().tokenize("Hello world")                  # doctest: +SKIP
        [19556, 905]
        """
        root = self.base_url.removesuffix("/v1")
        routes = [self._tokenize_route] if self._tokenize_route else self._TOKENIZE_ROUTES
        for i, (path, key) in enumerate(routes):
            try:
                resp, attempts = self._send(httpx.URL(root + path), dumps({key: text}), None)
            except BadRequestError as exc:
                if exc.status in (404, 405) and i + 1 < len(routes):
                    continue  # not this server's route: try the other one
                raise
            data = self._json(resp, attempts)
            tokens = data.get("tokens")
            if not isinstance(tokens, list):
                raise self._malformed("the tokenize reply has no tokens list", attempts)
            self._tokenize_route = (path, key)
            return [t if isinstance(t, int) else int(t["id"]) for t in tokens]
        raise AssertionError("unreachable")  # pragma: no cover

    def token_counter(self) -> TokenCounter:
        """The server's own tokenizer (:class:`~promptkit.ServerTokenCounter`)."""
        from .._tokens import ServerTokenCounter

        return ServerTokenCounter(self)

    _special_tokens: list[str] | None = None

    def special_tokens(self) -> list[str]:
        """Which of :data:`~promptkit.COMMON_SPECIAL_TOKENS` are special tokens of the
        served model, asked once (then remembered) in one ``POST /tokenize`` with
        ``with_pieces``: a string that comes back as a single piece is one of its tokens.
        A server without pieces (llama-cpp-python's), or a model with none of them, gives
        the whole common list.

        >>> LlamaServerBackend().special_tokens()[:2]                    # doctest: +SKIP
        ['<|im_start|>', '<|im_end|>']
        """
        from .._untrusted import COMMON_SPECIAL_TOKENS

        if self._special_tokens is None:
            candidates = [t for t in COMMON_SPECIAL_TOKENS if len(t) > 1]
            body = {"content": "\n".join(candidates), "with_pieces": True, "parse_special": True}
            url = httpx.URL(self.base_url.removesuffix("/v1") + "/tokenize")
            try:
                resp, attempts = self._send(url, dumps(body), None)
            except BadRequestError as exc:
                if exc.status not in (404, 405):
                    raise
                tokens: Any = None  # llama-cpp-python's server: no /tokenize with pieces
            else:
                tokens = self._json(resp, attempts).get("tokens")
            # a piece of invalid UTF-8 comes as a list of bytes: never a whole token string
            pieces = {
                t["piece"]
                for t in tokens or ()
                if isinstance(t, dict) and isinstance(t.get("piece"), str)
            }
            found = [t for t in candidates if t in pieces]
            self._special_tokens = found or list(COMMON_SPECIAL_TOKENS)
        return list(self._special_tokens)

    def _response_format(self, rf: Mapping[str, Any]) -> dict[str, Any]:
        return {"type": "json_object", "schema": rf["schema"]}

    def _not_found(self, failure: Any) -> str:
        return (
            f"Nothing found at {self.base_url} for this request (404). llama.cpp's server "
            "serves the OpenAI API under /v1: check base_url (e.g. http://127.0.0.1:8080/v1)."
        )
