"""``connect()``: build an :class:`~promptkit.LLM` from arguments, environment and files.

Where each setting comes from, highest precedence first:

1. **explicit arguments** to :func:`connect` / :func:`resolve_config`
   (``connect("ollama:llama3.2")`` is the short form of ``backend="ollama", model="llama3.2"``);
2. **environment variables**: ``PROMPTKIT_BACKEND`` (short form allowed),
   ``PROMPTKIT_MODEL``, ``PROMPTKIT_BASE_URL``, ``PROMPTKIT_API_KEY``, ``PROMPTKIT_PROFILE``;
3. **the selected profile** of the configuration file (``[profiles.NAME]``), chosen by
   ``profile=``, else ``PROMPTKIT_PROFILE``, else the file's ``default_profile``;
4. **the configuration file's top level**;
5. for the ``openai`` and ``openai-sdk`` backends, the conventional ``OPENAI_BASE_URL``
   and ``OPENAI_API_KEY`` as fallbacks (``OPENAI_API_KEY`` is sent only to api.openai.com
   or to ``OPENAI_BASE_URL``, never to a server configured elsewhere); for ``azure``,
   ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY`` (sent only to that endpoint),
   ``AZURE_OPENAI_DEPLOYMENT`` (the model) and ``AZURE_OPENAI_API_VERSION`` /
   ``OPENAI_API_VERSION``. With ``connect(client=openai.OpenAI(...))`` the client carries
   its own URL and credentials, and names the backend (``openai-sdk``, or ``azure`` for an
   ``AzureOpenAI`` client);
6. **the built-in default**: the embedded ``llamacpp`` backend running SmolLM2-135M-Instruct
   in-process (``pip install "promptkit[local]"``).

The configuration file is ``PROMPTKIT_CONFIG`` if set, else the first ``promptkit.toml``,
or ``pyproject.toml`` with a ``[tool.promptkit]`` table, found from the current directory
upwards::

    # promptkit.toml
    backend = "ollama"
    model = "llama3.2"
    preset = "precise"          # a name from promptkit.PRESETS
    max_tokens = 256            # any SamplingParams field
    timeout = 30                # other keys are options for the backend's constructor
    default_profile = "dev"

    [profiles.prod]
    backend = "openai"
    model = "gpt-4o-mini"
    api_key_env = "OPENAI_PROD_KEY"   # the *name* of the variable; keys never go in files

    [prices]                    # dollars per 1M tokens: Completion.cost (promptkit.Price)
    "gpt-4o-mini" = { input = 0.15, output = 0.60, cached_input = 0.075 }

Settings that belong to a backend (model, base_url, API key, options) are taken from a
source only when that source names no backend or names the backend finally chosen: with
``backend = "ollama"`` and ``model = "llama3.2"`` in the file, ``connect("openai")`` does
not send ``model="llama3.2"`` to OpenAI. Sampling parameters and policies always merge.
A ``base_url`` with no backend anywhere selects the ``openai`` (OpenAI-compatible) backend.

API keys never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ._errors import ConfigurationError, ParameterError
from ._params import POLICIES, PRESETS, SamplingParams, UnsupportedPolicy, check_policy
from ._pricing import Price, PriceLike, price_table
from ._secret import Secret

if TYPE_CHECKING:
    from ._client import LLM, ResponseCache
    from ._telemetry import Hook

__all__ = [
    "ResolvedConfig",
    "Secret",
    "config_profiles",
    "connect",
    "find_config_file",
    "resolve_config",
]

logger = logging.getLogger("promptkit")

TruncationPolicy = Literal["ignore", "error"]

#: The backend used when nothing is configured.
DEFAULT_BACKEND = "llamacpp"

_ENV_BACKEND = "PROMPTKIT_BACKEND"
_ENV_MODEL = "PROMPTKIT_MODEL"
_ENV_BASE_URL = "PROMPTKIT_BASE_URL"
_ENV_API_KEY = "PROMPTKIT_API_KEY"
_ENV_PROFILE = "PROMPTKIT_PROFILE"
_ENV_CONFIG = "PROMPTKIT_CONFIG"

#: Keys allowed at the top level of a file and in a profile.
_COMMON_KEYS = frozenset(
    {
        "backend",
        "model",
        "base_url",
        "api_key_env",
        "preset",
        "on_unsupported",
        "on_truncation",
        "options",
        "prices",
    }
)
_TOP_ONLY_KEYS = frozenset({"profiles", "default_profile"})
_PARAM_KEYS = frozenset(SamplingParams.model_fields)
#: Backend constructor options accepted in files without an ``[options]`` table. The
#: resolved backend's own keyword arguments are accepted too.
_KNOWN_OPTIONS = frozenset(
    {
        "timeout",
        "max_retries",
        "n_ctx",
        "n_threads",
        "n_batch",
        "n_gpu_layers",
        "verbose",
        "chat_format",
        "headers",
    }
)
_SECRET_LOOKING = frozenset({"api_key", "apikey", "openai_api_key", "key", "token", "secret"})
_BACKEND_BOUND = ("model", "base_url", "api_key")


_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|cookie|credential", re.IGNORECASE)


def _masked(value: Any, name: str = "") -> Any:
    """``value`` with anything stored under a secret-looking name replaced by ``'***'``."""
    if name and _SECRET_NAME.search(name) and value is not None:
        return "***"
    if isinstance(value, Mapping):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    return value


@dataclass(frozen=True, repr=False)
class ResolvedConfig:
    """What :func:`connect` will build, and where each setting came from.

    >>> cfg = resolve_config("fake:test-model", env={}, cwd=Path("/"))
    >>> cfg.backend, cfg.model, cfg.sources["model"]
    ('fake', 'test-model', "argument (short form 'fake:test-model')")

    ``sources`` maps ``backend``, ``model``, ``base_url``, ``api_key``, ``profile``,
    ``on_unsupported``, ``on_truncation``, ``options.NAME`` and ``params.NAME`` to where the
    value came from. The API key itself is held as a :class:`Secret`.
    """

    backend: str
    model: str | None = None
    base_url: str | None = None
    has_api_key: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    params: SamplingParams = field(default_factory=SamplingParams)
    on_unsupported: UnsupportedPolicy = "warn"
    on_truncation: TruncationPolicy = "ignore"
    profile: str | None = None
    config_file: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)
    api_key: Secret | None = field(default=None, repr=False, compare=False)
    prices: dict[str, Price] = field(default_factory=dict)

    def __repr__(self) -> str:
        fields = {
            "backend": self.backend,
            "model": self.model,
            "base_url": self.base_url,
            "has_api_key": self.has_api_key,
            "options": _masked(self.options),
            "params": self.params,
            "on_unsupported": self.on_unsupported,
            "on_truncation": self.on_truncation,
            "profile": self.profile,
            "config_file": self.config_file,
            "sources": self.sources,
        }
        if self.prices:
            fields["prices"] = self.prices
        return f"ResolvedConfig({', '.join(f'{k}={v!r}' for k, v in fields.items())})"

    def describe(self) -> str:
        """A human-readable summary, one setting a line, with its source (no secrets).

        >>> print(resolve_config("fake", model="m", env={}, cwd=Path("/")).describe())
        backend         fake  (argument)
        model           m  (argument)
        """
        rows: list[tuple[str, str, str | None]] = [
            ("backend", self.backend, self.sources.get("backend")),
            ("model", self.model or "(backend default)", self.sources.get("model")),
        ]
        if self.base_url:
            rows.append(("base_url", self.base_url, self.sources.get("base_url")))
        if self.has_api_key:
            rows.append(("api_key", "set (hidden)", self.sources.get("api_key")))
        if self.profile:
            rows.append(("profile", self.profile, self.sources.get("profile")))
        if self.config_file:
            rows.append(("config_file", str(self.config_file), None))
        for name, value in sorted(_masked(self.options).items()):
            rows.append((name, repr(value), self.sources.get(f"options.{name}")))
        for name, value in sorted(self.params.set_fields().items()):
            rows.append((name, repr(value), self.sources.get(f"params.{name}")))
        if self.params.extra:
            rows.append(("extra", repr(self.params.extra), self.sources.get("params.extra")))
        for name in ("on_unsupported", "on_truncation"):
            if name in self.sources:
                rows.append((name, str(getattr(self, name)), self.sources[name]))
        return "\n".join(
            f"{name:<15} {value}" + (f"  ({src})" if src else "") for name, value, src in rows
        )

    def build(self) -> LLM:
        """Construct the LLM this configuration describes (what :func:`connect` returns)."""
        from ._client import LLM
        from .backends import backend_class

        cls = backend_class(self.backend)
        kwargs: dict[str, Any] = dict(self.options)
        if self.model is not None:
            kwargs["model"] = self.model
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.get()
        try:
            backend = cls(**kwargs)
        except TypeError as exc:
            raise ConfigurationError(
                f"The {self.backend} backend rejected its options ({_scrub(str(exc), self)}). "
                f"Options given: {', '.join(sorted(self.options)) or 'none'}; remove the ones "
                "it does not take from your arguments or configuration file."
            ) from None
        except ConfigurationError as exc:
            if self.sources.get("backend") == "default":
                raise ConfigurationError(
                    "No backend is configured (no arguments, PROMPTKIT_* variables or "
                    f"promptkit.toml), so connect() uses the embedded default. {exc}"
                ) from None
            raise
        return LLM(
            backend,
            params=self.params,
            on_unsupported=self.on_unsupported,
            on_truncation=self.on_truncation,
            prices=self.prices,
        )


def _scrub(text: str, cfg: ResolvedConfig) -> str:
    return cfg.api_key.redact(text) if cfg.api_key is not None else text


# --------------------------------------------------------------------------- layers


@dataclass
class _Layer:
    """The settings one source contributes."""

    where: str
    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: Secret | None = None
    api_key_env: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    params: SamplingParams | None = None
    on_unsupported: str | None = None
    on_truncation: str | None = None
    unknown: list[str] = field(default_factory=list)
    #: where a setting came from when that is more precise than ``where``
    sources: dict[str, str] = field(default_factory=dict)
    sdk_client: Any = None  # connect(client=...): an openai SDK client
    directory: Path | None = None  # of the file this layer comes from
    prices: dict[str, Price] = field(default_factory=dict)

    def applies_to(self, backend: str) -> bool:
        return self.backend is None or self.backend == backend

    def source(self, name: str) -> str:
        """Where this layer's setting ``name`` came from."""
        return self.sources.get(name, self.where)


def _canonical(name: str) -> str:
    from .backends import ALIASES

    key = name.strip().lower()
    return ALIASES.get(key, key)


def _split_short_form(value: str, where: str) -> tuple[str, str | None]:
    """``"ollama:llama3.2:1b"`` -> ``("ollama", "llama3.2:1b")``; a URL is refused."""
    text = value.strip()
    if "://" in text:
        raise ConfigurationError(
            f"{where}: backend {value!r} looks like a URL. Pass it as base_url with a backend, "
            f'e.g. connect("openai", base_url={value!r}) for an OpenAI-compatible server.'
        )
    name, sep, model = text.partition(":")
    if not name:
        raise ConfigurationError(f"{where}: backend {value!r} has no backend name before ':'.")
    if sep and not model:
        raise ConfigurationError(
            f"{where}: backend {value!r} has an empty model after ':'. Write e.g. "
            '"ollama:llama3.2", or leave out the colon.'
        )
    return _canonical(name), (model if sep else None)


# --------------------------------------------------------------------------- files


def find_config_file(
    cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The configuration file in effect and its promptkit table, or ``None``.

    ``PROMPTKIT_CONFIG`` wins; otherwise the first ``promptkit.toml`` or ``pyproject.toml``
    with ``[tool.promptkit]`` from ``cwd`` upwards.

    >>> find_config_file(Path("/"), env={}) is None
    True
    """
    env = os.environ if env is None else env
    explicit = env.get(_ENV_CONFIG)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"{_ENV_CONFIG}={explicit!r} does not name a file. Fix the path or unset it."
            )
        return path.resolve(), _file_table(path)
    start = (cwd or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        candidate = directory / "promptkit.toml"
        if candidate.is_file():
            return candidate, _file_table(candidate)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            data = load_toml(pyproject)
            tool = data.get("tool")
            table = tool.get("promptkit") if isinstance(tool, dict) else None
            if isinstance(table, dict):
                return pyproject, table
    return None


def config_profiles(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> list[str]:
    """The profile names of the configuration file in effect (``[profiles.NAME]``), sorted;
    empty when there is no file or it has no profiles.

    >>> config_profiles(Path("/"), env={})
    []
    """
    found = find_config_file(cwd, env)
    if found is None:
        return []
    profiles = found[1].get("profiles")
    return sorted(profiles) if isinstance(profiles, dict) else []


def _file_table(path: Path) -> dict[str, Any]:
    data = load_toml(path)
    if path.name == "pyproject.toml":
        tool = data.get("tool")
        table = tool.get("promptkit") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise ConfigurationError(f"{path} has no [tool.promptkit] table.")
        return table
    return data


def load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise ConfigurationError(f"{path} cannot be read: {exc.strerror}.") from None
    return data


def _file_layer(table: Mapping[str, Any], where: str, *, top: bool) -> _Layer:
    layer = _Layer(where=where)
    allowed = _COMMON_KEYS | _PARAM_KEYS | (_TOP_ONLY_KEYS if top else frozenset())
    param_data: dict[str, Any] = {}
    preset: SamplingParams | None = None
    short_model: str | None = None
    for key, value in table.items():
        if key in _SECRET_LOOKING:
            raise ConfigurationError(
                f"{where}: found {key!r}. API keys must not be stored in files: put the key in "
                'an environment variable and name it here, e.g. api_key_env = "MY_API_KEY".'
            )
        if key in _TOP_ONLY_KEYS and top:
            continue
        if key == "profiles" and not top:
            raise ConfigurationError(f"{where}: profiles cannot be nested inside a profile.")
        if key not in allowed:
            if key in _KNOWN_OPTIONS:
                layer.options[key] = value
            else:
                layer.unknown.append(key)
                layer.options[key] = value
            continue
        if key == "backend":
            layer.backend, short_model = _split_short_form(_expect_str(value, key, where), where)
        elif key == "model":
            layer.model = _expect_str(value, key, where)
        elif key == "base_url":
            layer.base_url = _expect_str(value, key, where)
        elif key == "api_key_env":
            layer.api_key_env = _expect_str(value, key, where)
        elif key == "preset":
            preset = _preset(_expect_str(value, key, where), where)
        elif key in ("on_unsupported", "on_truncation"):
            setattr(layer, key, _expect_str(value, key, where))
        elif key == "options":
            if not isinstance(value, dict):
                raise ConfigurationError(f"{where}: 'options' must be a table of backend options.")
            layer.options.update(value)
        elif key == "prices":
            try:
                layer.prices = price_table(value)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{where}: {exc}") from None
        else:
            param_data[key] = value
    if short_model is not None:
        if layer.model is not None:
            raise ConfigurationError(
                f"{where}: the model is given twice (backend = {table['backend']!r} and "
                f"model = {layer.model!r}). Keep one."
            )
        layer.model = short_model
    try:
        own = SamplingParams(**param_data) if param_data else None
    except ParameterError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    if preset is not None and own is not None:
        layer.params = preset.merge(own)
    else:
        layer.params = own or preset
    return layer


def _expect_str(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{where}: {key!r} must be a non-empty string, not {type(value).__name__}."
        )
    return value.strip()


def _preset(name: str, where: str) -> SamplingParams:
    key = name.lower().replace("-", "_")
    if key not in PRESETS:
        close = difflib.get_close_matches(key, list(PRESETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(
            f"{where}: unknown preset {name!r}.{hint} Presets: {', '.join(PRESETS)}."
        )
    return PRESETS[key]


def _select_profile(
    table: Mapping[str, Any], path: Path, profile: str | None, env: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The profile name to use and where that choice came from."""
    if profile is not None:
        return profile, "argument"
    if env.get(_ENV_PROFILE):
        return env[_ENV_PROFILE], f"env {_ENV_PROFILE}"
    default = table.get("default_profile")
    if default is not None:
        return _expect_str(default, "default_profile", str(path)), f"default_profile in {path}"
    return None, None


def _profile_layer(table: Mapping[str, Any], path: Path, name: str, chosen_by: str) -> _Layer:
    profiles = table.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigurationError(
            f"{path}: 'profiles' must hold tables, e.g. [profiles.dev] (in pyproject.toml: "
            "[tool.promptkit.profiles.dev])."
        )
    if name not in profiles:
        close = difflib.get_close_matches(name, list(profiles), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(repr(p) for p in sorted(profiles)) or "none"
        raise ConfigurationError(
            f"Profile {name!r} (from {chosen_by}) is not defined in {path}.{hint} "
            f"Profiles there: {known}."
        )
    prefix = "tool.promptkit." if path.name == "pyproject.toml" else ""
    return _file_layer(profiles[name], f"{path} [{prefix}profiles.{name}]", top=False)


# --------------------------------------------------------------------------- resolution


def resolve_config(
    backend: str | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    params: SamplingParams | None = None,
    on_unsupported: UnsupportedPolicy | None = None,
    on_truncation: TruncationPolicy | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    prices: Mapping[str, PriceLike] | None = None,
    **options: Any,
) -> ResolvedConfig:
    """Work out what :func:`connect` would build, without building it.

    Precedence, highest first: explicit arguments > environment variables > the selected
    profile > the file's top level > (openai, openai-sdk) ``OPENAI_BASE_URL``/
    ``OPENAI_API_KEY``, (azure) ``AZURE_OPENAI_*`` > the built-in default (embedded
    ``llamacpp`` with SmolLM2-135M-Instruct). ``env`` and ``cwd`` default to
    ``os.environ`` and the current directory; ``config_file`` overrides
    the file search (and ``PROMPTKIT_CONFIG``).

    >>> cfg = resolve_config(env={"PROMPTKIT_BACKEND": "ollama:llama3.2:1b"}, cwd=Path("/"))
    >>> cfg.backend, cfg.model, cfg.sources["backend"]
    ('ollama', 'llama3.2:1b', 'env PROMPTKIT_BACKEND')
    """
    env = dict(os.environ) if env is None else dict(env)
    secret = Secret(api_key) if api_key else None
    del api_key
    # the sources, lowest precedence first, then one merge
    file_layers, file_path, chosen_profile = _file_layers(config_file, profile, env, cwd)
    arguments = _argument_layer(
        backend, model, base_url, secret, params, on_unsupported, on_truncation, options
    )
    arguments.prices = price_table(prices)
    return _merge([*file_layers, _env_layer(env), arguments], env, file_path, chosen_profile)


# --------------------------------------------------------------------------- the sources


def _file_layers(
    config_file: str | os.PathLike[str] | None,
    profile: str | None,
    env: Mapping[str, str],
    cwd: Path | None,
) -> tuple[list[_Layer], Path | None, tuple[str, str] | None]:
    """The configuration file's layers (its top level, then the selected profile), the
    file, and the profile chosen with where that choice came from."""
    found: tuple[Path, dict[str, Any]] | None
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"config_file={str(config_file)!r} does not name a file.")
        found = (path.resolve(), _file_table(path))
    else:
        found = find_config_file(cwd, env)
    if found is None:
        chosen = profile if profile is not None else env.get(_ENV_PROFILE) or None
        if chosen is not None:
            how = "profile=" if profile is not None else f"{_ENV_PROFILE}="
            raise ConfigurationError(
                f"{how}{chosen!r} selects a profile, but no configuration file was found "
                "(promptkit.toml or [tool.promptkit] in pyproject.toml, from the current "
                f"directory upwards, or the path in {_ENV_CONFIG})."
            )
        return [], None, None
    file_path, table = found
    layers = [_file_layer(table, str(file_path), top=True)]
    profile_name, profile_src = _select_profile(table, file_path, profile, env)
    chosen_profile: tuple[str, str] | None = None
    if profile_name is not None and profile_src is not None:
        layers.append(_profile_layer(table, file_path, profile_name, profile_src))
        chosen_profile = (profile_name, profile_src)
    for layer in layers:
        layer.directory = file_path.parent
    return layers, file_path, chosen_profile


def _env_layer(env: Mapping[str, str]) -> _Layer:
    """The ``PROMPTKIT_*`` environment variables."""
    layer = _Layer(
        where="env",
        sources={
            "backend": f"env {_ENV_BACKEND}",
            "base_url": f"env {_ENV_BASE_URL}",
            "api_key": f"env {_ENV_API_KEY}",
        },
    )
    if env.get(_ENV_BACKEND):
        layer.backend, short_model = _split_short_form(env[_ENV_BACKEND], _ENV_BACKEND)
        if short_model is not None:
            layer.model, layer.sources["model"] = short_model, f"env {_ENV_BACKEND}"
    if env.get(_ENV_MODEL):
        if layer.model is not None:
            raise ConfigurationError(
                f"The model is given twice, in {_ENV_BACKEND} and {_ENV_MODEL}. Keep one."
            )
        layer.model, layer.sources["model"] = env[_ENV_MODEL], f"env {_ENV_MODEL}"
    if env.get(_ENV_BASE_URL):
        layer.base_url = env[_ENV_BASE_URL]
    if env.get(_ENV_API_KEY):
        layer.api_key = Secret(env[_ENV_API_KEY])
    return layer


def _argument_layer(
    backend: str | None,
    model: str | None,
    base_url: str | None,
    api_key: Secret | None,
    params: SamplingParams | None,
    on_unsupported: str | None,
    on_truncation: str | None,
    options: Mapping[str, Any],
) -> _Layer:
    """The explicit arguments of :func:`connect` / :func:`resolve_config`."""
    layer = _Layer(where="argument", options=dict(options), params=params)
    layer.on_unsupported, layer.on_truncation = on_unsupported, on_truncation
    if backend is not None:
        layer.backend, short_model = _split_short_form(backend, "connect()")
        if short_model is not None:
            if model is not None and model != short_model:
                raise ConfigurationError(
                    f"The model is given twice: {backend!r} and model={model!r}. Keep one."
                )
            layer.model = short_model
            layer.sources["model"] = f"argument (short form {backend!r})"
    if model is not None and layer.model is None:
        layer.model = model
    # connect(client=openai.OpenAI(...)): the client names the backend, and carries its own
    # base URL and credentials (none are taken from files or the environment)
    layer.sdk_client = options.get("client", options.get("async_client"))
    if backend is None and layer.sdk_client is not None:
        client_name = type(layer.sdk_client).__name__
        layer.backend = "azure" if "Azure" in client_name else "openai-sdk"
        layer.sources["backend"] = "inferred from client= (argument)"
    layer.base_url, layer.api_key = base_url, api_key
    return layer


# --------------------------------------------------------------------------- the merge


def _merge(
    layers: list[_Layer],
    env: Mapping[str, str],
    file_path: Path | None,
    chosen_profile: tuple[str, str] | None,
) -> ResolvedConfig:
    """Merge the layers (lowest precedence first) into what :func:`connect` builds."""
    sources: dict[str, str] = {}
    backend = _choose_backend(layers, sources)
    eligible = [ly for ly in layers if ly.applies_to(backend)]
    bound = _backend_bound(eligible, backend, sources)
    key = _api_key(eligible, env, sources)
    fallback_options: dict[str, Any] = {}
    sdk_client = next((ly.sdk_client for ly in layers if ly.sdk_client is not None), None)
    key = _fallbacks(backend, sdk_client, env, bound, key, sources, fallback_options)
    allowed_options = set(_KNOWN_OPTIONS) | _constructor_options(backend)
    _validate(layers, backend, allowed_options)
    options = _merge_options(eligible, fallback_options, sources)
    params = _merge_params(layers, sources)
    policies = _merge_policies(layers, sources)
    if chosen_profile is not None:
        sources["profile"] = chosen_profile[1]
    return ResolvedConfig(
        backend=backend,
        model=bound["model"],
        base_url=bound["base_url"],
        has_api_key=key is not None,
        options=options,
        params=params,
        on_unsupported=policies["on_unsupported"],  # type: ignore[arg-type]
        on_truncation=policies["on_truncation"],  # type: ignore[arg-type]
        profile=chosen_profile[0] if chosen_profile is not None else None,
        config_file=file_path,
        sources=sources,
        api_key=key,
        prices={k: v for ly in layers for k, v in ly.prices.items()},  # low -> high, per model
    )


def _choose_backend(layers: list[_Layer], sources: dict[str, str]) -> str:
    """The highest layer's backend, else ``openai`` when a base URL is set, else the
    default."""
    for layer in reversed(layers):
        if layer.backend is not None:
            sources["backend"] = layer.source("backend")
            return layer.backend
    with_url = next((ly for ly in reversed(layers) if ly.base_url is not None), None)
    if with_url is not None:
        sources["backend"] = f"inferred from base_url ({with_url.source('base_url')})"
        return "openai"
    sources["backend"] = "default"
    return DEFAULT_BACKEND


def _backend_bound(eligible: list[_Layer], backend: str, sources: dict[str, str]) -> dict[str, Any]:
    """``model`` and ``base_url``: the highest eligible layer that sets each."""
    bound: dict[str, Any] = {"model": None, "base_url": None}
    for name in ("model", "base_url"):
        for layer in reversed(eligible):
            value = getattr(layer, name)
            if value is not None:
                bound[name] = value
                sources[name] = layer.source(name)
                if name == "model" and backend == DEFAULT_BACKEND and layer.directory:
                    # a .gguf path in a file is relative to that file, not to the cwd
                    candidate = layer.directory / Path(value).expanduser()
                    if not Path(value).expanduser().is_absolute() and candidate.is_file():
                        bound[name] = str(candidate)
                break
    return bound


def _api_key(
    eligible: list[_Layer], env: Mapping[str, str], sources: dict[str, str]
) -> Secret | None:
    """The highest eligible layer's API key, given or named by ``api_key_env``."""
    for layer in reversed(eligible):
        if layer.api_key is not None:
            sources["api_key"] = layer.source("api_key")
            return layer.api_key
        if layer.api_key_env is not None:
            value = env.get(layer.api_key_env)
            if not value:
                raise ConfigurationError(
                    f"{layer.where}: api_key_env = {layer.api_key_env!r}, but that environment "
                    "variable is not set (or empty). Set it, or remove api_key_env."
                )
            sources["api_key"] = f"env {layer.api_key_env} (api_key_env in {layer.where})"
            return Secret(value)
    return None


def _fallbacks(
    backend: str,
    sdk_client: Any,
    env: Mapping[str, str],
    bound: dict[str, Any],
    key: Secret | None,
    sources: dict[str, str],
    options: dict[str, Any],
) -> Secret | None:
    """The conventional ``OPENAI_*`` / ``AZURE_OPENAI_*`` variables, below every promptkit
    source; with ``client=`` only the arguments' URL and key (the client carries its own).
    Updates ``bound``, ``sources`` and ``options``; returns the API key."""
    if sdk_client is not None:
        for name in ("base_url", "api_key"):
            if sources.get(name, "argument") != "argument":
                del sources[name]
                if name == "base_url":
                    bound["base_url"] = None
                else:
                    key = None
    elif backend == "azure":
        _azure_fallbacks(env, bound, sources, options)
        if key is None and env.get("AZURE_OPENAI_API_KEY"):
            url = bound["base_url"]
            if sources.get("base_url") == "env AZURE_OPENAI_ENDPOINT" or url is None:
                key = Secret(env["AZURE_OPENAI_API_KEY"])
                sources["api_key"] = "env AZURE_OPENAI_API_KEY"
    elif backend in ("openai", "openai-sdk"):
        if bound["base_url"] is None and env.get("OPENAI_BASE_URL"):
            bound["base_url"] = env["OPENAI_BASE_URL"]
            sources["base_url"] = "env OPENAI_BASE_URL"
        if key is None and env.get("OPENAI_API_KEY"):
            url = bound["base_url"]
            if (
                url is None
                or sources.get("base_url") == "env OPENAI_BASE_URL"
                or ((urlsplit(url).hostname or "").endswith("api.openai.com"))
            ):
                key = Secret(env["OPENAI_API_KEY"])
                sources["api_key"] = "env OPENAI_API_KEY"
    return key


def _validate(layers: list[_Layer], backend: str, allowed_options: set[str]) -> None:
    """The checks that need the chosen backend, in one place: unknown file keys (against
    that backend's options for the layers that apply to it, against their own backend's
    for the others), then the policies."""
    for layer in layers:
        if not layer.applies_to(backend):
            continue
        for name in layer.unknown:
            if name not in allowed_options:
                valid = sorted(_COMMON_KEYS | _PARAM_KEYS | _TOP_ONLY_KEYS | allowed_options)
                close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(
                    f"{layer.where}: unknown key {name!r}.{hint} Valid keys: backend, model, "
                    "base_url, api_key_env, preset, on_unsupported, on_truncation, "
                    "default_profile, [profiles.NAME], any sampling parameter (temperature, "
                    f"max_tokens, ...) and the {backend} backend's options "
                    f"({', '.join(sorted(allowed_options))}); put other backend options in "
                    "an [options] table."
                )
    for layer in layers:
        if layer.applies_to(backend):
            continue
        for name in layer.unknown:
            if name not in _KNOWN_OPTIONS and name not in _constructor_options(
                layer.backend or backend
            ):
                close = difflib.get_close_matches(
                    name, sorted(_COMMON_KEYS | _PARAM_KEYS | _KNOWN_OPTIONS), n=1
                )
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(f"{layer.where}: unknown key {name!r}.{hint}")
    for layer in layers:
        for name in POLICIES:
            value = getattr(layer, name)
            if value is not None:
                try:
                    check_policy(name, value)
                except ParameterError as exc:
                    raise ConfigurationError(f"{layer.where}: {exc}") from None


def _merge_options(
    eligible: list[_Layer], fallback_options: Mapping[str, Any], sources: dict[str, str]
) -> dict[str, Any]:
    """Backend options, low -> high over the eligible layers, then the fallbacks' below."""
    merged: dict[str, Any] = {}
    for layer in eligible:
        for name, value in layer.options.items():
            merged[name] = value
            sources[f"options.{name}"] = layer.where
    for name, value in fallback_options.items():
        merged.setdefault(name, value)
    return merged


def _merge_params(layers: list[_Layer], sources: dict[str, str]) -> SamplingParams:
    """Sampling parameters: every layer, low -> high."""
    merged = SamplingParams()
    for layer in layers:
        if layer.params is not None:
            merged = merged.merge(layer.params)
            for name in layer.params.model_fields_set:
                sources[f"params.{name}"] = layer.where
    return merged


def _merge_policies(layers: list[_Layer], sources: dict[str, str]) -> dict[str, str]:
    """``on_unsupported`` and ``on_truncation``: every layer, low -> high (validated)."""
    policies: dict[str, str] = {"on_unsupported": "warn", "on_truncation": "ignore"}
    for layer in layers:
        for name in POLICIES:
            value = getattr(layer, name)
            if value is not None:
                policies[name] = value
                sources[name] = layer.where
    return policies


def _azure_fallbacks(
    env: Mapping[str, str],
    resolved: dict[str, Any],
    sources: dict[str, str],
    options: dict[str, Any],
) -> None:
    """Azure OpenAI's conventional variables, below every promptkit source: the endpoint,
    the deployment (promptkit's ``model``) and the API version (an option)."""
    if resolved["base_url"] is None and env.get("AZURE_OPENAI_ENDPOINT"):
        resolved["base_url"] = env["AZURE_OPENAI_ENDPOINT"]
        sources["base_url"] = "env AZURE_OPENAI_ENDPOINT"
    if resolved["model"] is None and env.get("AZURE_OPENAI_DEPLOYMENT"):
        resolved["model"] = env["AZURE_OPENAI_DEPLOYMENT"]
        sources["model"] = "env AZURE_OPENAI_DEPLOYMENT"
    for var in ("AZURE_OPENAI_API_VERSION", "OPENAI_API_VERSION"):
        if "api_version" not in options and env.get(var):
            options["api_version"] = env[var]
            sources["options.api_version"] = f"env {var}"
            break


def _constructor_options(backend: str) -> set[str]:
    """Keyword arguments the backend's constructor names (best effort, for key checks)."""
    import inspect

    from .backends import backend_class

    try:
        cls = backend_class(backend)
    except (ConfigurationError, TypeError, ValueError):
        return set()
    names: set[str] = set()
    # a subclass that adds options and passes **options on also takes its bases' options
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        try:
            signature = inspect.signature(vars(klass)["__init__"])
        except (TypeError, ValueError):
            break
        params = signature.parameters.values()
        names.update(
            p.name
            for p in params
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in ("self", "model", "base_url", "api_key")
        )
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def connect(
    backend: str | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    params: SamplingParams | None = None,
    on_unsupported: UnsupportedPolicy | None = None,
    on_truncation: TruncationPolicy | None = None,
    config_file: str | os.PathLike[str] | None = None,
    cache: ResponseCache | str | os.PathLike[str] | None = None,
    prices: Mapping[str, PriceLike] | None = None,
    on_request: Hook | None = None,
    on_response: Hook | None = None,
    on_error: Hook | None = None,
    capture_content: bool | None = None,
    **options: Any,
) -> LLM:
    """Connect to a model: the one entry point from configuration to an :class:`LLM`.

    >>> llm = connect("fake", replies=["Paris"])
    >>> llm.complete("Capital of France?").text
    'Paris'

    ``backend`` is a backend name (``"openai"``, ``"openai-sdk"``, ``"azure"``, ``"vllm"``,
    ``"llama-server"``, ``"ollama"``, ``"llamacpp"``, a plugin's name) or the short form
    ``"backend:model"`` (``"ollama:llama3.2:1b"``). Settings not given here come, in order, from the
    ``PROMPTKIT_*`` environment variables, the selected profile of ``promptkit.toml`` (or
    ``[tool.promptkit]`` in ``pyproject.toml``), that file's top level, and finally the
    built-in default: the embedded llama.cpp backend with SmolLM2-135M-Instruct, which needs
    ``CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir "promptkit[local]"``.
    ``on_unsupported`` defaults to ``"warn"`` and
    ``on_truncation`` to ``"ignore"``. Other keyword arguments are passed to the backend's
    constructor (``timeout=30``, ``n_ctx=4096``, ...). See :func:`resolve_config` to
    inspect the result without connecting.

    ``cache`` (a :class:`promptkit.Cache`, or a path for one) answers repeated identical
    requests from disk; hits are marked ``Completion.cached``.

    ``client=`` (and ``async_client=``) wrap an ``openai`` SDK client you already have:
    ``connect(client=openai.OpenAI(), model="gpt-4o-mini")`` (see
    :class:`~promptkit.OpenAISDKBackend`).

    ``prices`` (``{model: (input, output[, cached_input])}`` in dollars per million tokens,
    over the file's ``[prices]`` table) sets ``Completion.cost``. ``on_request``,
    ``on_response``, ``on_error`` and ``capture_content`` are as for :class:`LLM`
    (hooks, and message content on OpenTelemetry spans).
    """
    cfg = resolve_config(
        backend,
        model=model,
        base_url=base_url,
        api_key=api_key,
        profile=profile,
        params=params,
        on_unsupported=on_unsupported,
        on_truncation=on_truncation,
        config_file=config_file,
        prices=prices,
        **options,
    )
    del api_key
    logger.debug("promptkit.connect:\n%s", cfg.describe())
    llm = cfg.build()
    if cache is not None:
        if isinstance(cache, (str, os.PathLike)):
            from ._cache import Cache

            cache = Cache(cache)
        llm.cache = cache
    obs = llm.observers
    obs.on_request, obs.on_response, obs.on_error = on_request, on_response, on_error
    if capture_content is not None:
        obs.capture_content = capture_content
    return llm
