"""Generation speed of the embedded backend against llama.cpp called directly.

What is measured: tokens per second of one chat call generating 64 tokens greedily
(``temperature=0``) with SmolLM2-135M-Instruct on the CPU,

- promptkit: ``promptkit.connect()`` with no configuration, which builds the embedded
  llama.cpp backend, then ``llm.complete(messages, temperature=0, max_tokens=64)``;
- baseline (1.0x): ``llama_cpp.Llama`` built directly on the same model file
  (``promptkit.backends.llamacpp.default_model_path()``) with the same settings as the
  backend loaded it (read back from ``promptkit.backends.llamacpp.loaded_models()``),
  then ``create_chat_completion`` with the same messages, ``temperature=0`` and
  ``max_tokens=64``, after ``Llama.reset()``: the embedded backend evaluates every prompt
  afresh by default (replies then do not depend on earlier calls), so the baseline does
  the same work;
- for information (full mode): llama.cpp direct with llama-cpp-python's default, which
  reuses the evaluated prefix of the previous call's prompt, and promptkit with
  ``cache_prompt=True`` (the backend's option for the same), when the backend has it.

Tokens are the completion tokens llama.cpp reports; the time is the wall time of the whole
call (``time.perf_counter_ns``: prompt evaluation, generation and promptkit's own
overhead). promptkit and the direct calls use one model instance each, loaded and warmed
up before timing; the calls alternate between the cases, and the figure is the median of
5 calls each. Every case must produce the same text.

Goal: promptkit >= 0.95x the tokens per second of llama.cpp called directly.

``--quick`` generates 16 tokens, once each, for the two main cases only: rough figures.

Skipped (exit 0, with a message) when llama-cpp-python or the model package is missing.

Run: ``python benchmarks/embedded.py`` (``--quick`` for a smoke run of a few seconds).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import fmt_ns, header, parse_args, print_table, summarize

import promptkit as pk

MESSAGES = [
    {
        "role": "user",
        "content": "Write a long story about a lighthouse keeper who finds a message in a "
        "bottle. Describe the sea, the weather and the keeper's thoughts in detail.",
    }
]
MAX_TOKENS = 64
QUICK_MAX_TOKENS = 16


def _accepts(cls: Any, option: str) -> bool:
    try:
        return option in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    quick = args.quick
    max_tokens = QUICK_MAX_TOKENS if quick else MAX_TOKENS
    header("embedded backend (llama.cpp in-process) vs llama.cpp direct", quick)
    if importlib.util.find_spec("llama_cpp") is None:
        print('skipped: llama-cpp-python is not installed (pip install "promptkit[local]")')
        return 0
    from promptkit.backends import llamacpp

    try:
        model_path = llamacpp.default_model_path()
    except pk.ConfigurationError as exc:
        print(f"skipped: {exc}")
        return 0

    llm = pk.connect()
    if llm.backend.name != "llamacpp":
        print(
            f"note: connect() chose the {llm.backend.name!r} backend here (configuration "
            "found); using connect('llamacpp') instead"
        )
        llm = pk.connect("llamacpp")
    # the same loaded model with the prompt cache on (when the backend has the option)
    llm_cached = (
        pk.connect("llamacpp", cache_prompt=True)
        if not quick and _accepts(type(llm.backend), "cache_prompt")
        else None
    )
    messages = [pk.Message(role="user", content=m["content"]) for m in MESSAGES]

    def promptkit_call(client: pk.LLM) -> Callable[[], tuple[int, str]]:
        def call() -> tuple[int, str]:
            done = client.complete(messages, temperature=0, max_tokens=max_tokens)
            return done.usage.completion_tokens or 0, done.text

        return call

    started = time.perf_counter()
    promptkit_call(llm)()  # loads the model and warms it up
    pk_first_s = time.perf_counter() - started
    loaded = [m for m in llamacpp.loaded_models() if Path(m["path"]) == model_path]
    options: dict[str, Any] = dict(loaded[0]["options"]) if loaded else {"n_ctx": 2048}
    options.setdefault("verbose", False)

    import llama_cpp

    started = time.perf_counter()
    direct = llama_cpp.Llama(model_path=str(model_path), **options)
    direct_load_s = time.perf_counter() - started

    def direct_call(fresh: bool) -> Callable[[], tuple[int, str]]:
        def call() -> tuple[int, str]:
            if fresh:
                direct.reset()  # evaluate the whole prompt again, as promptkit does by default
            out: Any = direct.create_chat_completion(
                messages=MESSAGES,  # type: ignore[arg-type]
                temperature=0,
                max_tokens=max_tokens,
                seed=0,
            )
            return int(out["usage"]["completion_tokens"]), str(
                out["choices"][0]["message"]["content"]
            )

        return call

    base_name = "llama.cpp direct, prompt evaluated each call"
    pk_name = "promptkit connect() embedded (default)"
    cases: dict[str, Callable[[], tuple[int, str]]] = {
        base_name: direct_call(fresh=True),
        pk_name: promptkit_call(llm),
    }
    if not quick:
        cases["llama.cpp direct, prompt prefix reused"] = direct_call(fresh=False)
    if llm_cached is not None:
        cases["promptkit, cache_prompt=True"] = promptkit_call(llm_cached)
    if not quick:
        cases[base_name]()  # warm-up (the quick run skips it: a prompt takes seconds on a busy box)

    runs = 1 if quick else 5
    rates: dict[str, list[float]] = {name: [] for name in cases}
    times: dict[str, list[float]] = {name: [] for name in cases}
    tokens: dict[str, int] = {}
    texts: dict[str, str] = {}
    names = list(cases)
    for i in range(runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter_ns()
            n, text = cases[name]()
            took = time.perf_counter_ns() - start
            rates[name].append(n / (took / 1e9))
            times[name].append(took)
            tokens[name], texts[name] = n, text

    print(f"model: {model_path.name}; llama_cpp.Llama options: {options}")
    print(
        f"first promptkit call (model load + first generation): {pk_first_s:.2f} s; "
        f"direct model load: {direct_load_s:.2f} s"
    )
    print(
        f"greedy, max_tokens={max_tokens}, {len(MESSAGES)} user message, median of {runs} "
        "calls each, alternating; speed = completion tokens / wall time of the whole call"
    )
    base = summarize(rates[base_name]).median
    rows = []
    for name in names:
        s = summarize(rates[name])
        rows.append(
            [
                f"{name} (baseline)" if name == base_name else name,
                f"{s.median:,.1f} tok/s",
                f"{s.median / base:.3f}x",
                fmt_ns(summarize(times[name]).median),
                str(tokens[name]),
                f"{s.spread:.0%}",
            ]
        )
    print_table(["engine", "speed", "vs direct", "per call", "tokens", "IQR"], rows)
    print()
    same = len(set(texts.values())) == 1
    print(f"same text from every row: {'yes' if same else 'NO (settings differ?)'}")
    pk_rate = summarize(rates[pk_name]).median
    print(f"promptkit embedded vs llama.cpp direct: {pk_rate / base:.3f}x (goal >= 0.95x)")
    reuse = "llama.cpp direct, prompt prefix reused"
    if reuse in rates:
        r = summarize(rates[reuse]).median
        print(
            f"promptkit's default (prompt evaluated afresh, for reproducible replies) vs "
            f"llama-cpp-python's default (prefix reused): {pk_rate / r:.3f}x"
        )
    direct.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
