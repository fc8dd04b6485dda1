"""Generation speed of two llama.cpp builds: this interpreter's against another's.

Why: the README installs llama-cpp-python with a portable build (``GGML_NATIVE=OFF``:
x86-64-v3, no AVX-512 or AMX) so the wheel runs on every machine of the kind; this script
says what that costs against a build for ``-march=native`` on a machine where the native
build runs.

What is measured: tokens per second of llama.cpp called directly through llama-cpp-python
(``Llama.create_chat_completion``, greedy, 64 tokens, the prompt evaluated afresh each call)
with SmolLM2-135M-Instruct (``promptkit.backends.llamacpp.default_model_path()``), 2 threads.
Each build runs in a worker process of its own interpreter that loads the model once; the
parent alternates calls between the workers and reports the median of 7 calls each, and
each build's ``llama_print_system_info()``.

Baseline (1.0x): the build of ``--other`` (e.g. a virtual environment holding a native
build: ``CMAKE_ARGS="-DGGML_NATIVE=ON" pip install --no-cache-dir llama-cpp-python``). Goal:
the portable build >= 0.9x the native one. Without ``--other`` the script compares this
interpreter's build with itself (a check of the harness: about 1.0x).

Run: ``python benchmarks/embedded_builds.py --other /path/to/native-venv/bin/python``
(``--quick``: 16 tokens, 2 calls each).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import header, print_table, summarize

_WORKER = r"""
import json, sys, time
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=512, n_threads=2, n_threads_batch=2,
                      verbose=False)
messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper who "
             "finds a message in a bottle. Describe the sea and the weather in detail."}]
print(json.dumps({"info": llama_cpp.llama_print_system_info().decode().strip(),
                  "version": llama_cpp.__version__}), flush=True)
for line in sys.stdin:
    llm.reset()
    start = time.perf_counter()
    out = llm.create_chat_completion(messages=messages, temperature=0,
                                     max_tokens=int(line), seed=0)
    took = time.perf_counter() - start
    print(json.dumps({"tokens": out["usage"]["completion_tokens"], "seconds": took,
                      "text": out["choices"][0]["message"]["content"]}), flush=True)
"""


class _Worker:
    def __init__(self, python: str, model: Path) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", _WORKER, str(model)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()

    def _read(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.proc.args[0]} died (exit {self.proc.wait()})")
        data: dict[str, object] = json.loads(line)
        return data

    def generate(self, max_tokens: int) -> dict[str, object]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{max_tokens}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: rough figures")
    parser.add_argument("--other", default=sys.executable, help="the baseline build's python")
    args = parser.parse_args(argv)
    header("llama.cpp build of this interpreter vs another build", args.quick)
    if importlib.util.find_spec("llama_cpp") is None:
        print("skipped: llama-cpp-python is not installed (see the README's set-up commands)")
        return 0
    import promptkit as pk
    from promptkit.backends.llamacpp import default_model_path

    try:
        model = default_model_path()
    except pk.ConfigurationError as exc:
        print(f"skipped: {exc}")
        return 0
    max_tokens, runs = (16, 2) if args.quick else (64, 7)
    workers = {
        "this build": _Worker(sys.executable, model),
        "--other build": _Worker(args.other, model),
    }
    for w in workers.values():
        w.generate(max_tokens)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in workers}
    texts: dict[str, str] = {}
    names = list(workers)
    for i in range(runs):
        for name in names[i % 2 :] + names[: i % 2]:
            out = workers[name].generate(max_tokens)
            rates[name].append(float(out["tokens"]) / float(out["seconds"]))  # type: ignore[arg-type]
            texts[name] = str(out["text"])
    for name, w in workers.items():
        print(f"{name}: {w.proc.args[0]}\n  llama-cpp-python {w.info['version']}: {w.info['info']}")
        w.close()
    base = summarize(rates["--other build"]).median
    rows = []
    for name in names:
        s = summarize(rates[name])
        rows.append([name, f"{s.median:,.1f} tok/s", f"{s.median / base:.3f}x", f"{s.spread:.0%}"])
    print_table(["build", "speed", "vs --other", "IQR"], rows)
    print(f"same text from both builds: {'yes' if len(set(texts.values())) == 1 else 'no'}")
    ratio = summarize(rates["this build"]).median / base
    print(f"this build vs --other build: {ratio:.3f}x (goal for portable vs native >= 0.9x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
