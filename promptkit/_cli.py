"""The ``promptkit`` command line (also ``python -m promptkit``).

::

    promptkit recipes                       list the cookbook recipes
    promptkit run few_shot [--backend ...]  run a recipe on the configured backend
    promptkit render FILE --var name=value  show the exact messages a prompt file sends
    promptkit backends                      the configured backends and whether each answers
    promptkit eval CONFIG [--html PATH]     compare prompt variants on a dataset (TOML/YAML)
    promptkit optimize CONFIG               search for a better prompt, with a paired test

Every command takes ``--json`` for machine-readable output. Errors are one line on stderr
and exit code 1 (2 for bad usage); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError, PromptError, PromptkitError
from ._media import describe_content, media_from_value

__all__ = ["main"]


# --------------------------------------------------------------------------- recipes


def cookbook_dir() -> Path:
    """Where the recipes are: ``PROMPTKIT_COOKBOOK``, else ``./cookbook``, else the
    ``cookbook/`` beside the package's source checkout."""
    explicit = os.environ.get("PROMPTKIT_COOKBOOK")
    candidates = [Path(explicit)] if explicit else []
    candidates += [Path.cwd() / "cookbook", Path(__file__).resolve().parent.parent / "cookbook"]
    for c in candidates:
        if c.is_dir() and any(c.glob("*.py")):
            return c
    raise ConfigurationError(
        "No cookbook found: run from the promptkit checkout, or set PROMPTKIT_COOKBOOK to the "
        "folder that holds the recipes."
    )


def recipes() -> list[dict[str, str]]:
    """Each recipe's name, path and the first line of its docstring."""
    import ast

    out = []
    for path in sorted(cookbook_dir().glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        out.append(
            {"name": path.stem, "summary": doc.splitlines()[0] if doc else "", "path": str(path)}
        )
    return out


def _cmd_recipes(args: argparse.Namespace) -> int:
    found = recipes()
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        width = max(len(r["name"]) for r in found)
        for r in found:
            print(f"{r['name']:<{width}}  {r['summary']}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    by_name = {r["name"]: r for r in recipes()}
    name = args.recipe.removesuffix(".py")
    if name not in by_name:
        import difflib

        close = difflib.get_close_matches(name, list(by_name), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(
            f"No recipe {args.recipe!r}.{hint} `promptkit recipes` lists them."
        )
    # the recipe connects from the environment; set it for the run only (main() may be
    # called in-process, by a test or an application, whose environment must not change)
    saved = {var: os.environ.get(var) for var in _RECIPE_VARS.values()}
    try:
        for flag, var in _RECIPE_VARS.items():
            value = getattr(args, flag)
            if value:
                os.environ[var] = value
        runpy.run_path(by_name[name]["path"], run_name="__main__")
    finally:
        for var, before in saved.items():
            if before is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = before
    return 0


_RECIPE_VARS = {
    "backend": "PROMPTKIT_BACKEND",
    "model": "PROMPTKIT_MODEL",
    "base_url": "PROMPTKIT_BASE_URL",
    "profile": "PROMPTKIT_PROFILE",
}


# --------------------------------------------------------------------------- render


def _parse_vars(pairs: Sequence[str], vars_json: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if vars_json:
        try:
            loaded = json.loads(vars_json)
        except json.JSONDecodeError as exc:
            raise PromptError(f"--vars-json is not valid JSON: {exc.msg}.") from None
        if not isinstance(loaded, dict):
            raise PromptError("--vars-json must be a JSON object of variable names to values.")
        values.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise PromptError(f"--var {pair!r}: expected name=value.")
        if value.startswith("@"):
            try:
                value = Path(value[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise PromptError(
                    f"--var {name}=@file: cannot read {value[1:]}: {exc.strerror}."
                ) from None
        values[name] = value
    return values


def _legible(m: Any) -> dict[str, Any]:
    """A message for ``render --json``: text as is, media parts by their source (bytes
    summarised, never dumped)."""
    if isinstance(m.content, str):
        return {"role": m.role, "content": m.content}
    return {"role": m.role, "content": [
        {"type": "text", "text": p.text}
        if p.type == "text"
        else {"type": p.type, "source": repr(p)}
        for p in m.content
    ]}


def _cmd_render(args: argparse.Namespace) -> int:
    from ._files import load_prompt

    prompt = load_prompt(args.file)
    variables = _parse_vars(args.var or [], args.vars_json)
    # --vars-json '{"photo": {"type": "image", "path": "receipt.png"}}': an image variable
    variables = {k: media_from_value(v) for k, v in variables.items()}
    if args.text:
        print(prompt.render_text(**variables), end="")
        return 0
    messages = prompt.render(**variables)
    if args.json:
        print(json.dumps([_legible(m) for m in messages], indent=2, ensure_ascii=False))
    else:
        for i, m in enumerate(messages):
            if i:
                print()
            print(f"[{m.role}]")
            print(describe_content(m.content))
    return 0


# --------------------------------------------------------------------------- backends


def _probe(cfg: Any) -> tuple[bool, str]:
    """Whether the configured backend answers (a cheap request; no generation)."""
    backend = cfg.backend
    if backend == "fake":
        return True, "scripted replies"
    if backend == "llamacpp":
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            return False, (
                "llama-cpp-python is not installed: "
                'CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" '
                'pip install --no-cache-dir "promptkit[local]"'
            )
        if cfg.model:
            path = Path(cfg.model)
            return (path.is_file(), str(path) if path.is_file() else f"{path} does not exist")
        try:
            from .backends.llamacpp import default_model_path

            return True, str(default_model_path())
        except PromptkitError as exc:
            return False, str(exc).splitlines()[0]
    import httpx

    from .backends import backend_class

    default = getattr(backend_class(backend), "default_base_url", "")
    base = (cfg.base_url or default).rstrip("/")
    if not base:
        return False, "no base_url configured"
    url = f"{base}/api/tags" if backend == "ollama" else f"{base}/models"
    headers = {}
    if cfg.api_key is not None:
        headers["Authorization"] = f"Bearer {cfg.api_key.get()}"
    if backend == "azure":  # the resource's model list, with its api-key header
        url = f"{base}/openai/models?api-version={cfg.options.get('api_version', '')}"
        headers = {"api-key": cfg.api_key.get()} if cfg.api_key is not None else {}
    try:
        r = httpx.get(url, headers=headers, timeout=3.0)
    except httpx.HTTPError as exc:
        return False, f"{url}: {type(exc).__name__}"
    if r.status_code in (401, 403):
        return False, f"{url}: HTTP {r.status_code} (check the API key)"
    return r.status_code < 400, f"{url}: HTTP {r.status_code}"


def _cmd_backends(args: argparse.Namespace) -> int:
    from ._config import find_config_file, resolve_config

    rows: list[dict[str, Any]] = []
    entries: list[tuple[str, Any]] = [("(default)", resolve_config())]
    found = find_config_file()
    if found is not None:
        _, table = found
        for name in sorted((table.get("profiles") or {}).keys()):
            entries.append((name, resolve_config(profile=name)))
    for label, cfg in entries:
        ok, detail = _probe(cfg) if not args.no_check else (None, "not checked")
        rows.append(
            {
                "profile": label,
                "backend": cfg.backend,
                "model": cfg.model,
                "base_url": cfg.base_url,
                "reachable": ok,
                "detail": detail,
                "source": cfg.sources.get("backend"),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            mark = {True: "ok  ", False: "FAIL", None: "-   "}[r["reachable"]]
            model = r["model"] or "(default model)"
            print(f"{mark} {r['profile']:<12} {r['backend']:<12} {model}  [{r['detail']}]")
    return 0 if all(r["reachable"] is not False for r in rows) else 1


# --------------------------------------------------------------------------- eval


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation._config import load_config

    cfg = load_config(args.config)
    if args.out:
        cfg.out = Path(args.out)
    if args.limit is not None:
        if args.limit < 1:
            raise ConfigurationError(f"--limit {args.limit}: expected a whole number >= 1.")
        cfg.scored = cfg.scored[: args.limit]
    report = cfg.run(progress=False if args.no_progress else None)
    outputs = dict(cfg.outputs)
    for key in ("html", "png"):
        if getattr(args, key):
            outputs[key] = Path(getattr(args, key))
    if args.save_json:
        outputs["json"] = Path(args.save_json)
    if args.json:
        print(report.to_json())
    else:
        print(report.table())
    written = []
    if "json" in outputs:
        written.append(report.save_json(outputs["json"]))
    if "html" in outputs:
        written.append(report.save_html(outputs["html"]))
    if "png" in outputs:
        written.append(report.save_png(outputs["png"]))
    for path in written:
        print(f"promptkit: wrote {path}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- optimize


def _cmd_optimize(args: argparse.Namespace) -> int:
    from .optimization._config import load_config as load_optimize_config

    cfg = load_optimize_config(args.config)
    if args.out:
        cfg.options["out"] = Path(args.out)
    report = cfg.run(progress=False if args.no_progress else None)
    outputs = dict(cfg.outputs)
    for key, flag in (("prompt", "prompt"), ("html", "html"), ("json", "save_json")):
        if getattr(args, flag):
            outputs[key] = Path(getattr(args, flag))
    print(report.to_json() if args.json else report.table())
    written = []
    if "prompt" in outputs:
        written.append(report.save_prompt(outputs["prompt"]))
    if "json" in outputs:
        written.append(report.save_json(outputs["json"]))
    if "html" in outputs:
        written.append(report.save_html(outputs["html"]))
    for path in written:
        print(f"promptkit: wrote {path}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptkit", description="Typed prompting techniques on any model backend."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("recipes", help="list the cookbook recipes")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_recipes)

    p = sub.add_parser("run", help="run a cookbook recipe on the configured backend")
    p.add_argument("recipe", help="recipe name, e.g. few_shot")
    p.add_argument("--backend", help="backend name or short form, e.g. ollama:llama3.2")
    p.add_argument("--model")
    p.add_argument("--base-url", dest="base_url")
    p.add_argument("--profile", help="a profile of promptkit.toml")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("render", help="show the exact messages a prompt file sends")
    p.add_argument("file", help="a .json, .yaml or .prompty prompt file")
    p.add_argument(
        "--var", action="append", metavar="NAME=VALUE", help="a variable (VALUE @file reads a file)"
    )
    p.add_argument("--vars-json", metavar="JSON", help="variables as one JSON object")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="messages as JSON")
    fmt.add_argument("--text", action="store_true", help="flattened for completion endpoints")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("backends", help="the configured backends and whether each answers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-check", action="store_true", help="do not contact the backends")
    p.set_defaults(func=_cmd_backends)

    p = sub.add_parser("eval", help="compare prompt variants on a labelled dataset")
    p.add_argument("config", help="a .toml or .yaml evaluation config")
    p.add_argument("--json", action="store_true", help="print the report as JSON, not a table")
    p.add_argument("--save-json", dest="save_json", metavar="PATH", help="write the JSON report")
    p.add_argument("--html", metavar="PATH", help="write an HTML report (table and chart)")
    p.add_argument("--png", metavar="PATH", help="write the chart as PNG (needs matplotlib)")
    p.add_argument("--out", metavar="DIR", help="durable results folder; run again to resume")
    p.add_argument("--limit", type=int, metavar="N", help="score only the first N items")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("optimize", help="search for a better prompt on a labelled dataset")
    p.add_argument("config", help="a .toml or .yaml optimisation config")
    p.add_argument("--json", action="store_true", help="print the report as JSON, not a table")
    p.add_argument("--save-json", dest="save_json", metavar="PATH", help="write the JSON report")
    p.add_argument("--html", metavar="PATH", help="write an HTML report")
    p.add_argument(
        "--prompt", metavar="PATH", help="write the chosen prompt (.json/.yaml/.prompty)"
    )
    p.add_argument("--out", metavar="DIR", help="durable journal folder; run again to resume")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=_cmd_optimize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``promptkit`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except PromptkitError as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split())
        print(f"promptkit: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `promptkit recipes | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("promptkit: interrupted", file=sys.stderr)
        return 130


def main_exit() -> None:
    """Console-script entry point: exits with :func:`main`'s code."""
    sys.exit(main())
