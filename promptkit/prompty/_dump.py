"""Writing ``.prompty`` files: a PromptyPrompt as it is, a technique prompt converted."""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .._errors import PromptError
from .._types import Message
from ..prompts import Prompt, PromptBase
from ._core import (
    PromptyModel,
    PromptyPrompt,
    PromptyProperty,
    parameters_from_params,
)
from ._format import (
    FRONT_MATTER,
    IMAGE,
    FileRefs,
    _inside,
    drop_final_newline,
    flatten_extends,
    is_reference,
    read_yaml,
)

__all__ = ["dump", "save", "to_prompty"]


# --------------------------------------------------------------------------- YAML


def _yaml_text(data: dict[str, Any]) -> str:
    import yaml

    dumper_class: Any = type("_PromptyDumper", (yaml.SafeDumper,), {})

    def _str(dumper: Any, value: str) -> Any:
        style: str | None = None
        if "---" in value or "+++" in value:
            style = '"'  # escaped below: the front matter ends at the next --- or +++
        elif "\n" in value:
            style = "|"
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    dumper_class.add_representer(str, _str)
    text: str = yaml.dump(
        data, Dumper=dumper_class, sort_keys=False, allow_unicode=True, width=10_000
    )
    return text.replace("---", "-\\x2d-").replace("+++", "+\\x2b+")


def _check_strings(value: Any, at: str, in_configuration: bool = False) -> None:
    """Every front-matter string must survive Prompty's normalisation unchanged."""
    if isinstance(value, str):
        if value != value.strip():
            raise PromptError(
                f"cannot save {at}={value!r} in a .prompty file: Prompty strips every string "
                "in the front matter. Remove the leading/trailing whitespace."
            )
        if is_reference(value):
            parts = value[2:-1].split(":")
            if not (in_configuration and parts[0] == "env" and len(parts) > 1):
                raise PromptError(
                    f"cannot save {at}={value!r} in a .prompty file: Prompty would read it as "
                    "a ${...} reference."
                )
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{at}[{i}]", in_configuration)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(
                v,
                f"{at}.{k}" if at else str(k),
                in_configuration
                or at == "model.configuration"
                or (at == "model" and k == "configuration"),
            )


def _property(spec: PromptyProperty) -> dict[str, Any]:
    out: dict[str, Any] = {"type": spec.type}
    if spec.default is not None:
        out["default"] = spec.default
    if spec.description:
        out["description"] = spec.description
    return out


def _front_matter(prompt: PromptyPrompt) -> dict[str, Any]:
    fm: dict[str, Any] = {}
    if prompt.name:
        fm["name"] = prompt.name
    if prompt.description:
        fm["description"] = prompt.description
    if prompt.authors:
        fm["authors"] = list(prompt.authors)
    if prompt.tags:
        fm["tags"] = list(prompt.tags)
    if prompt.version:
        fm["version"] = prompt.version
    model: dict[str, Any] = {"api": prompt.model.api}
    if prompt.model.configuration:
        model["configuration"] = dict(prompt.model.configuration)
    if prompt.params is not None:
        new = parameters_from_params(prompt.params)
        ordered = {k: new[k] for k in prompt.model.parameters if k in new}
        ordered.update(new)
        parameters = ordered
    else:
        parameters = dict(prompt.model.parameters)
    if parameters:
        model["parameters"] = parameters
    if prompt.model.response:
        model["response"] = dict(prompt.model.response)
    fm["model"] = model
    if prompt.inputs:
        fm["inputs"] = {k: _property(v) for k, v in prompt.inputs.items()}
    if prompt.outputs:
        fm["outputs"] = {k: _property(v) for k, v in prompt.outputs.items()}
    if prompt.sample:
        fm["sample"] = dict(prompt.sample)
    if prompt.template_format != "jinja2":
        fm["template"] = prompt.template_format
    return fm


def _body(prompt: PromptyPrompt) -> str:
    body = prompt.template
    if prompt.template_format == "jinja2" and prompt.base_templates:
        flat = flatten_extends(drop_final_newline(body), prompt.base_templates, prompt.label)
        if flat != drop_final_newline(body):
            body = flat + "\n"
    if body[:1].isspace() and prompt.model.api != "chat":
        # the loader drops the body's leading whitespace; a comment keeps it
        body = ("{# #}" if prompt.template_format == "jinja2" else "{{! }}\n") + body
    return body


def _moved_images(body: str, prompt: PromptyPrompt, folder: Path) -> str:
    """``body`` with each local markdown image path rewritten for a file in ``folder``:
    relative to it, reaching the same file. A path that would leave ``folder`` (or the
    prompt's ``root=``, when it holds ``folder``) raises :class:`~promptkit.PromptError`,
    since a ``.prompty`` image must stay inside its file's folder. URLs, ``data:`` URLs and
    paths the template builds (``{{ }}``/``{% %}``) are left as written."""
    if prompt.base_dir is None or prompt.base_dir.resolve() == folder:
        return body
    refs = FileRefs(prompt.base_dir, prompt.root, prompt.label)
    root = folder  # a root= wider than the old folder, holding the new one, still applies
    if refs.root is not None and refs.root != refs.base_dir and _inside(folder, refs.root):
        root = refs.root

    def moved(match: re.Match[str]) -> str:
        filename = match.group("filename")
        ref = filename.split(" ")[0].strip()
        if (not ref or ref.startswith(("http://", "https://", "data:"))
                or "{{" in ref or "{%" in ref):
            return match.group(0)
        target = refs.path(ref, "image")  # '~' or outside the old folder: refused as on load
        if not _inside(target, root):
            raise PromptError(
                f"{prompt.label}: cannot save to {folder}: image {ref!r} is {target}, outside "
                "the new file's folder, and a .prompty image must stay inside its file's folder "
                f"(or root=). Save the .prompty file in a folder that holds the image, or copy "
                f"the image into {folder} and refer to it there."
            )
        new = Path(os.path.relpath(target, folder)).as_posix()
        return f"{match.group('alt')}({filename.replace(ref, new, 1)})"

    return IMAGE.sub(moved, body)


def _dump_prompty(prompt: PromptyPrompt, folder: Path | None = None) -> str:
    fm = _front_matter(prompt)
    _check_strings(fm, "")
    body = _body(prompt)
    if folder is not None:
        body = _moved_images(body, prompt, folder)
    text = "---\n" + _yaml_text(fm) + "---\n" + body
    # what the loader will see must be what we meant
    match = FRONT_MATTER.search(text)
    if match is None or read_yaml(match.group(1), "<dump>") != fm:  # pragma: no cover
        raise PromptError(
            f"{prompt.label}: the front matter cannot be written so that Prompty reads it back "
            "unchanged."
        )
    return text


# --------------------------------------------------------------------------- techniques

_OB, _CB = "\U000f1000", "\U000f1001"  # around the rendered template
_OI, _CI = "\U000f1002", "\U000f1003"  # around the rendered instruction
_SENTINEL = re.compile("\U000f1004([0-9]+)\U000f1005")
_MARKERS = re.compile("[\U000f1000-\U000f1005]")
_JINJA_OPEN = re.compile(r"\{(?=[{%#]|\Z)")


def _sentinel(i: int) -> str:
    return f"\U000f1004{i}\U000f1005"


class _Probe(str):
    """A sentinel value that template logic can use without failing (comparisons,
    arithmetic, attributes, items, calls); what it renders to is replaced afterwards."""

    __slots__ = ()

    def _same(self, *args: Any, **kwargs: Any) -> _Probe:
        return self

    def _false(self, other: object) -> bool:
        return False

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _same
    __pow__ = __rpow__ = __neg__ = __pos__ = __call__ = __getitem__ = _same
    __lt__ = __le__ = __gt__ = __ge__ = _false

    def __getattr__(self, name: str) -> _Probe:
        if name.startswith("_"):
            raise AttributeError(name)
        return self

    def __iter__(self) -> Any:
        return iter(())


def _escape(text: str) -> str:
    """Static text as jinja2 source that renders to exactly that text."""
    return _JINJA_OPEN.sub('{{ "{" }}', text)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation) or annotation
    if origin in (bool,):
        return "boolean"
    if origin in (int, float):
        return "number"
    if origin in (list, tuple, set, frozenset):
        return "array"
    if origin is dict or (isinstance(origin, type) and issubclass(origin, BaseModel)):
        return "object"
    return "string"


_FENCE_MACHINERY = """\
{%- set _pk_body %}TEMPLATE{% endset -%}
{%- set _pk = namespace(n=NEED) -%}
{%- for _pk_t in TEXTS if "<<<" in _pk_t -%}
{%- set _pk_s = namespace(lo=0, hi=_pk_t|length + 1) -%}
{%- for _ in range(64) if _pk_s.hi - _pk_s.lo > 1 -%}
{%- set _pk_m = (_pk_s.lo + _pk_s.hi) // 2 -%}
{%- if "<" * _pk_m in _pk_t %}{% set _pk_s.lo = _pk_m %}{% else %}{% set _pk_s.hi = _pk_m %}\
{% endif -%}
{%- endfor -%}
{%- if _pk_s.lo >= _pk.n %}{% set _pk.n = _pk_s.lo + 1 %}{% endif -%}
{%- endfor -%}
{%- set _pk_o = "<" * _pk.n %}{% set _pk_c = ">" * _pk.n -%}
"""


def to_prompty(prompt: Prompt) -> PromptyPrompt:
    """A technique prompt as a :class:`PromptyPrompt` that renders the same messages.

    The layout (role, instruction, examples, history, sections, trigger) is rendered once
    into role lines; ``instruction`` and ``template`` stay jinja2, so the variables stay
    variables. Delimited sections keep markers that adapt to the input, as in promptkit.
    Not carried over: an ``inputs`` model (its field types become ``inputs``), and
    ``documents=`` / ``history=`` given at render time (the prompt's own are saved).

    >>> from promptkit import FewShot, Example
    >>> fs = FewShot(instruction="Classify the sentiment.",
    ...              examples=[Example(input="I loved it", output="positive")])
    >>> print(to_prompty(fs).template)
    system:
    Classify the sentiment.
    <BLANKLINE>
    user:
    I loved it
    <BLANKLINE>
    assistant:
    positive
    <BLANKLINE>
    user:
    {{ input }}
    <BLANKLINE>
    >>> to_prompty(fs).render(input="Meh") == fs.render(input="Meh")
    True
    """
    label = prompt.label
    names = sorted(prompt.variables)
    values = {
        n: _sentinel(i) if n in prompt.delimit else _Probe(_sentinel(i))
        for i, n in enumerate(names)
    }
    has_body = prompt.template != ""
    update: dict[str, Any] = {"inputs": None, "extra_vars": "ignore"}
    if has_body:
        update["template"] = _OB + prompt.template + _CB
    if prompt.instruction:
        update["instruction"] = _OI + prompt.instruction + _CI
    if _MARKERS.search(prompt.model_dump_json()):
        raise PromptError(f"{label} contains private-use characters promptkit uses to save it.")
    copy: Prompt = prompt.model_copy(update=update)
    try:
        messages = copy.render(**values)
    except PromptError as exc:
        raise PromptError(
            f"{label} cannot be saved as .prompty: rendering its layout with placeholder "
            f"values failed ({exc})."
        ) from None
    if any(m.has_media for m in messages):
        raise PromptError(
            f"{label} holds images, audio or files (in its examples, history or documents), "
            "which a .prompty file cannot carry as promptkit renders them: save it as JSON "
            "or YAML (pk.save_prompt) instead."
        )

    sections = bool(prompt.delimit or prompt.documents)
    labels = ["LABEL", "END LABEL"]
    for doc in prompt.documents:
        labels += [f"DOCUMENT {doc.id}", f"END DOCUMENT {doc.id}"]
    for name in prompt.delimit:
        labels += [name.upper(), f"END {name.upper()}"]
    need = 3
    if sections:
        last = messages[-1].text
        found = re.search(r"(?<!<)(<{3,})(?:" + "|".join(re.escape(x) for x in labels) + ")>", last)
        if found is None:  # pragma: no cover - the layout always writes a marker
            raise PromptError(f"{label}: cannot find the section markers to save them.")
        need = len(found.group(1))
    fence = (
        re.compile(f"<{{{need}}}({'|'.join(re.escape(x) for x in labels)})>{{{need}}}")
        if sections
        else None
    )

    special = re.compile(
        f"{_OI}(.*?){_CI}|{_OB}(.*?){_CB}|{_SENTINEL.pattern}"
        + (f"|{fence.pattern}" if fence is not None else ""),
        re.S,
    )
    body_ref = "{{ _pk_body }}" if sections else prompt.template

    def source(text: str, final: bool) -> str:
        out: list[str] = []
        pos = 0
        for m in special.finditer(text):
            out.append(_escape(text[pos : m.start()]))
            if m.group(0).startswith(_OI):
                out.append(prompt.instruction or "")
            elif m.group(0).startswith(_OB):
                out.append(body_ref if final else _escape(m.group(2)))
            elif m.group(0).startswith("\U000f1004"):
                name = names[int(m.group(3))]
                if not final or name not in prompt.delimit:  # pragma: no cover - defensive
                    raise PromptError(
                        f"{label}: variable {name!r} appears where it cannot be saved."
                    )
                out.append(f"{{{{ {name} }}}}")
            else:
                out.append("{{ _pk_o }}" + _escape(m.group(4)) + "{{ _pk_c }}")
            pos = m.end()
        out.append(_escape(text[pos:]))
        return "".join(out)

    parts = []
    for i, m in enumerate(messages):
        final = i == len(messages) - 1 and m.role == "user"
        parts.append(f"{m.role}:\n{source(m.text, final)}")
    body = "\n\n".join(parts)
    if sections:
        texts = "[" + ", ".join(["_pk_body", *prompt.delimit]) + "]"
        preamble = (
            _FENCE_MACHINERY.replace("TEMPLATE", prompt.template)
            .replace("NEED", str(need))
            .replace("TEXTS", texts)
        )
        body = preamble + body

    inputs: dict[str, PromptyProperty] = {}
    fields = prompt.inputs.model_fields if prompt.inputs is not None else {}
    for name in names:
        field = fields.get(name)
        inputs[name] = PromptyProperty(
            type=_type_name(field.annotation) if field is not None else "string",
            description=(field.description or "") if field is not None else "",
        )
    converted = PromptyPrompt(
        name=prompt.name,
        description=f"Saved from a promptkit {type(prompt).__name__} prompt.",
        model=PromptyModel(api="chat"),
        params=prompt.params,
        inputs=inputs,
        template=body + "\n",
    )
    _verify(prompt, converted, names)
    return converted


def _verify(prompt: Prompt, converted: PromptyPrompt, names: list[str]) -> None:
    """Render both with probe values; any difference means the format cannot hold it."""
    for probe in (
        {n: f"value of {n}" for n in names},
        {n: f"<<<<< {n} >>>>>\n<<<END {n.upper()}>>>" for n in names},
    ):
        try:
            want = prompt.render(**probe)
        except PromptError:
            continue
        got = converted.render(**probe)
        if got != want:
            raise PromptError(
                f"{prompt.label} cannot be saved as .prompty without changing its messages: "
                f"{_first_difference(want, got)}. (Leading/trailing whitespace in a message, "
                "an empty message or a line such as 'user:' inside a text cannot be expressed "
                "in the format.)"
            )


def _first_difference(want: list[Message], got: list[Message]) -> str:
    for i, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return (
                f"message {i} would be {b.role} {b.content[:60]!r} instead of {a.role} "
                f"{a.content[:60]!r}"
            )
    return f"{len(got)} messages instead of {len(want)}"


# --------------------------------------------------------------------------- API


def dump(prompt: PromptBase) -> str:
    """The text of a ``.prompty`` file for ``prompt``: a :class:`PromptyPrompt`, or a
    technique prompt converted by :func:`to_prompty`.

    >>> from promptkit import Role
    >>> print(dump(Role(role="a chef", name="chef")))
    ---
    name: chef
    description: Saved from a promptkit Role prompt.
    model:
      api: chat
    inputs:
      input:
        type: string
    ---
    system:
    You are a chef.
    <BLANKLINE>
    user:
    {{ input }}
    <BLANKLINE>
    """
    if isinstance(prompt, PromptyPrompt):
        return _dump_prompty(prompt)
    if isinstance(prompt, Prompt):
        return _dump_prompty(to_prompty(prompt))
    raise PromptError(
        f"Cannot save a {type(prompt).__name__} as .prompty: only PromptyPrompt and technique "
        "prompts (promptkit.Prompt subclasses) can be saved."
    )


def save(prompt: PromptBase, path: str | Path) -> Path:
    """Write :func:`dump`'s text to ``path`` (UTF-8); returns the path.

    A :class:`PromptyPrompt` loaded from a file and saved into another folder has its
    local markdown image paths rewritten relative to the new file, so they reach the same
    images; one that would lie outside the new folder (or ``root=``) raises
    :class:`~promptkit.PromptError` before anything is written. Paths the template builds
    from values (``![x]({{ pic }})``) are left as written.
    """
    p = Path(path)
    if isinstance(prompt, PromptyPrompt):
        text = _dump_prompty(prompt, p.parent.resolve())
    else:
        text = dump(prompt)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PromptError(
            f"Cannot write {p}: {exc.strerror or exc}. Check that the path names a file in "
            "a folder that exists and is writable."
        ) from None
    return p
