"""Token counting: exact where a tokenizer is at hand, a documented approximation otherwise.

A *token counter* is any object with ``count(text) -> int`` (:class:`TokenCounter`). The
ones here:

- :data:`APPROX` (:class:`ApproxTokenCounter`): 1 token per 4 characters, rounded up. No
  dependency, no I/O; English prose with OpenAI or Llama tokenizers averages 3.5-4.5
  characters per token, code and non-Latin scripts fewer, so it is a rough estimate.
- :class:`TiktokenCounter`: OpenAI's tokenizers, through the optional ``tiktoken`` package.
- :class:`ServerTokenCounter`: a llama.cpp server's own tokenizer (``POST /tokenize`` on
  llama.cpp's ``llama-server``, ``POST /extras/tokenize`` on llama-cpp-python's server).
- :class:`LlamaCppTokenCounter`: the embedded model's tokenizer (llama-cpp-python).

:meth:`promptkit.LLM.token_counter` picks the right one for a connection.

Chat messages cost more than their text: the chat template adds the role and separators.
Wherever promptkit budgets *messages* (``Conversation.max_history_tokens``,
:class:`~promptkit.retrieval.LengthBudgetExamples`) a message costs
``counter.count(content) + MESSAGE_OVERHEAD`` (4, what OpenAI's and ChatML templates add).
A plain function given instead of a counter is taken as the whole cost of a message, as
:func:`approx_tokens` is, so ``token_counter=len`` keeps meaning "characters per message".

Media parts (images, audio, files) cannot be counted by a text tokenizer; a message that
holds them costs its text plus a documented estimate per part (:func:`media_tokens`):
:data:`IMAGE_TOKENS` (765) per image (``detail="low"``: :data:`IMAGE_TOKENS_LOW`, 85), which
is what OpenAI bills for a 1024x1024 image at high detail; audio
:data:`AUDIO_TOKENS_PER_SECOND` (10) per second of sound (the duration read from a WAV
header, or taken as 16,000 bytes a second for MP3); a file 1 token per 4 bytes. Local
models differ (a LLaVA image is 576 tokens, Qwen2-VL's depend on the size): use these as
budgets, not bills.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from .backends.llama_server import LlamaServerBackend

__all__ = [
    "APPROX",
    "MESSAGE_OVERHEAD",
    "ApproxTokenCounter",
    "LlamaCppTokenCounter",
    "ServerTokenCounter",
    "TiktokenCounter",
    "TokenCounter",
    "approx_tokens",
    "message_cost",
]

#: Tokens a chat template adds around each message's content (role, separators).
MESSAGE_OVERHEAD = 4


@runtime_checkable
class TokenCounter(Protocol):
    """Anything that counts the tokens of a text.

    >>> isinstance(APPROX, TokenCounter)
    True
    """

    def count(self, text: str) -> int:
        """The number of tokens ``text`` encodes to (no chat framing)."""
        ...


class ApproxTokenCounter:
    """The approximation: 1 token per 4 characters, rounded up.

    >>> APPROX.count("abcdefgh"), APPROX.count("abcdefghi"), APPROX.count("")
    (2, 3, 0)
    """

    def count(self, text: str) -> int:
        return -(-len(text) // 4)

    def __repr__(self) -> str:
        return "APPROX"


#: The shared approximate counter.
APPROX = ApproxTokenCounter()


#: Estimated tokens of one image (OpenAI's cost of a 1024x1024 image at high detail).
IMAGE_TOKENS = 765
#: Estimated tokens of one image sent with ``detail="low"``.
IMAGE_TOKENS_LOW = 85
#: Estimated tokens per second of audio.
AUDIO_TOKENS_PER_SECOND = 10


def media_tokens(part: Any) -> int:
    """The documented estimate of what one media part costs (0 for a text part).

    >>> import promptkit as pk
    >>> media_tokens(pk.Image("https://example.com/a.png")), media_tokens(
    ...     pk.Image("https://example.com/a.png", detail="low"))
    (765, 85)
    """
    kind = part.type
    if kind == "text":
        return 0
    if kind == "image":
        return IMAGE_TOKENS_LOW if part.detail == "low" else IMAGE_TOKENS
    data = part.read()
    if kind == "audio":
        rate, size = 16_000, len(data)
        if data[:4] == b"RIFF" and len(data) >= 44:
            rate = int.from_bytes(data[28:32], "little") or rate
            size -= 44
        return -(-size * AUDIO_TOKENS_PER_SECOND // rate)
    return -(-len(data) // 4)


def _content_cost(content: Any, text_cost: Callable[[str], int]) -> int:
    from ._media import content_text

    return text_cost(content_text(content)) + sum(media_tokens(p) for p in content)


def approx_tokens(text: str | tuple[Any, ...]) -> int:
    """The documented approximation of what one message costs when no tokenizer is given:
    1 token per 4 characters, rounded up, plus 4 per message for the chat framing (plus
    :func:`media_tokens` for each image, audio or file part of a content given as parts).

    >>> approx_tokens("abcdefgh")
    6
    """
    if isinstance(text, str):
        return APPROX.count(text) + MESSAGE_OVERHEAD
    return _content_cost(text, approx_tokens)


def message_cost(
    counter: TokenCounter | Callable[[str], int] | None,
) -> Callable[[Any], int]:
    """A function giving what one message with this content costs, in tokens.

    A :class:`TokenCounter` counts the text and ``MESSAGE_OVERHEAD`` is added; a plain
    function is used as it is (it gives a message's whole cost); ``None`` is
    :func:`approx_tokens`.

    >>> message_cost(None)("abcd"), message_cost(APPROX)("abcd"), message_cost(len)("abcd")
    (5, 5, 4)
    """
    if counter is None:
        return approx_tokens
    if isinstance(counter, TokenCounter):
        count = counter.count

        def cost(text: Any) -> int:
            if isinstance(text, str):
                return count(text) + MESSAGE_OVERHEAD
            return _content_cost(text, cost)

        return cost
    if callable(counter):
        plain = counter

        def called(text: Any) -> int:
            if isinstance(text, str):
                return plain(text)
            return _content_cost(text, plain)

        return called
    raise TypeError(
        f"a token counter has count(text) -> int, or is a function of the text; got "
        f"{type(counter).__name__}"
    )


# --------------------------------------------------------------------------- tiktoken


class TiktokenCounter:
    """OpenAI's tokenizer for ``model`` (or a named ``encoding``), through ``tiktoken``.

    >>> TiktokenCounter("gpt-4o-mini").count("Hello world")            # doctest: +SKIP
    2

    ``tiktoken`` is an optional dependency (``pip install tiktoken``), imported on the first
    count. It downloads each encoding's BPE file on first use and caches it (in
    ``TIKTOKEN_CACHE_DIR``, default a ``data-gym-cache`` folder in the temp directory).
    Offline, copy a cached file there first, or pass a ready ``tiktoken.Encoding`` as
    ``encoding``; otherwise the first count raises :class:`~promptkit.ConfigurationError`
    saying so. Models tiktoken does not know use ``o200k_base`` (GPT-4o and later).
    """

    def __init__(self, model: str | None = None, *, encoding: Any = None) -> None:
        if model is None and encoding is None:
            raise ConfigurationError("TiktokenCounter needs a model name or an encoding.")
        self.model = model
        self._spec = encoding
        self._encoding: Any = None if isinstance(encoding, str) or encoding is None else encoding
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        what = self.model if self.model is not None else getattr(self._spec, "name", self._spec)
        return f"TiktokenCounter({what!r})"

    def load(self) -> Any:
        """The ``tiktoken.Encoding`` (loading it now if needed)."""
        if self._encoding is not None:
            return self._encoding
        with self._lock:
            if self._encoding is None:
                self._encoding = self._load()
        return self._encoding

    def _load(self) -> Any:
        try:
            tiktoken = importlib.import_module("tiktoken")
        except ImportError:
            raise ConfigurationError(
                "TiktokenCounter needs the tiktoken package: pip install tiktoken (or count "
                "with promptkit.APPROX, the documented approximation)."
            ) from None
        name = self._spec if isinstance(self._spec, str) else None
        if name is None:
            assert self.model is not None
            try:
                name = tiktoken.encoding_name_for_model(self.model)
            except KeyError:
                name = "o200k_base"
        problem = ""
        try:
            return tiktoken.get_encoding(name)
        except ValueError as exc:  # an unknown encoding name
            raise ConfigurationError(f"tiktoken has no encoding {name!r} ({exc}).") from None
        except Exception as exc:  # tiktoken fetches the file with requests: network errors
            problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise ConfigurationError(
            f"tiktoken could not load its {name!r} encoding ({problem}). tiktoken downloads "
            "it on first use; offline, put the cached file in TIKTOKEN_CACHE_DIR, pass a "
            "tiktoken.Encoding as encoding=, or count with promptkit.APPROX."
        )

    def count(self, text: str) -> int:
        """Tokens in ``text`` (special-token text is counted as ordinary text)."""
        return len(self.load().encode(text, disallowed_special=()))


# --------------------------------------------------------------------------- llama.cpp


class ServerTokenCounter:
    """A llama.cpp server's tokenizer: exact counts for the model it serves.

    >>> ServerTokenCounter("http://127.0.0.1:8080/v1").count("Hello")   # doctest: +SKIP
    1

    Takes the server address (with or without ``/v1``) or a
    :class:`~promptkit.backends.llama_server.LlamaServerBackend`, whose connection, retries and
    errors it then shares. Counts are cached (the last 4096 texts), since history and
    example budgets count the same texts at every render.
    """

    def __init__(self, server: str | LlamaServerBackend, *, cache_size: int = 4096) -> None:
        from .backends.llama_server import LlamaServerBackend

        if isinstance(server, str):
            server = LlamaServerBackend(base_url=server, max_retries=1)
        self.backend = server
        self._cached = functools.lru_cache(maxsize=cache_size)(self._count)

    def __repr__(self) -> str:
        return f"ServerTokenCounter({self.backend.base_url!r})"

    def _count(self, text: str) -> int:
        return len(self.backend.tokenize(text))

    def count(self, text: str) -> int:
        return int(self._cached(text))


class LlamaCppTokenCounter:
    """The embedded model's tokenizer (llama-cpp-python), without the chat framing.

    >>> LlamaCppTokenCounter().count("Hello world")                      # doctest: +SKIP
    2

    ``model`` is a GGUF path, or ``None`` for the embedded SmolLM2-135M-Instruct; a
    :class:`~promptkit.backends.llamacpp.LlamaCppBackend` may be given instead. Only the
    vocabulary is loaded (a few MB, once per process), apart from the model used to
    generate, so counting never waits for a generation.
    """

    def __init__(self, model: Any = None) -> None:
        from .backends.llamacpp import LlamaCppBackend

        self.backend = model if isinstance(model, LlamaCppBackend) else LlamaCppBackend(model=model)

    def __repr__(self) -> str:
        return f"LlamaCppTokenCounter({self.backend.model!r})"

    def count(self, text: str) -> int:
        return len(self.backend.tokenize(text))
