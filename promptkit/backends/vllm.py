"""vLLM's OpenAI-compatible server, with its sampling and structured-output extras."""

from __future__ import annotations

from typing import ClassVar

from .openai import OPENAI_PARAMS, SAMPLER_EXTRAS, OpenAIBackend

__all__ = ["VLLMBackend"]


class VLLMBackend(OpenAIBackend):
    """A vLLM server (``vllm serve MODEL``), through its OpenAI-compatible API.

    >>> VLLMBackend(model="Qwen/Qwen2.5-1.5B-Instruct")
    <VLLMBackend model='Qwen/Qwen2.5-1.5B-Instruct' base_url='http://127.0.0.1:8000/v1'>

    Beyond the OpenAI parameters it takes ``top_k``, ``min_p`` and ``repetition_penalty``
    (under those names), ``n`` choices in one request, JSON-schema ``response_format``,
    and token usage at the end of streams. vLLM's own fields (``guided_json``,
    ``guided_regex``, ``guided_choice``, ``structured_outputs``, ``min_tokens``, ...) go in
    ``SamplingParams(extra={...})`` and are sent as they are. No API key is needed unless
    the server was started with ``--api-key``; without ``model`` the server's first model
    is used. Options are those of :class:`~promptkit.backends.openai.OpenAIBackend`.
    """

    name: ClassVar[str] = "vllm"
    supports: ClassVar[frozenset[str]] = OPENAI_PARAMS | SAMPLER_EXTRAS
    native_n: ClassVar[bool] = True
    renames: ClassVar[dict[str, str]] = {}
    default_base_url: ClassVar[str] = "http://127.0.0.1:8000/v1"
    default_stream_usage: ClassVar[bool | None] = True
