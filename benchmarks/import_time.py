"""Import time: ``import promptkit`` against httpx, openai and litellm.

What is measured: the time ``import X`` takes in a fresh interpreter, for promptkit, httpx,
openai, litellm (skipped when not installed) and, for reference, promptkit's own
dependencies pydantic and jinja2 and LangChain's langchain_core (when installed).

- Each run is a new ``python -c`` process that times the import itself with
  ``time.perf_counter_ns`` (interpreter start-up excluded); the wall time of the whole
  process minus that of ``python -c pass`` is reported beside it.
- The modules are run round-robin, after one warm-up run each; the figure is the median
  of N runs. Bytecode caches are on for every module alike, as after any ``pip install``:
  the children run with ``PYTHONPYCACHEPREFIX`` set to a folder in the temp directory
  (written by the warm-up) and without ``PYTHONDONTWRITEBYTECODE``. When the calling
  environment sets ``PYTHONDONTWRITEBYTECODE`` (an editable install then never gets a
  ``.pyc``), promptkit is also timed as that environment imports it, for information.
- Then it prints which heavy modules ``import promptkit`` pulled in (openai, httpx,
  llama_cpp, ...: it should be none of them; backends import theirs when first used) and
  where promptkit's import time goes (``-X importtime``, self time summed by top-level
  package).

Baseline (1.0x): ``import openai``. Goal: ``import promptkit`` <= 0.4x ``import openai``.

Run: ``python benchmarks/import_time.py`` (``--quick`` for a smoke run of a few seconds:
3 runs of promptkit, httpx and openai only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import fmt_ns, fmt_ratio, header, parse_args, print_table, summarize

#: (module, why it is here)
CANDIDATES = [
    ("promptkit", "this library"),
    ("httpx", "the HTTP client promptkit's server backends use"),
    ("openai", "the OpenAI SDK (baseline)"),
    ("litellm", "LiteLLM"),
    ("pydantic", "promptkit dependency"),
    ("jinja2", "promptkit dependency"),
    ("langchain_core", "LangChain core"),
]
#: The modules a quick run compares (the others are for reference only).
QUICK = frozenset({"promptkit", "httpx", "openai"})
HEAVY = ["openai", "httpx", "llama_cpp", "litellm", "langchain_core", "tenacity", "numpy"]

_TIMED = (
    "import time; c = time.process_time_ns(); t = time.perf_counter_ns(); import {mod}; "
    "print(time.perf_counter_ns() - t, time.process_time_ns() - c)"
)


PYCACHE = Path(tempfile.gettempdir()) / f"promptkit-bench-pycache-{sys.implementation.cache_tag}"


def _env(cached: bool = True) -> dict[str, str]:
    """The children's environment: bytecode caches on (in PYCACHE), unless ``cached`` is
    false, which leaves the caller's environment as it is."""
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_once(code: str, cached: bool = True) -> tuple[int, int, int, str]:
    """(import wall ns and CPU ns printed by the child, wall ns of the process, stdout)."""
    start = time.perf_counter_ns()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(cached),
        check=False,
    )
    wall = time.perf_counter_ns() - start
    if proc.returncode != 0:
        raise RuntimeError(f"python -c {code!r} failed:\n{proc.stderr.strip()[-2000:]}")
    out = proc.stdout.strip()
    try:
        inner, cpu = (int(x) for x in out.splitlines()[-1].split())
    except (ValueError, IndexError):
        inner = cpu = 0
    return inner, cpu, wall, out


def heavy_modules_after(module: str) -> tuple[list[str], int]:
    """Which HEAVY modules ``import module`` loaded, and how many modules in all."""
    code = (
        f"import sys; before = set(sys.modules); import {module}; import json; "
        f"print(json.dumps([sorted(m for m in {HEAVY!r} if m in sys.modules), "
        "len(set(sys.modules) - before)]))"
    )
    _, _, _, out = run_once(code)
    heavy, count = json.loads(out.splitlines()[-1])
    return heavy, count


def importtime_breakdown(module: str) -> list[tuple[str, int]]:
    """Self import time (µs) by top-level package, from ``python -X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    totals: dict[str, int] = defaultdict(int)
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        if len(parts) != 3:
            continue
        self_us = int(parts[0].split(":")[1].strip())
        name = parts[2].strip()
        totals[name.split(".")[0]] += self_us
    return sorted(totals.items(), key=lambda kv: kv[1], reverse=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    quick = args.quick
    header("import time in a fresh interpreter", quick)
    runs = 3 if quick else 15

    modules = []
    for mod, why in CANDIDATES:
        if quick and mod not in QUICK:
            continue
        if importlib.util.find_spec(mod) is None:
            print(f"skipped {mod} ({why}): not installed")
            continue
        modules.append((mod, why))
    names = [m for m, _ in modules]
    if "openai" not in names:
        print("note: openai is not installed (pip install 'promptkit[bench]'): no baseline")

    # the "as this environment imports it" row, when it differs from the cached one
    uncached = "promptkit, no .pyc (PYTHONDONTWRITEBYTECODE as set here)"
    keys = list(names)
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not quick:
        keys.append(uncached)
        modules.append((uncached, "promptkit compiled from source on each import"))

    def timed(key: str) -> tuple[int, int, int, str]:
        if key == uncached:
            return run_once(_TIMED.format(mod="promptkit"), cached=False)
        return run_once(_TIMED.format(mod=key))

    # warm-up: bytecode caches written, files in the OS cache
    run_once("pass")
    for key in keys:
        timed(key)

    inner: dict[str, list[float]] = {m: [] for m in keys}
    cpu: dict[str, list[float]] = {m: [] for m in keys}
    wall: dict[str, list[float]] = {m: [] for m in keys}
    empty: list[float] = []
    for i in range(runs):
        k = i % len(keys)
        empty.append(run_once("pass")[2])
        for key in keys[k:] + keys[:k]:
            t_in, t_cpu, t_wall, _ = timed(key)
            inner[key].append(t_in)
            cpu[key].append(t_cpu)
            wall[key].append(t_wall)
    empty_ns = summarize(empty).median
    med = {m: summarize(inner[m], cpu=cpu[m]) for m in keys}
    med_wall = {m: summarize(wall[m]).median - empty_ns for m in keys}
    base = med["openai"].median if "openai" in med else 0.0
    base_cpu = (med["openai"].cpu or 0.0) if "openai" in med else 0.0

    rows = []
    for mod, why in modules:
        s = med[mod]
        rows.append(
            [
                mod,
                fmt_ns(s.median),
                fmt_ratio(s.median, base),
                f"{s.spread:.0%}",
                fmt_ns(s.cpu or 0.0),
                fmt_ratio(s.cpu or 0.0, base_cpu),
                fmt_ns(med_wall[mod]),
                why,
            ]
        )
    print(
        f"median of {runs} fresh processes each; `python -c pass` takes {fmt_ns(empty_ns)}; "
        f"bytecode cache in {PYCACHE}"
    )
    print_table(
        ["module", "import", "vs openai", "IQR", "CPU", "CPU vs openai", "process - empty", "what"],
        rows,
        left=(0, 7),
    )
    print("(import: wall time of the import statement; CPU: its CPU time, steadier on a busy")
    print(" machine; process - empty: the whole process's wall time minus `python -c pass`)")
    print()
    if base:
        ratio = med["promptkit"].median / base
        ratio_cpu = (med["promptkit"].cpu or 0.0) / base_cpu if base_cpu else 0.0
        print(
            f"import promptkit vs import openai: {ratio:.2f}x wall, {ratio_cpu:.2f}x CPU "
            "(goal <= 0.4x)"
        )

    heavy, count = heavy_modules_after("promptkit")
    print(
        f"`import promptkit` loads {count} modules; heavy ones among them: "
        f"{', '.join(heavy) if heavy else 'none'} (checked: {', '.join(HEAVY)})"
    )
    if heavy:
        print("  -> these should be imported lazily, by the backend that needs them")

    print()
    print("where `import promptkit` spends its time (-X importtime, self time by package):")
    breakdown = importtime_breakdown("promptkit")
    total = sum(us for _, us in breakdown) or 1
    top = breakdown[:8]
    rest = total - sum(us for _, us in top)
    rows = [[pkg, f"{us / 1000:.1f} ms", f"{us / total:.0%}"] for pkg, us in top]
    rows.append(["(others)", f"{rest / 1000:.1f} ms", f"{rest / total:.0%}"])
    print_table(["package", "self time", "share"], rows)
    print("(one run; -X importtime itself slows imports down, so read shares, not totals)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
