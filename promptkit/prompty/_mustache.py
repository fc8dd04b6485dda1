"""A small mustache renderer that behaves like the one Prompty v1 vendors (chevron).

What it does, like the reference:

- ``{{name}}`` inserts a value HTML-escaped (``&``, ``<``, ``>``, ``"``; not ``'``);
  ``{{{name}}}`` and ``{{&name}}`` insert it raw. ``None`` and empty values render as
  nothing, ``0`` and ``False`` as ``0`` and ``False``.
- ``{{#name}}...{{/name}}`` repeats for each item of a list and enters a mapping;
  ``{{^name}}...{{/name}}`` renders when the value is missing or falsy; ``{{! comment}}``
  and ``{{=<% %>=}}`` (set delimiters) output nothing. Dotted names (``a.b.0``) walk
  mappings and list indices, and a name not found in the innermost scope is looked up in
  the enclosing ones.
- A line holding only a section, inverted-section, end, comment or delimiter tag (and
  spaces) disappears, newline included ("standalone" lines).
- There are no partials (``{{> name}}`` renders nothing).

Where it deliberately differs (only for data a ``.prompty`` file cannot contain):

- Names are looked up only in mappings, list/str indices and pydantic model fields.
  chevron falls back to ``getattr`` on any object, so ``{{items.count}}`` would print a
  bound method's repr, and a section over a callable would *call* it with the section's
  text; here such names are simply not found and callables are never called.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["MustacheSyntaxError", "render", "tokenize", "top_level_names"]

Token = tuple[str, str]

_TAG_TYPES = {
    "!": "comment",
    "#": "section",
    "^": "inverted section",
    "/": "end",
    ">": "partial",
    "=": "set delimiter?",
    "{": "no escape?",
    "&": "no escape",
}


class MustacheSyntaxError(ValueError):
    """The mustache template does not parse (unclosed tag or section, ...)."""


def _l_sa_check(literal: str, is_standalone: bool) -> bool:
    if "\n" in literal or is_standalone:
        padding = literal.split("\n")[-1]
        return padding.isspace() or padding == ""
    return False


def _r_sa_check(template: str, tag_type: str, is_standalone: bool) -> bool:
    if is_standalone and tag_type not in ("variable", "no escape"):
        first = template.split("\n", 1)[0]
        return first.isspace() or not first
    return False


def tokenize(template: str) -> list[Token]:
    """The template as ``(kind, key)`` tokens, standalone lines already removed.

    >>> tokenize("Hi {{name}}!")
    [('literal', 'Hi '), ('variable', 'name'), ('literal', '!')]
    """
    tokens: list[Token] = []
    line = 1
    is_standalone = True
    open_sections: list[tuple[str, int]] = []
    l_del, r_del = "{{", "}}"
    while template:
        literal, sep, rest = template.partition(l_del)
        if not sep:
            literal, rest = template, ""
        template = rest
        line += literal.count("\n")
        if not template:
            tokens.append(("literal", literal))
            break
        is_standalone = _l_sa_check(literal, is_standalone)

        tag, sep, template = template.partition(r_del)
        if not sep:
            raise MustacheSyntaxError(f"unclosed tag {l_del}{tag[:20]}... on line {line}")
        if not tag:
            raise MustacheSyntaxError(f"empty tag {l_del}{r_del} on line {line}")
        tag_type = _TAG_TYPES.get(tag[0], "variable")
        if tag_type != "variable":
            tag = tag[1:]
        if tag_type == "set delimiter?":
            if not tag.endswith("="):
                raise MustacheSyntaxError(f"unclosed set-delimiter tag on line {line}")
            tag_type = "set delimiter"
            tag = tag[:-1]
        elif (
            tag_type == "no escape?"
            and l_del == "{{"
            and r_del == "}}"
            and template.startswith("}")
        ):
            template = template[1:]
            tag_type = "no escape"
        key = tag.strip()

        if tag_type == "set delimiter":
            dels = key.split(" ")
            l_del, r_del = dels[0], dels[-1]
            if not l_del or not r_del:
                raise MustacheSyntaxError(f"empty delimiter in set-delimiter tag on line {line}")
        elif tag_type in ("section", "inverted section"):
            open_sections.append((key, line))
        elif tag_type == "end":
            if not open_sections:
                raise MustacheSyntaxError(
                    f"{{{{/{key}}}}} on line {line} closes a section that was never opened"
                )
            last, opened = open_sections.pop()
            if key != last:
                raise MustacheSyntaxError(
                    f"{{{{/{key}}}}} on line {line} does not close the section "
                    f"{{{{#{last}}}}} opened on line {opened}"
                )

        is_standalone = _r_sa_check(template, tag_type, is_standalone)
        if is_standalone:
            template = template.split("\n", 1)[-1]
            if tag_type != "partial":
                literal = literal.rstrip(" ")
        line += key.count("\n")
        if literal != "":
            tokens.append(("literal", literal))
        if tag_type not in ("comment", "set delimiter?"):
            tokens.append((tag_type, key))
    if open_sections:
        key, opened = open_sections[-1]
        raise MustacheSyntaxError(f"section {{{{#{key}}}}} opened on line {opened} is never closed")
    return tokens


def top_level_names(tokens: Sequence[Token]) -> frozenset[str]:
    """The first part of every name used outside any section.

    >>> sorted(top_level_names(tokenize("{{a.b}} {{#c}}{{d}}{{/c}}")))
    ['a', 'c']
    """
    names: set[str] = set()
    depth = 0
    for kind, key in tokens:
        if kind in ("variable", "no escape", "section", "inverted section"):
            if depth == 0 and key != ".":
                names.add(key.split(".")[0])
            if kind in ("section", "inverted section"):
                depth += 1
        elif kind == "end":
            depth -= 1
    return frozenset(names)


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


class _NotFound(Exception):
    pass


def _is_zero_or_false(value: Any) -> bool:
    # chevron's `value in (0, False)`: 0, 0.0 and False (but not "" or None)
    try:
        return bool(value == 0) and not isinstance(value, str)
    except Exception:
        return False


def _child(scope: Any, child: str) -> Any:
    if isinstance(scope, Mapping):
        if child in scope:
            return scope[child]
        raise _NotFound
    if isinstance(scope, BaseModel) and child in type(scope).model_fields:
        return getattr(scope, child)
    if isinstance(scope, (str, Sequence)):
        try:
            return scope[int(child)]
        except (ValueError, IndexError):
            raise _NotFound from None
    raise _NotFound


def _get_key(key: str, scopes: list[Any]) -> Any:
    if key == ".":
        return scopes[0]
    for scope in scopes:
        try:
            if _is_zero_or_false(scope):
                return scope
            value = scope
            for child in key.split("."):
                if _is_zero_or_false(value):
                    return value
                value = _child(value, child)
        except _NotFound:
            continue
        if _is_zero_or_false(value):
            return value
        return value or ""
    return ""


def _render(tokens: Iterator[Token], scopes: list[Any], out: list[str]) -> None:
    for tag, key in tokens:
        current = scopes[0]
        if tag == "end":
            del scopes[0]
        elif not current and len(scopes) != 1:
            if tag in ("section", "inverted section"):
                scopes.insert(0, False)
        elif tag == "literal":
            out.append(key)
        elif tag == "variable":
            thing = _get_key(key, scopes)
            if thing is True and key == ".":
                thing = scopes[1]
            out.append(_html_escape(thing if isinstance(thing, str) else str(thing)))
        elif tag == "no escape":
            thing = _get_key(key, scopes)
            out.append(thing if isinstance(thing, str) else str(thing))
        elif tag == "section":
            scope = _get_key(key, scopes)
            if isinstance(scope, (Sequence, Iterator)) and not isinstance(scope, str):
                inner: list[Token] = []
                same = 0
                for token in tokens:
                    if token == ("section", key):
                        same += 1
                    if token == ("end", key):
                        same -= 1
                        if same < 0:
                            break
                    inner.append(token)
                for thing in scope:
                    _render(iter(inner), [thing, *scopes], out)
            else:
                scopes.insert(0, scope)
        elif tag == "inverted section":
            scopes.insert(0, not _get_key(key, scopes))
        # partials render nothing (the reference passes no partials); set-delimiter
        # tokens and malformed '{{{' tags output nothing either


def render(tokens: Sequence[Token], data: Mapping[str, Any]) -> str:
    """Render tokens from :func:`tokenize` with ``data``.

    >>> render(tokenize("{{#items}}- {{name}}\\n{{/items}}{{^items}}none{{/items}}"),
    ...        {"items": [{"name": "a<b"}, {"name": "c"}]})
    '- a&lt;b\\n- c\\n'
    """
    out: list[str] = []
    _render(iter(tokens), [data], out)
    return "".join(out)
