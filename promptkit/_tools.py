"""Tools the model may call: :class:`Tool`, built from a typed Python function or a pydantic
model.

A function's signature (type hints, defaults) and docstring become the JSON schema the model
sees; its arguments are validated by pydantic before the function runs, so a model that
writes ``{"amount": "ten"}`` gets a :class:`~promptkit.ToolArgumentsError`, never a call.

>>> def convert(amount: float, unit: str = "km") -> str:
...     '''Convert a length to metres.
...
...     Args:
...         amount: how many units
...         unit: the unit, "km" or "mi"
...     '''
...     return f"{amount * (1000 if unit == 'km' else 1609.344)} m"
>>> tool = Tool(convert)
>>> tool.name, tool.description
('convert', 'Convert a length to metres.')
>>> tool.parameters["properties"]["amount"]
{'description': 'how many units', 'type': 'number'}
>>> tool.call({"amount": "2"})
'2000.0 m'
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_jsonable_python

from ._errors import ConfigurationError, ParameterError, ToolArgumentsError
from ._types import ToolCall

__all__ = ["Tool", "ToolLike", "normalize_tool_choice", "result_text", "tool_specs"]

_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _doc_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary paragraph, {param: description}) from a Google-style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].strip():
        summary.append(lines[i].strip())
        i += 1
    current: str | None = None
    in_args = False
    for line in lines[i:]:
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if in_args and _SECTION.match(line):
            in_args = False
        if not in_args:
            continue
        m = _ARG_LINE.match(line)
        if m and len(line) - len(line.lstrip()) <= 8:
            current = m.group(1).lstrip("*")
            params[current] = m.group(2).strip()
        elif current and line.strip():
            params[current] = (params[current] + " " + line.strip()).strip()
    return " ".join(summary), params


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in schema.items() if k != "title"}
    props = out.get("properties")
    if isinstance(props, dict):
        out["properties"] = {
            k: {kk: vv for kk, vv in v.items() if kk != "title"} if isinstance(v, dict) else v
            for k, v in props.items()
        }
    out.setdefault("properties", {})
    return out


class Tool:
    """A tool the model may call: a name, a description, a JSON schema of its parameters
    and (to run it) a function.

    ``Tool(fn)``: from a typed function, sync or async; the schema comes from its signature
    and the description from its docstring (``Args:`` lines describe the parameters).
    ``Tool.from_model(Model, fn)``: from a pydantic model, whose validated instance is
    passed to ``fn`` (without ``fn`` the tool can be offered but not run). ``name`` and
    ``description`` override what is read from the function or model.

    >>> async def lookup(order_id: int) -> dict[str, str]:
    ...     '''Look up an order's status.'''
    ...     return {"status": "shipped"}
    >>> Tool(lookup, name="order_status").spec()["name"]
    'order_status'
    """

    name: str
    description: str
    fn: Callable[..., Any] | None
    is_async: bool
    model: type[BaseModel]
    parameters: dict[str, Any]

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"Tool() takes a function; got {type(fn).__name__}.")
        summary, arg_docs = _doc_parts(inspect.getdoc(fn))
        self.fn = fn
        self.name = str(name or getattr(fn, "__name__", ""))
        self.description = summary if description is None else description
        self.is_async = inspect.iscoroutinefunction(fn)
        self._model_arg = False
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:  # a forward reference that cannot be resolved
            raise ConfigurationError(
                f"Tool {self.name!r}: cannot read the type hints of {fn!r} ({exc}); "
                "annotate its parameters with importable types."
            ) from None
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigurationError(
                    f"Tool {self.name!r}: *{pname} / **{pname} cannot be described to a model; "
                    "give the function named, typed parameters."
                )
            if pname not in hints:
                raise ConfigurationError(
                    f"Tool {self.name!r}: parameter {pname!r} has no type hint; the model "
                    "needs one to know what to send (e.g. `{pname}: str`)."
                )
            default = ... if param.default is param.empty else param.default
            fields[pname] = (hints[pname], Field(default, description=arg_docs.get(pname)))
        self.model = create_model(
            f"{self.name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        self._check_name()
        self.parameters = _clean_schema(self.model.model_json_schema())

    @classmethod
    def from_model(
        cls,
        model: type[BaseModel],
        fn: Callable[[Any], Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """A tool whose parameters are ``model``'s fields; ``fn`` gets the validated
        instance.

        >>> from pydantic import BaseModel
        >>> class Weather(BaseModel):
        ...     '''Get the weather in a city.'''
        ...     city: str
        >>> t = Tool.from_model(Weather, lambda w: f"sunny in {w.city}")
        >>> t.name, t.parameters["required"], t.call({"city": "Oslo"})
        ('Weather', ['city'], 'sunny in Oslo')
        """
        self = cls.__new__(cls)
        summary, _ = _doc_parts(inspect.getdoc(model) if model.__doc__ else None)
        self.fn = fn
        self.name = name or model.__name__
        self.description = summary if description is None else description
        self.is_async = fn is not None and inspect.iscoroutinefunction(fn)
        self._model_arg = True
        self.model = model
        self._check_name()
        self.parameters = _clean_schema(model.model_json_schema())
        return self

    def _check_name(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigurationError(
                f"Tool name {self.name!r}: use 1-64 letters, digits, '_' or '-' (what the "
                "APIs accept); pass name=... to choose one."
            )

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"

    def spec(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}``: what a request carries."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def validate(self, arguments: Mapping[str, Any] | str, *, call_id: str | None = None) -> Any:
        """The arguments validated: a kwargs dict for a function tool, the model instance
        for a model tool. Raises :class:`~promptkit.ToolArgumentsError`."""
        if isinstance(arguments, str):
            call = ToolCall(id=call_id or "", name=self.name, raw_arguments=arguments)
            arguments = call.arguments
        try:
            value = self.model.model_validate(dict(arguments))
        except ValidationError as exc:
            errors = [
                {k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()
            ]
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolArgumentsError(
                f"The arguments of the call to tool {self.name!r} do not validate: {problems}.",
                tool=self.name,
                raw=json.dumps(to_jsonable_python(arguments, fallback=str)),
                call_id=call_id,
                errors=errors,
            ) from None
        if self._model_arg:
            return value
        return {k: getattr(value, k) for k in type(value).model_fields}

    def _fn(self) -> Callable[..., Any]:
        if self.fn is None:
            raise ConfigurationError(
                f"Tool {self.name!r} has no function to run: build it with "
                "Tool.from_model(Model, fn)."
            )
        return self.fn

    def _invoke(self, fn: Callable[..., Any], valid: Any) -> Any:
        return fn(valid) if self._model_arg else fn(**valid)

    def call(self, arguments: Mapping[str, Any] | str, *, call_id: str | None = None) -> Any:
        """Validate ``arguments`` and run the function (an async one with ``asyncio.run``;
        in a running event loop use :meth:`acall`)."""
        fn = self._fn()
        valid = self.validate(arguments, call_id=call_id)
        if self.is_async:
            from ._sync import run_sync

            return run_sync(
                lambda: self._invoke(fn, valid),
                what=f"the async tool {self.name!r}",
                instead="await tool.acall(...)",
            )
        return self._invoke(fn, valid)

    async def acall(self, arguments: Mapping[str, Any] | str, *, call_id: str | None = None) -> Any:
        """Async twin of :meth:`call`: a sync function runs in a worker thread."""
        fn = self._fn()
        valid = self.validate(arguments, call_id=call_id)
        if self.is_async:
            return await self._invoke(fn, valid)
        import asyncio  # imported by the caller's event loop already

        return await asyncio.to_thread(self._invoke, fn, valid)


ToolLike = Tool | Callable[..., Any]


def as_tools(tools: Sequence[ToolLike] | None) -> list[Tool]:
    """Tools from tools or plain functions; names must be unique."""
    out = [t if isinstance(t, Tool) else Tool(t) for t in tools or ()]
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigurationError(
            f"Two tools are named {dupes[0]!r}: give each tool a distinct name=..."
        )
    return out


def tool_specs(tools: Sequence[ToolLike | Mapping[str, Any]] | None) -> tuple[dict[str, Any], ...]:
    """The request form of ``tools`` (Tool objects, functions or ready spec dicts)."""
    specs: list[dict[str, Any]] = []
    for t in tools or ():
        if isinstance(t, Mapping):
            if "name" not in t or "parameters" not in t:
                raise ParameterError(
                    "A tool given as a dict needs 'name' and 'parameters' (a JSON schema)."
                )
            specs.append({"description": "", **dict(t)})
        else:
            specs.append((t if isinstance(t, Tool) else Tool(t)).spec())
    return tuple(specs)


def normalize_tool_choice(choice: str | None, specs: Sequence[Mapping[str, Any]]) -> str | None:
    """Check ``tool_choice`` against the tools offered."""
    if choice is None:
        return None
    if not specs:
        raise ParameterError(f"tool_choice={choice!r} without tools: pass tools=[...] too.")
    if choice in ("auto", "required", "none"):
        return choice
    names = [s["name"] for s in specs]
    if choice not in names:
        raise ParameterError(
            f"tool_choice={choice!r}: expected 'auto', 'required', 'none' or one of the "
            f"tools' names {names}."
        )
    return choice


def result_text(value: Any) -> str:
    """A tool's return value as the text of its tool message (str as is, else JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(to_jsonable_python(value, fallback=str), ensure_ascii=False)
