"""vLLM's OpenAI-compatible server, with its sampling and structured-output extras."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from .._errors import ParameterError
from .._types import Request
from ._http import Body
from .openai import OPENAI_PARAMS, SAMPLER_EXTRAS, OpenAIBackend

__all__ = ["VLLMBackend"]

#: vLLM's default cap on ``stop`` strings per request (the server's
#: ``VLLM_MAX_STOP_STRINGS``).
VLLM_MAX_STOP_STRINGS = 4

#: vLLM's removed ``guided_*`` request fields -> their key in ``structured_outputs``.
_GUIDED = {
    "guided_json": "json",
    "guided_regex": "regex",
    "guided_choice": "choice",
    "guided_grammar": "grammar",
    "guided_whitespace_pattern": "whitespace_pattern",
}

_SEED_MIN, _SEED_MAX = -(2**63), 2**63 - 1


class VLLMBackend(OpenAIBackend):
    """A vLLM server (``vllm serve MODEL``), through its OpenAI-compatible API.

    >>> VLLMBackend(model="Qwen/Qwen2.5-1.5B-Instruct")
    <VLLMBackend model='Qwen/Qwen2.5-1.5B-Instruct' base_url='http://127.0.0.1:8000/v1'>

    Beyond the OpenAI parameters it takes ``top_k``, ``min_p`` and ``repetition_penalty``
    (under those names), ``n`` choices in one request, and token usage at the end of
    streams. On chat, ``max_tokens`` is sent as ``max_completion_tokens`` (vLLM deprecated
    the old name). A raw prompt (``complete_prompt``) without ``max_tokens`` is sent with
    ``"max_tokens": null``, which vLLM reads as "up to the context length", as on chat
    (leaving the field out would cut replies at vLLM's default of 16 tokens).

    Structured output: ``complete(..., response_format=...)`` (and the structured
    strategies) send the OpenAI ``response_format`` JSON schema, which vLLM constrains.
    vLLM's own constraints go in ``SamplingParams(extra={"structured_outputs": {...}})``,
    e.g. ``{"structured_outputs": {"choice": ["yes", "no"]}}`` or ``{"regex": ...}``,
    ``{"json": schema}``, ``{"grammar": ...}``. The older ``guided_json``,
    ``guided_regex``, ``guided_choice``, ``guided_grammar`` and
    ``guided_whitespace_pattern`` extras, which current vLLM ignores (leaving the output
    unconstrained), are translated into ``structured_outputs`` (reported in
    ``Completion.renamed``); ``guided_decoding_backend`` is refused, since the decoding
    backend is now a server option. Other vLLM fields (``min_tokens``, ...) go in
    ``extra`` and are sent as they are.

    Checked before sending, as vLLM would refuse them with a 400 (:class:`ParameterError`):
    ``top_p=0`` (vLLM wants 0 < top_p <= 1), more than ``max_stop_strings`` stop strings
    (default 4, vLLM's ``VLLM_MAX_STOP_STRINGS``; pass the server's value, or ``None`` for
    no check), a seed outside signed 64 bits, and ``n`` > 1 with ``temperature=0``
    (greedy sampling gives one answer).

    No API key is needed unless the server was started with ``--api-key``; without
    ``model`` the server's first model is used. Other options are those of
    :class:`~promptkit.backends.openai.OpenAIBackend`.
    """

    name: ClassVar[str] = "vllm"
    supports: ClassVar[frozenset[str]] = OPENAI_PARAMS | SAMPLER_EXTRAS
    native_n: ClassVar[bool] = True
    renames: ClassVar[dict[str, str]] = {}
    default_base_url: ClassVar[str] = "http://127.0.0.1:8000/v1"
    default_stream_usage: ClassVar[bool | None] = True
    max_completion_tokens: ClassVar[bool] = True
    #: vLLM's chat endpoint takes ``image_url`` and ``input_audio`` parts (a multimodal
    #: model such as Qwen2.5-VL or Gemma 3), not OpenAI's ``file`` part.
    content_parts: ClassVar[frozenset[str]] = frozenset({"text", "image", "audio"})

    def __init__(self, *, max_stop_strings: int | None = VLLM_MAX_STOP_STRINGS, **options: Any):
        if max_stop_strings is not None and (
            not isinstance(max_stop_strings, int)
            or isinstance(max_stop_strings, bool)
            or max_stop_strings < 0
        ):
            raise ParameterError(
                f"max_stop_strings={max_stop_strings!r}: expected a whole number >= 0 (the "
                "server's VLLM_MAX_STOP_STRINGS), or None for no check."
            )
        super().__init__(**options)
        self.max_stop_strings = max_stop_strings

    def check_request(self, request: Request) -> None:
        """Raise :class:`~promptkit.ParameterError` for what vLLM would refuse with a 400.

        >>> from promptkit import LLM
        >>> llm = LLM(VLLMBackend(model="m"))
        >>> request, _ = llm.prepare_request("Hi", temperature=0, n=3)
        >>> llm.backend.check_request(request)
        Traceback (most recent call last):
        ...
        promptkit._errors.ParameterError: n=3 with temperature=0: ...
        """
        params = request.params
        top_p = params.get("top_p")
        if top_p is not None and top_p <= 0:
            raise ParameterError(
                f"top_p={top_p!r}: vLLM wants 0 < top_p <= 1. For the most likely tokens "
                "only, use temperature=0 (greedy) or a small top_p such as 0.01."
            )
        stop = params.get("stop")
        cap = self.max_stop_strings
        if cap is not None and stop is not None and len(stop) > cap:
            raise ParameterError(
                f"stop has {len(stop)} strings; vLLM takes at most {cap} "
                "(VLLM_MAX_STOP_STRINGS). Use fewer stop strings, or start the server with "
                "a larger VLLM_MAX_STOP_STRINGS and pass that as "
                "VLLMBackend(max_stop_strings=...)."
            )
        seed = params.get("seed")
        if seed is not None and not _SEED_MIN <= seed <= _SEED_MAX:
            raise ParameterError(
                f"seed={seed!r}: vLLM takes a signed 64-bit seed (-2**63 to 2**63 - 1). "
                "Use a smaller seed."
            )
        n = params.get("n") or 1
        if n > 1 and params.get("temperature") == 0:
            raise ParameterError(
                f"n={n} with temperature=0: vLLM refuses several choices with greedy "
                "sampling (they would all be the same). Set temperature > 0 for distinct "
                "samples, or ask for n=1."
            )
        if "guided_decoding_backend" in request.extra:
            raise ParameterError(
                "extra={'guided_decoding_backend': ...}: vLLM no longer takes the "
                "decoding backend per request; it is a server option (vllm serve "
                "--structured-outputs-config.backend ...). Remove it from extra."
            )

    def _structured(self, request: Request) -> tuple[Request, dict[str, str]]:
        """``guided_*`` extras -> ``structured_outputs``; the renames applied."""
        extra = request.extra
        old = [k for k in _GUIDED if k in extra]
        if not old:
            return request, {}
        current = extra.get("structured_outputs") or {}
        if not isinstance(current, dict):
            raise ParameterError(
                "extra['structured_outputs'] must be a dict such as {'choice': [...]}."
            )
        outputs = dict(current)
        renamed: dict[str, str] = {}
        for key in old:
            field = _GUIDED[key]
            if field in outputs:
                raise ParameterError(
                    f"extra has both {key!r} and structured_outputs[{field!r}]; {key} is "
                    f"vLLM's old name for structured_outputs[{field!r}]: keep only that."
                )
            outputs[field] = extra[key]
            renamed[key] = f"structured_outputs.{field}"
        new_extra = {k: v for k, v in extra.items() if k not in _GUIDED}
        new_extra["structured_outputs"] = outputs
        return replace(request, extra=new_extra), renamed

    def _body(self, request: Request, stream: bool) -> Body:
        self.check_request(request)
        request, guided = self._structured(request)
        if (
            request.messages is None
            and "max_tokens" not in request.params
            and "max_tokens" not in request.extra
        ):
            # vLLM's /completions stops at 16 tokens when the field is absent; null means
            # "up to the context length", as on chat
            request = replace(request, extra={"max_tokens": None, **request.extra})
        body = super()._body(request, stream)
        body.renamed.update(guided)
        return body
