"""The Prompty v1 file format, as the reference runtime (PyPI ``prompty==0.1.50``) reads it.

Pure functions, no prompt objects: splitting a file into front matter and body,
normalising the front matter (``${env:...}`` / ``${file:...}``), splitting rendered text
into chat messages, inlining markdown images, and flattening ``{% extends %}``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import nodes

from .._errors import ConfigurationError, PromptError
from .._media import TextPart
from .._render import compile_template, environment

__all__ = [
    "FRONT_MATTER",
    "ROLES",
    "SEPARATOR",
    "FileRefs",
    "drop_final_newline",
    "flatten_extends",
    "is_reference",
    "parse_content",
    "read_yaml",
    "resolve_env",
    "split_chat",
    "split_file",
]

#: The reference's split of a file into front matter and body (``P/utils.py``): the front
#: matter runs from the first fence to the next ``---``/``+++`` *anywhere*.
FRONT_MATTER = re.compile(r"^\s*(?:---|\+\+\+)(.*?)(?:---|\+\+\+)\s*(.+)$", re.S | re.M)

#: The roles the chat parser recognises (``function`` has no promptkit Message role).
ROLES = ("assistant", "function", "system", "user")

#: A role line: optional ``#``, the role in any case, optional padding, ``:``, newline.
SEPARATOR = re.compile(r"(?i)^\s*#?\s*(" + "|".join(ROLES) + r")\s*:\s*\n", re.M)

#: Markdown images, exactly as the reference finds them.
IMAGE = re.compile(r"(?P<alt>!\[[^\]]*\])\((?P<filename>.*?)(?=\"|\))\)", re.M)

_REFERENCE = re.compile(r"^\$\{.*\}$", re.S)


def split_file(text: str, where: str) -> tuple[str, str]:
    """``(front_matter, body)``; the body loses its leading whitespace, as in Prompty.

    >>> split_file("---\\nname: x\\n---\\n\\nsystem:\\nHi", "f")
    ('\\nname: x\\n', 'system:\\nHi')
    """
    match = FRONT_MATTER.search(text)
    if match is None:
        raise PromptError(
            f"{where}: no front matter. A .prompty file starts with YAML between two '---' "
            "lines, then the template, e.g. '---\\nmodel:\\n  api: chat\\n---\\nsystem:\\n...'."
        )
    return match.group(1), match.group(2)


def read_yaml(front_matter: str, where: str) -> dict[str, Any]:
    """The front matter parsed with ``yaml.safe_load`` (never a loader that builds objects)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "Reading .prompty files needs PyYAML, a dependency of promptkit: reinstall "
            "promptkit, or pip install pyyaml."
        ) from None
    try:
        data = yaml.safe_load(front_matter)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise PromptError(
            f"{where}: the front matter is not valid YAML ({detail}). Fix the YAML between "
            "the '---' lines; tags that build Python objects (!!python/...) are never allowed."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PromptError(
            f"{where}: the front matter must be a YAML mapping (name:, model:, sample:, ...), "
            f"got a {type(data).__name__}."
        )
    return data


def is_reference(value: str) -> bool:
    """Whether a (stripped) string is a ``${...}`` reference that Prompty resolves."""
    return value.startswith("${") and value.endswith("}")


def resolve_env(reference: str, where: str) -> str:
    """The value of ``${env:VAR}`` / ``${env:VAR:default}`` as the reference computes it
    (the default is cut at its first ``:``; an empty default counts as none)."""
    parts = reference[2:-1].split(":")
    var = parts[1]
    default = parts[2] if len(parts) > 2 else None
    if var in os.environ:
        return os.environ[var]
    if default:
        return default
    raise ConfigurationError(
        f"{where}: environment variable {var!r} is not set and {reference} has no default. "
        f"Set {var}, or write ${{env:{var}:default}}."
    )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


class FileRefs:
    """Resolves file references of one ``.prompty`` file, confined to ``root``."""

    def __init__(self, base_dir: Path | None, root: Path | None, where: str) -> None:
        self.base_dir = base_dir.resolve() if base_dir is not None else None
        self.root = root if root is not None else base_dir
        self.root = self.root.resolve() if self.root is not None else None
        self.where = where

    def path(self, rel: str, what: str) -> Path:
        """``rel`` resolved against the file's folder; it must stay inside ``root``."""
        if self.base_dir is None or self.root is None:
            raise PromptError(
                f"{self.where}: {what} {rel!r} is relative to the .prompty file, but the text "
                "was not loaded from a file: pass base_dir= to loads()."
            )
        if rel.startswith("~"):  # the home folder: never expanded, never reached
            raise PromptError(
                f"{self.where}: {what} {rel!r} starts with '~', but a path in a .prompty file "
                f"is taken from the file's folder and must stay inside {self.root} ('~' is not "
                "expanded to a home folder). Copy the file next to the .prompty file and write "
                "its path relative to it."
            )
        target = (self.base_dir / rel).resolve()
        if not _inside(target, self.root):
            raise PromptError(
                f"{self.where}: {what} {rel!r} points outside {self.root}. Move the file next "
                "to the .prompty file, or pass root= (a folder that contains both) to load()."
            )
        return target


def normalize(
    value: Any,
    *,
    refs: FileRefs,
    at: str,
    allow_env: bool,
    in_configuration: bool,
    loading: tuple[Path, ...] = (),
) -> Any:
    """Prompty's normalisation: strip every string and resolve exact ``${...}`` values.

    ``${env:...}`` inside ``model.configuration`` is kept as written (resolved only by
    :meth:`PromptyPrompt.resolved_configuration`, so secrets never sit in the prompt);
    elsewhere it is resolved when ``allow_env`` and refused otherwise.
    """
    if isinstance(value, str):
        value = value.strip()
        if not is_reference(value):
            return value
        parts = value[2:-1].split(":")
        if parts[0] == "env" and len(parts) > 1:
            if in_configuration:
                return value
            if not allow_env:
                raise PromptError(
                    f"{refs.where}: {at} is {value}. Environment references are resolved only "
                    "in model.configuration, so that a .prompty file cannot copy secrets into "
                    "the prompt; load the file with allow_env=True if you trust it."
                )
            return resolve_env(value, f"{refs.where}: {at}")
        if parts[0] == "file" and len(parts) > 1:
            target = refs.path(parts[1], f"{at}: {value}")
            if target in loading:
                raise PromptError(f"{refs.where}: {at}: {value} refers to itself.")
            if not target.is_file():
                raise PromptError(
                    f"{refs.where}: {at}: file {parts[1]!r} not found (looked for {target})."
                )
            try:
                items = json.loads(target.read_text(encoding="utf-8"))
            except OSError as exc:
                raise PromptError(
                    f"{refs.where}: {at}: cannot read {target}: {exc.strerror}."
                ) from None
            except json.JSONDecodeError as exc:
                raise PromptError(
                    f"{refs.where}: {at}: {parts[1]} is not valid JSON (line {exc.lineno}: "
                    f"{exc.msg}); ${{file:...}} files are always read as JSON."
                ) from None
            if isinstance(items, (list, dict)):
                return normalize(
                    items,
                    refs=refs,
                    at=at,
                    allow_env=allow_env,
                    in_configuration=in_configuration,
                    loading=(*loading, target),
                )
            return items
        raise PromptError(
            f"{refs.where}: {at} is {value!r}: the only references are ${{env:VAR}}, "
            "${env:VAR:default} and ${file:relative/path.json} (lower-case)."
        )
    if isinstance(value, list):
        return [
            normalize(
                v,
                refs=refs,
                at=f"{at}[{i}]",
                allow_env=allow_env,
                in_configuration=in_configuration,
                loading=loading,
            )
            for i, v in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            k: normalize(
                v,
                refs=refs,
                at=f"{at}.{k}" if at else str(k),
                allow_env=allow_env,
                in_configuration=in_configuration or (at == "model" and k == "configuration"),
                loading=loading,
            )
            for k, v in value.items()
        }
    return value


def drop_final_newline(source: str) -> str:
    """What jinja2's ``keep_trailing_newline=False`` does to a template's source."""
    if source.endswith("\r\n"):
        return source[:-2]
    if source.endswith(("\n", "\r")):
        return source[:-1]
    return source


# --------------------------------------------------------------------------- chat


def split_chat(text: str) -> list[tuple[str, str]]:
    """The reference chat parser (``P/parsers.py``): ``(role, content)`` pairs.

    >>> split_chat("system:\\nBe brief.\\n\\nUSER :\\nHi\\nuser: not a marker")
    [('system', 'Be brief.'), ('user', 'Hi\\nuser: not a marker')]
    """
    chunks = [c for c in SEPARATOR.split(text) if c.strip()]
    if not chunks:
        raise PromptError(
            "the template renders no text, so there is no message: check the body and inputs."
        )
    if chunks[0].strip().lower() not in ROLES:
        chunks.insert(0, "system")
    if chunks[-1].strip().lower() in ROLES:
        chunks.pop()
    if len(chunks) % 2 != 0:
        raise PromptError(
            "invalid prompt format: a role line (system:/user:/assistant:) is followed by no "
            "text. Give every role some content or remove the empty role line."
        )
    return [(chunks[i].strip().lower(), chunks[i + 1].strip()) for i in range(0, len(chunks), 2)]


def parse_content(content: str, inline_image: Callable[[str], str]) -> str | list[dict[str, Any]]:
    """Markdown images make the content a part list, exactly as the reference does."""
    matches = IMAGE.findall(content)
    if not matches:
        return content
    items: list[dict[str, Any]] = []
    chunks = IMAGE.split(content)
    current = 0
    for chunk in chunks:
        if current < len(matches) and chunk == matches[current][0]:
            url = inline_image(matches[current][1].split(" ")[0].strip())
            items.append({"type": "image_url", "image_url": {"url": url}})
        elif current < len(matches) and chunk == matches[current][1]:
            current += 1
        elif chunk.strip():
            items.append({"type": "text", "text": chunk.strip()})
    return items


def content_parts(content: str, refs: FileRefs) -> str | tuple[Any, ...]:
    """Markdown images as real content parts (what :meth:`PromptyPrompt.render` returns):
    the same split as :func:`parse_content` (text chunks stripped, as the reference does),
    with each image an :class:`~promptkit.ImagePart`: an http(s) URL passed through, a
    ``data:`` URL decoded, a local file (inside the prompt's folder) read lazily when sent."""
    matches = IMAGE.findall(content)
    if not matches:
        return content
    items: list[Any] = []
    current = 0
    for chunk in IMAGE.split(content):
        if current < len(matches) and chunk == matches[current][0]:
            items.append(_image_part(matches[current][1].split(" ")[0].strip(), refs))
        elif current < len(matches) and chunk == matches[current][1]:
            current += 1
        elif chunk.strip():
            items.append(TextPart(text=chunk.strip()))
    return tuple(items)


def _image_part(item: str, refs: FileRefs) -> Any:
    from .._media import Image

    if item.startswith("data:") and ";base64," not in item.split(",")[0] + ",":
        from .._media import ImagePart

        return ImagePart(url=item)  # not base64: passed through as the reference does
    if item.startswith(("http://", "https://", "data:")):
        return Image(item)
    from .._media import written_in

    target = refs.path(item, "image")  # refuses '~' and a file outside the folder (or root=)
    assert refs.base_dir is not None  # refs.path refuses text not loaded from a file
    # the part reads exactly the path checked; its errors name the reference as written
    return written_in(Image(target), item, f"the .prompty {refs.where!r}", refs.base_dir)


def image_url(item: str, refs: FileRefs) -> str:
    """``http...``/``data...`` URLs as they are; a local png/jpg/jpeg as a data URL."""
    if item.startswith(("http", "data")):
        return item
    path = refs.path(item, "image")
    if path.suffix == ".png":
        mime = "image/png"
    elif path.suffix in (".jpg", ".jpeg"):
        mime = "image/jpeg"
    else:
        raise PromptError(
            f"{refs.where}: image {item!r}: invalid image format {path.suffix!r}; only .png, "
            ".jpg and .jpeg files can be inlined."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PromptError(f"{refs.where}: cannot read image {path}: {exc.strerror}.") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# --------------------------------------------------------------------------- extends

_TAG = re.compile(
    r"(?P<comment>\{#.*?#\})"
    r"|(?P<raw>\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\})"
    r"|\{%(?P<l>[-+]?)\s*(?P<kw>block|endblock|extends)\b(?P<args>.*?)(?P<r>[-+]?)%\}",
    re.S,
)
_SUPER = re.compile(r"\bsuper\s*\(\s*\)")
#: Where ``super()`` may be code: inside ``{{ }}``/``{% %}``, not in raw sections or comments.
_CODE = re.compile(
    r"(?P<skip>\{#.*?#\}|\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\})"
    r"|\{\{.*?\}\}|\{%.*?%\}",
    re.S,
)


class _Block:
    __slots__ = (
        "args",
        "children",
        "close_l",
        "close_r",
        "end",
        "inner",
        "name",
        "open_l",
        "open_r",
    )

    def __init__(self, name: str, args: str, open_l: str, open_r: str, inner: int) -> None:
        self.name = name
        self.args = args
        self.open_l = open_l
        self.open_r = open_r
        self.inner = inner  # where the block's content starts
        self.end = -1  # where the content ends (the endblock tag starts)
        self.close_l = ""
        self.close_r = ""
        self.children: list[tuple[int, int, _Block]] = []


def _blocks(source: str, where: str) -> tuple[list[tuple[int, int, _Block]], dict[str, _Block]]:
    """Top-level blocks as ``(tag_start, endtag_end, block)`` and every block by name."""
    top: list[tuple[int, int, _Block]] = []
    by_name: dict[str, _Block] = {}
    stack: list[tuple[int, _Block]] = []
    for m in _TAG.finditer(source):
        kw = m.group("kw")
        if kw == "block":
            args = m.group("args").strip()
            name = args.split()[0] if args else ""
            block = _Block(name, args, m.group("l"), m.group("r"), m.end())
            stack.append((m.start(), block))
            by_name[name] = block
        elif kw == "endblock":
            if not stack:
                raise PromptError(f"{where}: {{% endblock %}} without a block.")
            start, block = stack.pop()
            block.end = m.start()
            block.close_l = m.group("l")
            block.close_r = m.group("r")
            (stack[-1][1].children if stack else top).append((start, m.end(), block))
    return top, by_name


class _Super:
    """What resolving ``super()`` needs: the base's blocks, the child's, a name counter."""

    __slots__ = ("child", "child_source", "count", "level", "parent", "parent_source", "where")

    def __init__(
        self,
        where: str,
        level: int,
        parent_source: str,
        parent: dict[str, _Block],
        child_source: str,
        child: dict[str, _Block],
    ) -> None:
        self.where = where
        self.level = level
        self.parent_source = parent_source
        self.parent = parent
        self.child_source = child_source
        self.child = child
        self.count = 0


def _override(block: _Block, sup: _Super) -> str:
    """A child block's content, its ``super()`` calls bound to the base block's output.

    ``{{ super() }}`` becomes a variable captured first with ``{% set %}...{% endset %}``
    from the base block's content (its nested blocks resolved as the child sees them, their
    tags turned into ``{% if true %}`` so that whitespace control stays), so the whole
    template still compiles in promptkit's one sandbox.
    """
    source = sup.child_source
    pieces: list[tuple[bool, str]] = []
    pos = block.inner
    for s, e, sub in block.children:
        pieces.append((True, source[pos:s]))
        pieces.append((False, source[s : sub.inner] + _override(sub, sup) + source[sub.end : e]))
        pos = e
    pieces.append((True, source[pos : block.end]))
    var = f"_pk_super_{sup.level}_{sup.count}"
    found = 0

    def bind(m: re.Match[str]) -> str:
        nonlocal found
        if m.group("skip"):
            return m.group(0)
        code, n = _SUPER.subn(var, m.group(0))
        found += n
        return code

    body = "".join(_CODE.sub(bind, text) if code else text for code, text in pieces)
    if not found:
        return body
    base = sup.parent.get(block.name)
    if base is None:
        raise PromptError(
            f"{sup.where}: super() in block {block.name!r}, but the base template has no "
            f"block {block.name!r} to call."
        )
    sup.count += 1
    captured = _resolved(base, sup)
    return (
        f"{{% set {var} {base.open_r}%}}{captured}{{%{base.close_l} endset {block.open_r or '+'}%}}"
        + body
    )


def _resolved(block: _Block, sup: _Super) -> str:
    """A base block's content with its nested blocks replaced by what renders for them."""
    source = sup.parent_source
    out: list[str] = []
    pos = block.inner
    for s, e, sub in block.children:
        out.append(source[pos:s])
        over = sup.child.get(sub.name)
        inner = _override(over, sup) if over is not None else _resolved(sub, sup)
        out.append(f"{{%{sub.open_l} if true {sub.open_r}%}}{inner}")
        out.append(f"{{%{sub.close_l} endif {sub.close_r}%}}")
        pos = e
    out.append(source[pos : block.end])
    return "".join(out)


def _merge(
    source: str,
    spans: list[tuple[int, int, _Block]],
    child: dict[str, _Block],
    child_source: str,
    start: int,
    end: int,
    sup: _Super | None = None,
) -> str:
    out: list[str] = []
    pos = start
    for s, e, block in spans:
        out.append(source[pos:s])
        over = child.get(block.name)
        if over is not None:
            out.append(f"{{%{block.open_l} block {over.args} {over.open_r}%}}")
            if sup is None:
                out.append(child_source[over.inner : over.end])
            else:
                out.append(_override(over, sup))
            out.append(f"{{%{over.close_l} endblock {block.close_r}%}}")
        else:
            out.append(source[s : block.inner])
            out.append(
                _merge(source, block.children, child, child_source, block.inner, block.end, sup)
            )
            out.append(source[block.end : e])
        pos = e
    out.append(source[pos:end])
    return "".join(out)


def _ast_blocks(source: str) -> tuple[nodes.Template, set[str]]:
    ast = environment().parse(source)
    return ast, {b.name for b in ast.find_all(nodes.Block)}


def flatten_extends(
    source: str, templates: Mapping[str, str], where: str, seen: tuple[str, ...] = ()
) -> str:
    """Replace ``{% extends "base.prompty" %}`` by the base with this template's blocks.

    The reference renders with a ``DictLoader`` of the base files; promptkit's sandbox has
    no loader, so inheritance is resolved here, as text, before compiling. Supported: one
    top-level ``{% extends "literal" %}`` naming a file of the ``base:`` chain, blocks
    (nested too), whitespace control on their tags, and ``super()`` in a child block (the
    base block's output, through every level of the chain). Not supported (raises):
    ``include``/``import``, and template code outside blocks after ``extends``.

    >>> flatten_extends('{% extends "b" %}{% block x %}child{% endblock %}',
    ...                 {"b": "<{% block x %}base{% endblock %}>"}, "t")
    '<{% block x %}child{% endblock %}>'
    >>> flat = flatten_extends('{% extends "b" %}{% block x %}[{{ super() }}]{% endblock %}',
    ...                        {"b": "<{% block x %}base{% endblock %}>"}, "t")
    >>> from promptkit._render import compile_template, render_compiled
    >>> render_compiled(compile_template(flat), {}, name="t")
    '<[base]>'
    """
    if "extends" not in source and "include" not in source and "import" not in source:
        return source
    compile_template(source, where)  # syntax errors first, with promptkit's message
    ast, child_names = _ast_blocks(source)
    for kind in (nodes.Include, nodes.Import, nodes.FromImport):
        if any(True for _ in ast.find_all(kind)):
            raise PromptError(
                f"{where}: {{% include %}} and {{% import %}} are not supported in .prompty "
                "templates; copy the text into the template or use {% extends %} with blocks."
            )
    extends = [n for n in ast.find_all(nodes.Extends)]
    if not extends:
        return source
    top_level = [n for n in ast.body if isinstance(n, nodes.Extends)]
    target = extends[0].template
    if (
        len(extends) != 1
        or len(top_level) != 1
        or not isinstance(target, nodes.Const)
        or not isinstance(target.value, str)
    ):
        raise PromptError(
            f'{where}: only one top-level {{% extends "file.prompty" %}} with a quoted file '
            "name is supported."
        )
    name = target.value
    if name in seen:
        raise PromptError(f"{where}: {{% extends {name!r} %}} is circular.")
    if name not in templates:
        known = ", ".join(repr(k) for k in templates) or "none"
        raise PromptError(
            f"{where}: {{% extends {name!r} %}} names no file of the base: chain (available: "
            f"{known}). Add 'base: {name}' to the front matter."
        )
    tag = next(m for m in _TAG.finditer(source) if m.group("kw") == "extends")
    head = source[: tag.start()]
    if tag.group("l") == "-":
        head = head.rstrip()
    spans, child = _blocks(source, where)
    outside, pos = [], tag.end()
    for s, e, _ in spans:
        if s >= pos:
            outside.append(source[pos:s])
            pos = e
    outside.append(source[pos:])
    if _TAG.sub(lambda m: "" if m.group("comment") else m.group(0), "".join(outside)).strip():
        raise PromptError(
            f"{where}: after {{% extends %}}, only {{% block %}} definitions may follow "
            "(the reference ignores other text there)."
        )
    parent = flatten_extends(drop_final_newline(templates[name]), templates, name, (*seen, name))
    parent_spans, parent_blocks = _blocks(parent, name)
    sup = None
    if any(_SUPER.search(source, b.inner, b.end) for b in child.values()):
        sup = _Super(where, len(seen), parent, parent_blocks, source, child)
    merged = head + _merge(parent, parent_spans, child, source, 0, len(parent), sup)
    merged_ast, merged_names = _ast_blocks(merged)
    _, parent_names = _ast_blocks(parent)
    for call in merged_ast.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "super":
            raise PromptError(
                f"{where}: cannot resolve this super() call (line {call.lineno} once the base "
                "is merged); write it as {{ super() }} inside a block that overrides a base "
                "block."
            )
    if set(child) != child_names or not merged_names <= (parent_names | child_names):
        raise PromptError(  # pragma: no cover - only with block tags hidden in strings
            f"{where}: cannot resolve {{% extends {name!r} %}}: block tags could not be "
            "located reliably (are there block tags inside strings?)."
        )
    return merged
