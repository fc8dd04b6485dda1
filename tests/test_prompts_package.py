"""The prompts package sits below the client, strategies and batch layers: it imports
none of them (not even inside functions), and running a prompt still reaches them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import promptkit

PROMPTS = Path(promptkit.__file__).parent / "prompts"
ABOVE = ("strategies", "runner", "batch", "batchfiles", "evaluation", "optimize", "integrations")


def runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks, as written (``..x.y``)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return out


def test_prompts_import_nothing_from_the_layers_above() -> None:
    files = sorted(PROMPTS.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        for module in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            parts = module.lstrip(".").split(".")
            top = parts[0] if module.startswith("..") else ""
            assert top not in ABOVE, f"{path.name} imports {module}"
            assert not module.startswith("promptkit."), f"{path.name} imports {module}"


def test_running_a_prompt_reaches_structured_output_and_batches_lazily() -> None:
    code = """
import sys
import promptkit as pk
from pydantic import BaseModel
assert "promptkit.strategies" not in sys.modules
assert "promptkit.runner" not in sys.modules

class City(BaseModel):
    name: str

llm = pk.LLM(pk.FakeBackend(['{"name": "Paris"}', "a", "b"]))
prompt = pk.ZeroShot(instruction="Name the city.")
assert prompt.run(llm, output=City, input="France") == City(name="Paris")
result = prompt.batch(llm, [{"input": "x"}, {"input": "y"}], progress=False)
assert sorted(item.completion.text for item in result) == ["a", "b"], result
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
