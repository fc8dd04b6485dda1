"""Backends: the transports that carry a request to a model.

Built-in backends are named here and imported only when used, so ``import promptkit``
never pays for httpx or llama.cpp. Third-party backends register through the entry-point
group ``promptkit.backends`` (the entry point names a :class:`Backend` subclass)::

    # in the plugin's pyproject.toml
    [project.entry-points."promptkit.backends"]
    mybackend = "my_package.backend:MyBackend"

after which ``promptkit.connect("mybackend", model=...)`` builds it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .._errors import ConfigurationError
from ._llama_probe import INSTALL_LOCAL_COMMAND

if TYPE_CHECKING:
    from ._base import Backend

__all__ = ["BUILTIN", "available_backends", "backend_class"]

#: Built-in backend names -> "module:Class".
BUILTIN: dict[str, str] = {
    "openai": "promptkit.backends.openai:OpenAIBackend",
    "openai-sdk": "promptkit.backends.openai_sdk:OpenAISDKBackend",
    "azure": "promptkit.backends.openai_sdk:AzureOpenAIBackend",
    "vllm": "promptkit.backends.vllm:VLLMBackend",
    "llama-server": "promptkit.backends.llama_server:LlamaServerBackend",
    "ollama": "promptkit.backends.ollama:OllamaBackend",
    "llamacpp": "promptkit.backends.llamacpp:LlamaCppBackend",
    "fake": "promptkit.backends.fake:FakeBackend",
}

#: Other spellings users reach for.
ALIASES: dict[str, str] = {
    "openai-compatible": "openai",
    "lmstudio": "openai",
    "llamacpp-server": "llama-server",
    "llama.cpp-server": "llama-server",
    "llama_cpp": "llamacpp",
    "llama-cpp": "llamacpp",
    "local": "llamacpp",
    "embedded": "llamacpp",
    "openai_sdk": "openai-sdk",
    "azure-openai": "azure",
    "azure_openai": "azure",
}

ENTRY_POINT_GROUP = "promptkit.backends"


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names ``connect()`` accepts: built-in, then plugins."""
    return sorted(BUILTIN) + sorted(set(_plugins()) - set(BUILTIN))


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass registered under ``name`` (built-in or plugin)."""
    key = ALIASES.get(name.lower(), name.lower())
    target = BUILTIN.get(key)
    if target is None:
        target = _plugins().get(name) or _plugins().get(key)
    if target is None:
        import difflib

        names = available_backends()
        close = difflib.get_close_matches(key, names + list(ALIASES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(
            f"Unknown backend {name!r}.{hint} Known backends: {', '.join(names)}. A plugin "
            f"registers more through the entry-point group {ENTRY_POINT_GROUP!r}."
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"Backend {name!r} cannot be imported ({exc}). Install what it needs"
            + (
                f", e.g. {INSTALL_LOCAL_COMMAND}."
                if key == "llamacpp"
                else ', e.g. pip install "promptkit[openai]".'
                if key in ("openai-sdk", "azure")
                else "."
            )
        ) from None
    cls = getattr(module, attr)
    return cls  # type: ignore[no-any-return]
