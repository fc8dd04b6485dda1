"""Rendering cost: a 20-example few-shot prompt to 42 chat messages.

What is measured: turning a few-shot prompt with a role, an instruction, a negative
constraint and 20 examples into the 42 {role, content} chat messages that are sent
(system + 20 x (user, assistant) + the final user message), for one new input.

- promptkit: ``pk.FewShot(role=..., instruction=..., avoid=[...], examples=[...])`` built
  once, ``render(input=...)`` per iteration (how applications use it). Also "promptkit
  cold": building the prompt object and rendering once, per iteration (the template
  compile cache is warm, as in any process after its first prompt); and, for information,
  "promptkit cold, empty template cache" (the one-time cost of the first prompt of a
  process) and "promptkit, render caches cleared" (a prompt whose system and example
  messages are rendered afresh on every call, as when the instruction is itself a
  template with variables).
- "promptkit, instruction variable per call": a prompt whose instruction is a template
  (``"... reviews about {{ product }} ..."``) rendered with a different product on every
  call (1,000 products in turn, so no render cache holds them): the system message is
  rendered afresh each time, the examples are not.
- "promptkit, first prompt of a process": a fresh Python process imports promptkit
  (not timed), then builds and renders the prompt once (timed); the median over a few
  processes. This is what the first request of a server or a CLI run pays.
- baseline (1.0x): precompiled raw jinja2, written by hand the fast way: one compiled
  ``jinja2.Template`` per message kind (system, example user, example assistant, final
  user), rendered in a Python loop into dicts; one template rendering the whole list as
  JSON, then ``json.loads``; one template rendering every content with a separator
  character between them, then ``str.split`` (fragile: text holding the separator breaks
  it). The fastest of the three is the baseline; in practice the separator one, as
  ``Template.render`` costs about 8 µs a call whatever the template, so one call for all
  messages beats one call per message.
- lower bound: hand-written Python f-strings building the dicts.
- LangChain: ``FewShotChatMessagePromptTemplate`` inside a ``ChatPromptTemplate``
  (``format_messages``), and the same with ``template_format="jinja2"``.

Every approach is checked to produce exactly the same 42 messages (as dicts) before it is
timed, so the comparison is of the same work.

A second cold row builds the prompt from example texts it has never seen (examples loaded
per request): the first cold row profits from example messages shared between prompts.

Goals: promptkit ``render()`` <= 0.5x raw jinja2; cold (build + render) <= 3x, also with
new example texts; an
instruction variable that changes per call <= 1.5x; first prompt of a process <= 10 ms;
about 8x faster than LangChain.

Run: ``python benchmarks/render.py`` (``--quick`` for a smoke run of a few seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jinja2
from _harness import bench, fmt_ns, fmt_ratio, header, parse_args, print_table, summarize

import promptkit as pk

ROLE = "a meticulous product analyst"
INSTRUCTION = "Classify the sentiment of the review as positive or negative."
AVOID = ["explanations", "hedging words such as 'maybe'", "any label other than the two given"]
REVIEWS = [
    ("I loved it, the best purchase I made this year.", "positive"),
    ("It broke after a day and support never answered.", "negative"),
    ("Setup took two minutes and it just works.", "positive"),
    ("The screen scratches if you look at it.", "negative"),
    ("Battery lasts a full week of heavy use.", "positive"),
    ("Arrived late, box crushed, one part missing.", "negative"),
    ("Quiet, fast and cheaper than the big brands.", "positive"),
    ("The app asks for my contacts to turn on a lamp.", "negative"),
    ("My kids use it every day and it still looks new.", "positive"),
    ("Smells of burnt plastic whenever it runs.", "negative"),
    ("Exactly as described; would buy again.", "positive"),
    ("The manual is in a language nobody here reads.", "negative"),
    ('Sound is rich and the "bass boost" is no gimmick.', "positive"),
    ("Stopped charging after the first firmware update.", "negative"),
    ("Great value: {half} the price of the old one.", "positive"),
    ("Returned it; the seams split within a week.", "negative"),
    ("Comfortable even after eight hours of wear.", "positive"),
    ("Wi-Fi drops every few minutes, useless for calls.", "negative"),
    ("Customer service replaced it with no questions asked.", "positive"),
    ("Too heavy to carry and the handle cuts your hand.", "negative"),
]
INPUT = "The battery died in an hour and the charger got hot."


# --------------------------------------------------------------------------- the approaches


def make_promptkit(instruction: str = INSTRUCTION, tag: str = "") -> pk.FewShot:
    return pk.FewShot(
        role=ROLE,
        instruction=instruction,
        avoid=AVOID,
        examples=[pk.Example(input=text + tag, output=label) for text, label in REVIEWS],
    )


INSTRUCTION_VAR = "Classify the sentiment of reviews about {{ product }} as positive or negative."
PRODUCTS = [f"product {i}" for i in range(1000)]

_FIRST_PROMPT = """
import sys, time
sys.path.insert(0, {here!r})
import promptkit
from render import INPUT, make_promptkit
cpu, start = time.process_time_ns(), time.perf_counter_ns()
make_promptkit().render(input=INPUT)
print(time.perf_counter_ns() - start, time.process_time_ns() - cpu)
"""


def first_prompt_ns(processes: int) -> tuple[list[float], list[float]]:
    """Build + render in fresh processes (import not timed): wall and CPU ns per process."""
    code = _FIRST_PROMPT.format(here=str(Path(__file__).resolve().parent))
    wall, cpu = [], []
    for _ in range(processes):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        w, c = done.stdout.strip().splitlines()[-1].split()
        wall.append(float(w))
        cpu.append(float(c))
    return wall, cpu


def system_text() -> str:
    """What every approach must produce as the system message (promptkit's layout)."""
    avoid = "\n".join(f"- {a}" for a in AVOID)
    return f"You are {ROLE}.\n\n{INSTRUCTION}\n\nDo not:\n{avoid}"


def make_raw_jinja_loop() -> Callable[[str], list[dict[str, str]]]:
    """One precompiled template per message kind, rendered in a loop into dicts."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    system_t = env.from_string(
        "You are {{ role }}.\n\n{{ instruction }}\n\nDo not:\n"
        "{% for a in avoid %}- {{ a }}{% if not loop.last %}\n{% endif %}{% endfor %}"
    )
    example_user_t = env.from_string("{{ input }}")
    example_assistant_t = env.from_string("{{ output }}")
    user_t = env.from_string("{{ input }}")
    examples = [{"input": text, "output": label} for text, label in REVIEWS]
    system_vars = {"role": ROLE, "instruction": INSTRUCTION, "avoid": AVOID}

    def render(text: str) -> list[dict[str, str]]:
        out = [{"role": "system", "content": system_t.render(system_vars)}]
        for ex in examples:
            out.append({"role": "user", "content": example_user_t.render(ex)})
            out.append({"role": "assistant", "content": example_assistant_t.render(ex)})
        out.append({"role": "user", "content": user_t.render(input=text)})
        return out

    return render


def make_raw_jinja_json() -> Callable[[str], list[dict[str, str]]]:
    """One precompiled template rendering the whole message list as JSON."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["j"] = json.dumps
    env.filters["join_avoid"] = lambda items: "\n".join(f"- {a}" for a in items)
    template = env.from_string(
        '[{"role": "system", "content": {{ ("You are " ~ role ~ ".\n\n" ~ instruction ~ '
        '"\n\nDo not:\n" ~ (avoid | join_avoid)) | j }}}'
        "{% for ex in examples %}"
        ', {"role": "user", "content": {{ ex.input | j }}}'
        ', {"role": "assistant", "content": {{ ex.output | j }}}'
        "{% endfor %}"
        ', {"role": "user", "content": {{ input | j }}}]'
    )
    examples = [{"input": text, "output": label} for text, label in REVIEWS]
    base: dict[str, Any] = {
        "role": ROLE,
        "instruction": INSTRUCTION,
        "avoid": AVOID,
        "examples": examples,
    }

    def render(text: str) -> list[dict[str, str]]:
        result: list[dict[str, str]] = json.loads(template.render(base, input=text))
        return result

    return render


def make_raw_jinja_split() -> Callable[[str], list[dict[str, str]]]:
    """One precompiled template rendering every content, split on a separator character.

    The fastest jinja2 way found, but fragile: text holding the separator breaks it.
    """
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    template = env.from_string(
        "You are {{ role }}.\n\n{{ instruction }}\n\nDo not:\n"
        "{% for a in avoid %}- {{ a }}{% if not loop.last %}\n{% endif %}{% endfor %}"
        "{% for ex in examples %}\x1e{{ ex.input }}\x1e{{ ex.output }}{% endfor %}"
        "\x1e{{ input }}"
    )
    examples = [{"input": text, "output": label} for text, label in REVIEWS]
    base: dict[str, Any] = {
        "role": ROLE,
        "instruction": INSTRUCTION,
        "avoid": AVOID,
        "examples": examples,
    }
    roles = ["system", *(["user", "assistant"] * len(REVIEWS)), "user"]

    def render(text: str) -> list[dict[str, str]]:
        contents = template.render(base, input=text).split("\x1e")
        return [
            {"role": role, "content": content}
            for role, content in zip(roles, contents, strict=True)
        ]

    return render


def make_fstrings() -> Callable[[str], list[dict[str, str]]]:
    """Hand-written Python: the lower bound for producing these dicts."""
    avoid = "\n".join(f"- {a}" for a in AVOID)
    examples = REVIEWS

    def render(text: str) -> list[dict[str, str]]:
        out = [
            {
                "role": "system",
                "content": f"You are {ROLE}.\n\n{INSTRUCTION}\n\nDo not:\n{avoid}",
            }
        ]
        for inp, label in examples:
            out.append({"role": "user", "content": f"{inp}"})
            out.append({"role": "assistant", "content": f"{label}"})
        out.append({"role": "user", "content": f"{text}"})
        return out

    return render


def make_langchain(jinja: bool) -> Callable[[str], list[Any]] | None:
    try:
        from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate
    except ImportError:
        return None
    examples = [{"input": text, "output": label} for text, label in REVIEWS]
    if jinja:
        example_prompt = ChatPromptTemplate.from_messages(
            [("human", "{{ input }}"), ("ai", "{{ output }}")], template_format="jinja2"
        )
        system = (
            "You are {{ role }}.\n\n{{ instruction }}\n\nDo not:\n"
            "{% for a in avoid %}- {{ a }}{% if not loop.last %}\n{% endif %}{% endfor %}"
        )
        few_shot = FewShotChatMessagePromptTemplate(
            example_prompt=example_prompt, examples=examples
        )
        prompt = ChatPromptTemplate.from_messages(
            [("system", system), few_shot, ("human", "{{ input }}")], template_format="jinja2"
        )
        variables = {"role": ROLE, "instruction": INSTRUCTION, "avoid": AVOID}
        return lambda text: prompt.format_messages(input=text, **variables)
    example_prompt = ChatPromptTemplate.from_messages([("human", "{input}"), ("ai", "{output}")])
    few_shot = FewShotChatMessagePromptTemplate(example_prompt=example_prompt, examples=examples)
    # the system text written literally, as a LangChain user would (braces escaped)
    literal = system_text().replace("{", "{{").replace("}", "}}")
    prompt = ChatPromptTemplate.from_messages([("system", literal), few_shot, ("human", "{input}")])
    return lambda text: prompt.format_messages(input=text)


_LC_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def as_dicts(messages: list[Any]) -> list[dict[str, str]]:
    """Messages of any of the approaches as {role, content} dicts."""
    out = []
    for m in messages:
        if isinstance(m, dict):
            out.append(m)
        elif isinstance(m, pk.Message):
            out.append(m.to_dict())
        else:  # a LangChain message
            out.append({"role": _LC_ROLES[m.type], "content": m.content})
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    quick = args.quick
    header("render: 20-example few-shot prompt -> 42 chat messages", quick)

    prompt = make_promptkit()
    raw_loop = make_raw_jinja_loop()
    raw_json = make_raw_jinja_json()
    raw_split = make_raw_jinja_split()
    fstrings = make_fstrings()
    lc = make_langchain(jinja=False)
    lc_jinja = make_langchain(jinja=True)

    def cold() -> list[pk.Message]:
        return make_promptkit().render(input=INPUT)

    compile_cache = getattr(sys.modules["promptkit._render"], "compile_template", None)

    def cold_empty_cache() -> list[pk.Message]:
        compile_cache.cache_clear()  # type: ignore[union-attr]
        return make_promptkit().render(input=INPUT)

    uncached = make_promptkit()
    # where the prompt keeps its render caches (private attributes before issue 13)
    caches = getattr(uncached, "_d", None)

    def render_no_cache() -> list[pk.Message]:
        if caches is not None:
            caches.system_cache.clear()
            caches.examples_cache.clear()
        else:
            uncached._system_cache.clear()
            uncached._examples_cache.clear()
        return uncached.render(input=INPUT)

    per_call = make_promptkit(INSTRUCTION_VAR)
    product = iter(PRODUCTS * 1_000_000)

    def instruction_var() -> list[pk.Message]:
        return per_call.render(input=INPUT, product=next(product))

    cases: dict[str, Callable[[], object]] = {
        "raw jinja2, template per message kind": lambda: raw_loop(INPUT),
        "raw jinja2, one template -> JSON": lambda: raw_json(INPUT),
        "raw jinja2, one template split on \\x1e": lambda: raw_split(INPUT),
        "hand-written f-strings": lambda: fstrings(INPUT),
        "promptkit render()": lambda: prompt.render(input=INPUT),
        "promptkit cold (build + render)": cold,
        "promptkit, render caches cleared": render_no_cache,
    }
    if compile_cache is not None and hasattr(compile_cache, "cache_clear"):
        cases["promptkit cold, empty template cache"] = cold_empty_cache
    if lc is not None:
        cases["LangChain FewShotChatMessagePromptTemplate"] = lambda: lc(INPUT)
    slow: dict[str, Callable[[], object]] = {}
    if lc_jinja is not None:
        slow["LangChain, template_format='jinja2'"] = lambda: lc_jinja(INPUT)

    # the same work: every approach must give promptkit's exact 42 messages
    expected = as_dicts(prompt.render(input=INPUT))
    assert len(expected) == 42, len(expected)
    assert expected[0]["content"] == system_text(), expected[0]["content"]
    for name, fn in {**cases, **slow}.items():
        got = as_dicts(fn())  # type: ignore[arg-type]
        if got != expected:
            raise SystemExit(f"{name} does not produce the same 42 messages as promptkit")
    if compile_cache is not None and hasattr(compile_cache, "cache_clear"):
        compile_cache.cache_clear()  # leave the cache in a normal state (it refills itself)
    got = instruction_var()
    assert len(got) == 42 and "reviews about product 0 " in got[0].content, got[0].content
    assert got[1:] == prompt.render(input=INPUT)[1:]
    cases["promptkit, instruction variable per call"] = instruction_var

    fresh = iter(range(10**9))

    def cold_new_examples() -> list[pk.Message]:
        # examples loaded per request (from a database, per user): texts never seen before
        return make_promptkit(tag=f" ({next(fresh)})").render(input=INPUT)

    got = cold_new_examples()
    assert len(got) == 42 and got[1].content.endswith(" (0)"), got[1].content
    cases["promptkit cold, new example texts"] = cold_new_examples

    samples, target = (7, 5.0) if quick else (41, 25.0)
    stats = bench(cases, samples=samples, target_ms=target, warmup=3 if quick else 20)
    first_wall, first_cpu = first_prompt_ns(3 if quick else 11)
    stats["promptkit, first prompt of a process"] = summarize(first_wall, 1, first_cpu)
    if slow:
        stats.update(bench(slow, samples=3 if quick else 11, target_ms=target, warmup=2))

    # the baseline: the fastest of the hand-written raw jinja2 ways
    baseline_name = min(
        (n for n in stats if n.startswith("raw jinja2")), key=lambda n: stats[n].median
    )
    base = stats[baseline_name].median
    base_cpu = stats[baseline_name].cpu or 0.0
    order = [
        baseline_name,
        *(n for n in stats if n.startswith("raw jinja2") and n != baseline_name),
        "hand-written f-strings",
        "promptkit render()",
        "promptkit cold (build + render)",
        "promptkit cold, new example texts",
        "promptkit, instruction variable per call",
        "promptkit, render caches cleared",
        "promptkit, first prompt of a process",
        "promptkit cold, empty template cache",
        "LangChain FewShotChatMessagePromptTemplate",
        "LangChain, template_format='jinja2'",
    ]
    rows = []
    for name in order:
        if name not in stats:
            continue
        s = stats[name]
        label = f"{name} (baseline)" if name == baseline_name else name
        cpu = s.cpu or 0.0
        rows.append(
            [
                label,
                fmt_ns(s.median),
                fmt_ratio(s.median, base),
                f"{s.spread:.0%}",
                fmt_ns(cpu),
                fmt_ratio(cpu, base_cpu),
            ]
        )
    print_table(["approach", "median", "vs raw jinja2", "IQR", "CPU", "CPU vs raw"], rows)
    print("(CPU: median process CPU time per call, steadier than wall time on a busy machine)")
    print()

    pk_ns = stats["promptkit render()"].median
    for name, goal in (
        ("promptkit render()", "<= 0.5x"),
        ("promptkit cold (build + render)", "<= 3x"),
        ("promptkit cold, new example texts", "<= 3x"),
        ("promptkit, instruction variable per call", "<= 1.5x"),
    ):
        s = stats[name]
        print(
            f"{name} vs raw jinja2: {s.median / base:.2f}x wall, "
            f"{(s.cpu or 0.0) / base_cpu:.2f}x CPU (goal {goal})"
        )
    first = stats["promptkit, first prompt of a process"]
    print(
        f"promptkit, first prompt of a process: {fmt_ns(first.median)} wall, "
        f"{fmt_ns(first.cpu or 0.0)} CPU, {first.median / base:.0f}x raw jinja2 (goal <= 10 ms)"
    )
    lc_name = "LangChain FewShotChatMessagePromptTemplate"
    if lc_name in stats:
        print(
            f"LangChain vs promptkit render(): promptkit is {stats[lc_name].median / pk_ns:.1f}x "
            "faster (goal: about 8x)"
        )
    else:
        print("LangChain: langchain-core is not installed (pip install 'promptkit[bench]')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
