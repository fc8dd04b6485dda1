"""The backend protocol: what a transport implements.

A *backend* is a transport, in the spirit of httpx's: it turns one
:class:`~promptkit.Request` into one :class:`~promptkit.Completion` and knows its wire
format. It declares, in ``supports``, the sampling parameters it can honour and, in
``native_n``, whether one request can return several choices. Writing one means
subclassing :class:`Backend` and implementing ``complete``/``acomplete`` and
``stream``/``astream``. A backend with embeddings sets ``supports_embeddings`` and
implements ``embed``/``aembed`` for one batch of texts.

The client that every backend sits behind (:class:`~promptkit.LLM`) is in
:mod:`promptkit._client`; the data types (``Request``, ``Delta``, ``Embeddings``, ...) in
:mod:`promptkit._types`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar

from .._errors import ConfigurationError
from .._types import Completion, Delta, Embeddings, Request

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = ["Backend"]


class Backend(ABC):
    """Base class of every backend (transport).

    Subclasses set ``name``, ``supports``, ``native_n`` and ``supports_json_schema`` (the
    backend constrains output to ``Request.response_format``) and implement the four calls.
    ``renames`` maps promptkit parameter names to wire names, for the Completion's report.

    A backend with embeddings sets ``supports_embeddings`` and implements :meth:`embed` for
    one batch (and :meth:`aembed`, which otherwise runs :meth:`embed` in a thread);
    ``embed_batch_size`` is how many texts :meth:`promptkit.LLM.embed` puts in one batch.
    A backend with tool calling sets ``supports_tools`` and reads ``Request.tools``,
    ``tool_choice``, ``parallel_tool_calls`` and the messages' tool fields.
    """

    name: ClassVar[str] = "backend"
    supports: ClassVar[frozenset[str]] = frozenset()
    native_n: ClassVar[bool] = False
    supports_json_schema: ClassVar[bool] = False
    supports_embeddings: ClassVar[bool] = False
    #: The backend sends ``Request.tools`` and tool turns; without it the client refuses
    #: them with a :class:`~promptkit.ParameterError` before sending.
    supports_tools: ClassVar[bool] = False
    embed_batch_size: ClassVar[int] = 32
    renames: ClassVar[dict[str, str]] = {}

    model: str = ""
    #: What the server refused by name (:meth:`refuse`), shared by every call.
    _refused: dict[str, str] | None = None

    @property
    def refused(self) -> dict[str, str]:
        """The features this backend's server refused, each with the reason (empty until
        a :class:`~promptkit.FeatureRefusedError` comes back; see :meth:`refuse`)."""
        return dict(self._refused or {})

    def refuse(self, feature: str, reason: str) -> None:
        """Remember that the server refuses ``feature`` (a promptkit parameter name,
        ``"json_schema"`` or ``"response_format"``), so that later requests go straight to
        the fallback: ``n`` is then emulated, a refused parameter counts as unsupported
        (dropped per ``on_unsupported``, with ``reason``), ``json_schema`` is sent as
        ``json_object`` with the schema and ``response_format`` not at all. ``"tools"``
        (tool calling, which cannot be emulated) or ``"tool_choice=<choice>"`` (one tool
        choice, e.g. ``"tool_choice=auto"`` on a vLLM started without auto tool choice):
        later requests with tools (or with that choice) raise
        :class:`~promptkit.FeatureRefusedError` before anything is sent.

        >>> from promptkit import FakeBackend
        >>> b = FakeBackend(supports=["seed", "temperature"])
        >>> b.refuse("seed", "the server refused seed (400)")
        >>> sorted(b.supports), b.refused
        (['temperature'], {'seed': 'the server refused seed (400)'})
        """
        self._refused = {**(self._refused or {}), feature: reason}
        if feature == "n":
            self.native_n = False  # type: ignore[misc]
        elif feature in self.supports:
            self.supports = self.supports - {feature}  # type: ignore[misc]

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        """Embed one batch of texts: one vector per text, in order."""
        raise self._no_embeddings()

    async def aembed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        """Async twin of :meth:`embed` (by default, :meth:`embed` in a worker thread)."""
        if not self.supports_embeddings:
            raise self._no_embeddings()
        import asyncio

        return await asyncio.to_thread(self.embed, texts, timeout=timeout)

    def _no_embeddings(self) -> ConfigurationError:
        return ConfigurationError(
            f"The {self.name} backend has no embeddings. The openai, vllm, llama-server, "
            "ollama, llamacpp and fake backends have them: connect one of those for "
            "retrieval and example selection."
        )

    def special_tokens(self) -> list[str]:
        """The model's special-token strings, for ``Prompt(special_tokens=...)``; default:
        :data:`promptkit.COMMON_SPECIAL_TOKENS` (the embedded backend reads its GGUF
        vocabulary, ``llama-server`` asks the server)."""
        from .._untrusted import COMMON_SPECIAL_TOKENS

        return list(COMMON_SPECIAL_TOKENS)

    def token_counter(self) -> TokenCounter:
        """The most exact token counter this backend offers (default: the approximation)."""
        from .._tokens import APPROX

        return APPROX

    @abstractmethod
    def complete(self, request: Request) -> Completion:
        """Send one request and return its completion."""

    @abstractmethod
    async def acomplete(self, request: Request) -> Completion:
        """Async twin of :meth:`complete`."""

    @abstractmethod
    def stream(self, request: Request) -> Iterator[Delta]:
        """Send one request and yield the reply as it arrives."""

    @abstractmethod
    def astream(self, request: Request) -> AsyncIterator[Delta]:
        """Async twin of :meth:`stream`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or models held by the backend."""

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} model={self.model!r}>"

