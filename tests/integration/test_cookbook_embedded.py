"""Smoke tests on the embedded model: the README quickstart and every cookbook recipe run
end to end on SmolLM2-135M in-process (they return text, no error). The outputs of a 135M
model are not asserted; the fake-backend tests in tests/test_cookbook.py assert behaviour."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit as pk

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
RECIPES = sorted(p.stem for p in (ROOT / "cookbook").glob("*.py"))


@pytest.fixture(scope="module")
def embedded(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[pk.LLM]:
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("PROMPTKIT_", "OPENAI_")):
                mp.delenv(name)
        mp.chdir(tmp_path_factory.mktemp("no-config"))
        yield pk.connect()


def _readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_readme_quickstart_on_the_embedded_model(
    embedded: pk.LLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = _readme_python_blocks()
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "README quickstart 1", "exec"), namespace)
    # block 2 calls pk.connect() with no configuration: the embedded model
    exec(compile(blocks[1], "README quickstart 2", "exec"), namespace)
    reply = namespace["reply"]
    assert isinstance(reply, pk.Completion) and reply.text
    assert reply.backend == "llamacpp"


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_on_the_embedded_model(name: str, embedded: pk.LLM) -> None:
    spec = importlib.util.spec_from_file_location(
        f"cookbook_{name}", ROOT / "cookbook" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if name == "ray_classify":  # its actors build the backend from a configuration
        pytest.importorskip("ray")
        result = module.main({"backend": "llamacpp"}, actors=1)
    elif name == "tools":  # the embedded backend has no tool calling: a typed refusal
        with pytest.raises(pk.ParameterError, match="cannot do tool calling"):
            module.main(embedded)
        return
    elif name == "receipt_extraction":  # no multimodal library in the portable build
        with pytest.raises(pk.UnsupportedPartError, match="mmproj"):
            module.main(embedded)
        return
    else:
        result = module.main(embedded)
    assert result is not None
