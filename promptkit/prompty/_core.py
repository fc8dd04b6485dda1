"""PromptyPrompt and the .prompty loader (see the package docs)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import jinja2
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from .._errors import ConfigurationError, ParameterError, PromptError
from .._params import SAMPLING_FIELDS, SamplingParams
from .._render import Compiled, compile_template, environment, render_compiled
from .._types import Message, StrictModel, fast_message
from ..prompts import PromptBase
from . import _mustache
from ._format import (
    FileRefs,
    content_parts,
    drop_final_newline,
    flatten_extends,
    image_url,
    is_reference,
    normalize,
    parse_content,
    read_yaml,
    resolve_env,
    split_chat,
    split_file,
)

__all__ = [
    "SAMPLING_FIELDS",
    "PromptyModel",
    "PromptyPrompt",
    "PromptyProperty",
    "load",
    "load_and_render",
    "loads",
    "parameters_from_params",
    "params_from_parameters",
]

Api = Literal["chat", "completion", "embedding", "image"]
TemplateFormat = Literal["jinja2", "mustache"]

_TOP_KEYS = (
    "name",
    "description",
    "authors",
    "tags",
    "version",
    "base",
    "model",
    "sample",
    "inputs",
    "outputs",
    "template",
)
_MODEL_KEYS = ("api", "configuration", "parameters", "response")
_PROPERTY_KEYS = ("type", "default", "description")
_TEMPLATE_KEYS = ("type", "parser")
_APIS: tuple[str, ...] = ("chat", "completion", "embedding", "image")
_FORMATS: tuple[str, ...] = ("jinja2", "mustache")


# --------------------------------------------------------------------------- parameters


def params_from_parameters(
    parameters: Mapping[str, Any], where: str = "model.parameters"
) -> SamplingParams | None:
    """``model.parameters`` as :class:`SamplingParams`: the fields promptkit models by
    name, everything else (``response_format``, ``tools``, ...) in ``extra``.

    >>> params_from_parameters({"temperature": 0, "stop": "END", "tools": []})
    SamplingParams(temperature=0.0, stop=['END'], extra={'tools': []})
    """
    if not parameters:
        return None
    known = {k: v for k, v in parameters.items() if k in SAMPLING_FIELDS and v is not None}
    extra = {k: v for k, v in parameters.items() if k not in SAMPLING_FIELDS}
    try:
        if extra:
            return SamplingParams(**known, extra=extra)
        return SamplingParams(**known)
    except ParameterError as exc:
        raise ParameterError(f"{where}: {exc} Fix the value in model.parameters.") from None


def parameters_from_params(params: SamplingParams) -> dict[str, Any]:
    """The inverse of :func:`params_from_parameters`: the set fields, then ``extra``.

    >>> parameters_from_params(SamplingParams(max_tokens=5, extra={"user": "u1"}))
    {'max_tokens': 5, 'user': 'u1'}
    """
    out = {k: getattr(params, k) for k in SAMPLING_FIELDS if k in params.model_fields_set}
    out.update(params.extra)
    return out


# --------------------------------------------------------------------------- models


class PromptyProperty(StrictModel):
    """One entry of ``inputs`` / ``outputs``. ``default`` is documentation only: like the
    reference runtime, rendering never uses it (``sample`` fills missing inputs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    default: Any = None
    description: str = ""


class PromptyModel(StrictModel):
    """The ``model`` section. ``configuration`` is kept as written (``${env:...}``
    unresolved); ``parameters`` become the prompt's :class:`SamplingParams`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api: Api = "chat"
    configuration: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    response: dict[str, Any] = Field(default_factory=dict)


class _LenientDict(dict[str, Any]):
    """A mapping whose missing keys are jinja2's lenient ``Undefined`` (they print as
    nothing), as in the reference's default environment."""

    def __missing__(self, key: str) -> Any:
        return jinja2.Undefined(name=str(key))


def _lenient(value: Any) -> Any:
    if isinstance(value, dict):
        return _LenientDict({k: _lenient(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_lenient(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_lenient(v) for v in value)
    return value


_ROLE_WORD = re.compile(r"(?i)\b(assistant|function|system|user)(?=\s*:)")
_BARE_ROLE = re.compile(r"(?i)(\s*(?:assistant|function|system|user))(\s*)")
#: Unicode noncharacters put into input values so that no role line can form: ``_GUARD``
#: between a role word and a colon inside a value; ``_BARE`` after a value that is only a
#: role word (so the parser does not take the value for a role), dropped where the
#: template itself follows the value with a colon (``{{ m.role }}:`` history lines).
_GUARD = "\ufdd0"
_BARE = "\ufdd1"
_BARE_COLON = re.compile(_BARE + r"(?=\s*:)")


def _escape_roles(value: Any) -> Any:
    if isinstance(value, str):
        bare = _BARE_ROLE.fullmatch(value)
        if bare is not None:
            return bare.group(1) + _BARE + bare.group(2)
        return _ROLE_WORD.sub(r"\1" + _GUARD, value) if ":" in value else value
    if isinstance(value, dict):
        return {k: _escape_roles(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_escape_roles(v) for v in value)
    return value


def _unguard(text: str) -> str:
    if _GUARD in text or _BARE in text:
        return text.replace(_GUARD, "").replace(_BARE, "")
    return text


class PromptyPrompt(PromptBase):
    """A prompt loaded from (or saved as) a ``.prompty`` file.

    ``template`` is the body after the front matter; ``template_format`` is ``jinja2`` or
    ``mustache``. ``base_templates`` holds the bodies of the ``base:`` chain by file name
    (what ``{% extends "name.prompty" %}`` can reach). ``params`` default to
    ``model.parameters`` mapped onto :class:`SamplingParams`.

    >>> p = PromptyPrompt(template="system:\\nYou are {{ persona }}.\\nuser:\\n{{ q }}",
    ...                   sample={"persona": "terse"})
    >>> [m.content for m in p.render(q="Why?")]
    ['You are terse.', 'Why?']
    >>> sorted(p.variables)
    ['persona', 'q']
    """

    template: str
    template_format: TemplateFormat = "jinja2"
    description: str = ""
    authors: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    version: str = ""
    model: PromptyModel = Field(default_factory=PromptyModel)
    inputs: dict[str, PromptyProperty] = Field(default_factory=dict)
    outputs: dict[str, PromptyProperty] = Field(default_factory=dict)
    sample: dict[str, Any] = Field(default_factory=dict)
    base_templates: dict[str, str] = Field(default_factory=dict)
    escape_roles: bool = True
    base_dir: Path | None = Field(default=None, exclude=True)
    root: Path | None = Field(default=None, exclude=True)

    _compiled: Compiled | None = PrivateAttr(default=None)
    _tokens: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _params_from_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "params" not in data:
            model = data.get("model")
            if isinstance(model, PromptyModel):
                parameters: Any = model.parameters
            elif isinstance(model, Mapping):
                parameters = model.get("parameters") or {}
            else:
                parameters = {}
            if isinstance(parameters, Mapping) and parameters:
                return {**data, "params": params_from_parameters(parameters)}
        return data

    @model_validator(mode="after")
    def _compile(self) -> PromptyPrompt:
        if not self.template.strip():
            raise ValueError("the template (the text after the front matter) is empty")
        if self.template_format == "jinja2":
            source = flatten_extends(
                drop_final_newline(self.template), self.base_templates, self.label
            )
            self._compiled = compile_template(source, self.label)
        else:
            try:
                self._tokens = _mustache.tokenize(self.template)
            except _mustache.MustacheSyntaxError as exc:
                from .._errors import TemplateSyntaxError

                raise TemplateSyntaxError(
                    f"{self.label}: mustache syntax error: {exc}. Fix the template."
                ) from None
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any:
        """A copy with ``update`` applied, validated like a new prompt.

        >>> PromptyPrompt(template="{{ x }}").model_copy(update={"template": "y"}).render()
        [Message(role='system', content='y')]
        """
        data = {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}
        data.update(update or {})
        return type(self).model_validate(data)

    # ------------------------------------------------------------------ introspection

    @property
    def variables(self) -> frozenset[str]:
        """The names the template reads (jinja2's undeclared variables, or the mustache
        names used outside sections)."""
        if self._compiled is not None:
            return self._compiled.variables - frozenset(environment().globals)
        return _mustache.top_level_names(self._tokens)

    @property
    def source(self) -> str:
        """The template that renders: the body with ``{% extends %}`` resolved."""
        if self._compiled is not None:
            return self._compiled.source
        return self.template

    def resolved_configuration(self) -> dict[str, Any]:
        """``model.configuration`` as the reference resolves it: ``prompty.json``'s
        ``default`` entry (searched from the file's folder upward) under the file's own
        keys, and every ``${env:VAR}`` / ``${env:VAR:default}`` replaced.

        Raises :class:`~promptkit.ConfigurationError` for a variable that is unset and
        has no default. promptkit itself never needs this: backends come from
        :func:`promptkit.connect`.

        >>> PromptyPrompt(template="hi", model={"configuration": {"type": "openai",
        ...     "key": "${env:PROMPTKIT_DOCTEST_UNSET:none}"}}).resolved_configuration()
        {'type': 'openai', 'key': 'none'}
        """
        config: dict[str, Any] = dict(self.model.configuration)
        for key, value in self._global_configuration().items():
            config.setdefault(key, value)
        resolved: dict[str, Any] = _resolve_env_refs(config, f"{self.label}: model.configuration")
        return resolved

    def _global_configuration(self) -> dict[str, Any]:
        if self.base_dir is None:
            return {}
        import json

        folder = self.base_dir.resolve()
        for directory in (folder, *folder.parents):
            candidate = directory / "prompty.json"
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as exc:
                    raise ConfigurationError(f"Cannot read {candidate}: {exc}.") from None
                if not isinstance(data, dict) or "default" not in data:
                    raise ConfigurationError(
                        f'{candidate} has no "default" entry; add one holding the '
                        "connection settings, or remove the file."
                    )
                default = data["default"]
                if not isinstance(default, dict):
                    raise ConfigurationError(f'{candidate}: "default" must be an object.')
                refs = FileRefs(self.base_dir, self.root, str(candidate))
                normalized: dict[str, Any] = normalize(
                    default, refs=refs, at="default", allow_env=True, in_configuration=False
                )
                return normalized
        return {}

    # ------------------------------------------------------------------ rendering

    def _render_text(self, inputs: Mapping[str, Any]) -> str:
        values: dict[str, Any] = dict(self.sample)
        if not self.escape_roles:
            values.update(inputs)
            return self._render_values(values)
        values.update(_escape_roles(dict(inputs)))
        text = self._render_values(values)
        return _BARE_COLON.sub("", text) if _BARE in text else text

    def _render_values(self, values: dict[str, Any]) -> str:
        if self._compiled is None:
            return _mustache.render(self._tokens, values)
        context: dict[str, Any] = {k: _lenient(v) for k, v in values.items()}
        env_globals = environment().globals
        for name in self._compiled.variables:
            if name not in context and name not in env_globals:
                context[name] = jinja2.Undefined(name=name)
        return render_compiled(self._compiled, context, name=self.label)

    def render_string(self, **inputs: Any) -> str:
        """The rendered template before it is split into messages.

        >>> PromptyPrompt(template="user:\\n{{ q }}\\n").render_string(q="Hi")
        'user:\\nHi'
        """
        return _unguard(self._render_text(inputs))

    def _pairs(self, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        text = self._render_text(inputs)
        try:
            pairs = split_chat(text)
        except PromptError as exc:
            raise PromptError(f"{self.label}: {exc}") from None
        return [(role, _unguard(content)) for role, content in pairs]

    def render(self, **inputs: Any) -> list[Message]:
        """The chat messages, as the reference runtime renders them.

        ``inputs`` win over ``sample``; variables given by neither render as empty text.
        A message with markdown images (``![alt](url)``) holds content parts, split as the
        reference splits them: text parts (stripped) and :class:`~promptkit.ImagePart`
        (an http(s) URL passed through, a ``data:`` URL decoded, a local file inside the
        prompt's folder read when the request is built). With ``model.api``
        ``completion`` (or another non-chat api) the whole rendered text is one user
        message.

        >>> m = PromptyPrompt(template="user:\\nWhat is this?\\n![x](https://e.x/a.png)").render()
        >>> m[0].content
        (TextPart(text='What is this?'), ImagePart(url='https://e.x/a.png'))
        """
        if self.model.api != "chat":
            return [fast_message("user", self.render_string(**inputs))]
        messages: list[Message] = []
        refs: FileRefs | None = None
        for role, content in self._pairs(inputs):
            body: str | tuple[Any, ...] = content
            if "![" in content:
                refs = refs or FileRefs(self.base_dir, self.root, self.label)
                body = content_parts(content, refs)
            if role not in ("system", "user", "assistant"):
                raise PromptError(
                    f"{self.label}: the template produces a {role!r} message; promptkit "
                    "messages are system, user or assistant. Rename the role line."
                )
            messages.append(fast_message(role, body))  # type: ignore[arg-type]
        return messages

    def render_text(self, **inputs: Any) -> str:
        """For ``completion`` prompts the rendered text itself; otherwise the messages
        flattened as :meth:`PromptBase.render_text` does."""
        if self.model.api == "completion":
            return self.render_string(**inputs)
        return super().render_text(**inputs)

    def prepare(self, **inputs: Any) -> list[dict[str, Any]] | str:
        """Exactly what the reference's ``prompty.prepare`` returns: for ``chat``, a list
        of ``{"role", "content"}`` dicts whose content is a string or, when it has
        markdown images, a list of ``text`` / ``image_url`` parts (local png/jpg files are
        inlined as data URLs); for other apis, the rendered string.

        >>> PromptyPrompt(template="user:\\nWhat is this?\\n![x](https://e.x/a.png)").prepare()
        [{'role': 'user', 'content': [{'type': 'text', 'text': 'What is this?'}, \
{'type': 'image_url', 'image_url': {'url': 'https://e.x/a.png'}}]}]
        """
        if self.model.api != "chat":
            return self.render_string(**inputs)
        refs = FileRefs(self.base_dir, self.root, self.label)
        pairs = self._pairs(inputs)
        return [
            {"role": role, "content": parse_content(content, lambda u: image_url(u, refs))}
            for role, content in pairs
        ]


def _resolve_env_refs(value: Any, where: str) -> Any:
    if isinstance(value, str):
        s = value.strip()
        if is_reference(s) and s[2:-1].split(":")[0] == "env" and ":" in s:
            return resolve_env(s, where)
        return value
    if isinstance(value, list):
        return [_resolve_env_refs(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_env_refs(v, where) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- loading


def _unknown_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str, what: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise PromptError(
                f"{where}: {what} has an unknown key {key!r}.{hint} Prompty v1 allows: "
                f"{', '.join(allowed)}."
            )


def _mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PromptError(f"{where}: {what} must be a mapping, got {type(value).__name__}.")
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _strings(value: Any, where: str, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise PromptError(f"{where}: {what} must be a list of strings.")


def _properties(value: Any, where: str, what: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, spec in _mapping(value, where, what).items():
        at = f"{what}.{name}"
        if not isinstance(spec, dict):
            raise PromptError(
                f"{where}: {at} must be a mapping such as {{type: string, description: ...}}."
            )
        _unknown_keys(spec, _PROPERTY_KEYS, where, at)
        if "type" not in spec:
            raise PromptError(
                f"{where}: {at} needs a type (string, number, boolean, array or object)."
            )
        out[str(name)] = {
            "type": _text(spec["type"]),
            "default": spec.get("default"),
            "description": _text(spec.get("description")),
        }
    return out


def _read(
    text: str,
    *,
    where: str,
    base_dir: Path | None,
    root: Path | None,
    allow_env: bool,
    chain: tuple[Path, ...],
) -> dict[str, Any]:
    """The file's fields, normalised and merged with its ``base:`` chain (unvalidated)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    front, body = split_file(text, where)
    raw = read_yaml(front, where)
    _unknown_keys(raw, _TOP_KEYS, where, "the front matter")
    refs = FileRefs(base_dir, root, where)
    data: dict[str, Any] = normalize(
        raw, refs=refs, at="", allow_env=allow_env, in_configuration=False
    )

    model = _mapping(data.get("model"), where, "model")
    _unknown_keys(model, _MODEL_KEYS, where, "model")
    template = data.get("template")
    if template is None:
        fmt, parser = "jinja2", "prompty"
    elif isinstance(template, str):
        fmt, parser = template, "prompty"
    elif isinstance(template, dict):
        _unknown_keys(template, _TEMPLATE_KEYS, where, "template")
        fmt, parser = _text(template.get("type", "mustache")), _text(template.get("parser", ""))
    else:
        raise PromptError(f"{where}: template must be 'jinja2', 'mustache' or {{type, parser}}.")

    fields: dict[str, Any] = {
        "name": _text(data.get("name")),
        "description": _text(data.get("description")),
        "version": _text(data.get("version")),
        "authors": _strings(data.get("authors"), where, "authors"),
        "tags": _strings(data.get("tags"), where, "tags"),
        "api": _text(model.get("api")),
        "configuration": _mapping(model.get("configuration"), where, "model.configuration"),
        "parameters": _mapping(model.get("parameters"), where, "model.parameters"),
        "response": _mapping(model.get("response"), where, "model.response"),
        "inputs": _properties(data.get("inputs"), where, "inputs"),
        "outputs": _properties(data.get("outputs"), where, "outputs"),
        "sample": _mapping(data.get("sample"), where, "sample"),
        "template_format": fmt,
        "parser": parser,
        "template": body,
        "base_templates": {},
    }

    if "base" in data:
        base = data["base"]
        if not isinstance(base, str) or not base:
            raise PromptError(f"{where}: base must be the path of another .prompty file.")
        base_path = refs.path(base, "base")
        if base_path in chain:
            raise PromptError(f"{where}: base {base!r} is circular.")
        if not base_path.is_file():
            raise PromptError(f"{where}: base file {base!r} not found (looked for {base_path}).")
        parent = _read(
            _read_file(base_path),
            where=str(base_path),
            base_dir=base_path.parent,
            root=refs.root,
            allow_env=allow_env,
            chain=(*chain, base_path),
        )
        for key in ("name", "description", "version", "api"):
            if not fields[key]:
                fields[key] = parent[key]
        for key in ("authors", "tags"):
            fields[key] = list(dict.fromkeys([*parent[key], *fields[key]]))
        for key in ("configuration", "parameters", "response", "sample"):
            fields[key] = {**parent[key], **fields[key]}
        fields["base_templates"] = {base_path.name: parent["template"], **parent["base_templates"]}
    return fields


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a BOM would hide the first fence
    except OSError as exc:
        raise PromptError(f"Cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise PromptError(f"{path} is not UTF-8 text.") from None


def _build(
    fields: dict[str, Any], where: str, base_dir: Path | None, root: Path | None, escape_roles: bool
) -> PromptyPrompt:
    api = fields["api"]
    if not api:
        raise PromptError(
            f"{where}: model.api is missing. Add it to the front matter "
            "(model:\\n  api: chat); Prompty needs it to pick the parser."
        )
    if api not in _APIS:
        raise PromptError(f"{where}: model.api is {api!r}; expected one of {', '.join(_APIS)}.")
    if fields["template_format"] not in _FORMATS:
        raise PromptError(
            f"{where}: unknown template format {fields['template_format']!r}; use "
            "'template: jinja2' (the default) or 'template: mustache'."
        )
    if fields["parser"] != "prompty":
        raise PromptError(
            f"{where}: template parser {fields['parser']!r} is unknown; Prompty v1 has only "
            "'prompty' (write 'template: mustache' or add 'parser: prompty')."
        )
    return PromptyPrompt(
        name=fields["name"] or None,
        description=fields["description"],
        authors=fields["authors"],
        tags=fields["tags"],
        version=fields["version"],
        model=PromptyModel(
            api=api,
            configuration=fields["configuration"],
            parameters=fields["parameters"],
            response=fields["response"],
        ),
        params=params_from_parameters(fields["parameters"], f"{where}: model.parameters"),
        inputs=fields["inputs"],
        outputs=fields["outputs"],
        sample=fields["sample"],
        template=fields["template"],
        template_format=fields["template_format"],
        base_templates=fields["base_templates"],
        escape_roles=escape_roles,
        base_dir=base_dir,
        root=root,
    )


def load(
    path: str | Path,
    *,
    root: str | Path | None = None,
    allow_env: bool = False,
    escape_roles: bool = True,
) -> PromptyPrompt:
    """Load a ``.prompty`` file.

    ``root`` is the folder that ``${file:...}``, ``base:`` and local images must stay in
    (default: the file's own folder). ``allow_env=True`` resolves ``${env:...}`` outside
    ``model.configuration`` too, as the reference does. ``escape_roles`` is copied to the
    prompt (see the module docs).
    """
    p = Path(path)
    if not p.is_file():
        raise PromptError(f"No .prompty file at {p}.")
    folder = p.resolve().parent
    root_path = Path(root).resolve() if root is not None else folder
    fields = _read(
        _read_file(p),
        where=str(p),
        base_dir=folder,
        root=root_path,
        allow_env=allow_env,
        chain=(p.resolve(),),
    )
    return _build(fields, str(p), folder, root_path, escape_roles)


def loads(
    text: str,
    *,
    base_dir: str | Path | None = None,
    root: str | Path | None = None,
    allow_env: bool = False,
    escape_roles: bool = True,
) -> PromptyPrompt:
    """Load ``.prompty`` text. Relative references (``${file:...}``, ``base:``, images)
    resolve against ``base_dir``; without it they raise.

    >>> loads("---\\nmodel: {api: chat}\\n---\\nHello").render()
    [Message(role='system', content='Hello')]
    """
    folder = Path(base_dir).resolve() if base_dir is not None else None
    root_path = Path(root).resolve() if root is not None else folder
    fields = _read(
        text, where="<prompty>", base_dir=folder, root=root_path, allow_env=allow_env, chain=()
    )
    return _build(fields, "<prompty>", folder, root_path, escape_roles)


def load_and_render(path: str) -> list[dict[str, Any]]:
    """The conformance entry point: ``prompty.prepare(prompty.load(path))`` as dicts
    (a non-chat prompt gives one user message holding the rendered text)."""
    result = load(path).prepare()
    if isinstance(result, str):
        return [{"role": "user", "content": result}]
    return result
