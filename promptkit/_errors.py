"""Every error promptkit raises, in one place.

The hierarchy::

    PromptkitError                      base of everything below; catch this to catch all
    ├── PromptError                     a prompt cannot be built or rendered
    │   ├── TemplateSyntaxError         a template does not parse
    │   ├── TemplateSecurityError       a template tried to reach Python internals (sandbox)
    │   ├── MissingVariablesError       render() lacks variables the templates need
    │   ├── UnexpectedVariablesError    render() got variables no template uses (typos)
    │   ├── InputValidationError        variables failed the prompt's pydantic inputs model
    │   ├── InvalidPromptError          a prompt, example, document or message is built wrongly
    │   ├── MediaError                  an image/audio/file is unreadable, too big or mistyped
    │   └── ChainWiringError            a chain's steps do not fit together (found when built)
    ├── ConfigurationError              connect() cannot build a backend from what it was given
    │   ├── PriceError                  a price table entry is malformed
    │   └── UnsupportedPartError        a backend cannot take a content part type (before sending)
    ├── ParameterError                  a sampling parameter is out of range or unsupported
    ├── ExtractionError                 no answer could be extracted from a reply
    ├── ToolArgumentsError              a tool call's arguments are not valid JSON / do not
    │                                   validate against the tool's parameters (keeps the text)
    ├── ToolError                       a tool raised in a ToolLoop (on_tool_error="raise")
    ├── StructuredOutputError           the reply never validated against the output model
    ├── ChainStepError                  a step of a chain failed; keeps the steps before it
    ├── EvaluationError                 an evaluation cannot run as asked (variant, metric, option)
    │   ├── DatasetError                a dataset file or row is unusable (names path, line, field)
    │   ├── OverlapError                a variant's few-shot examples are among the scored items
    │   └── OptimizeError               an optimisation cannot run as asked
    │       └── BudgetError             the budget cannot pay for measuring the starting prompt
    └── BackendError                    a model call failed
        ├── AuthenticationError         401/403: the key is missing or wrong
        ├── BadRequestError             other 4xx: the server rejected the request
        │   ├── ContextLengthError      the prompt does not fit the model's context window
        │   └── FeatureRefusedError     the server refused a feature by name (never retried)
        ├── RateLimitError              429 after every retry
        ├── ServerError                 5xx after every retry
        ├── BackendTimeoutError         no answer in time, after every retry
        ├── BackendConnectionError      could not connect / connection dropped
        ├── MalformedResponseError      the reply is not what the API promises
        ├── ContentFilteredError        the server withheld the output (content filter)
        └── TruncatedError              the reply hit max_tokens and the caller asked for an error

The evaluation and optimisation errors are also importable from
:mod:`promptkit.evaluation` and :mod:`promptkit.optimization`, the strategy errors from
:mod:`promptkit.strategies`; all of them are defined here. Warnings
(``UnsupportedParameterWarning``, ``CacheWarning``) are not errors and live with the code
that issues them.

Every message says what went wrong and what to do about it. No message, repr or
attribute of these errors contains an API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._types import Completion, Usage
    from .strategies.chain import ChainResult

__all__ = [
    "ChainStepError",
    "ChainWiringError",
    "ExtractionError",
    "ToolArgumentsError",
    "ToolError",
    "FeatureRefusedError",
    "StructuredOutputError",
    "AuthenticationError",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "ConfigurationError",
    "ContentFilteredError",
    "ContextLengthError",
    "InputValidationError",
    "MalformedResponseError",
    "MissingVariablesError",
    "ParameterError",
    "PriceError",
    "PromptError",
    "PromptkitError",
    "RateLimitError",
    "ServerError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TruncatedError",
    "InvalidPromptError",
    "MediaError",
    "UnsupportedPartError",
    "UnexpectedVariablesError",
    "BudgetError",
    "DatasetError",
    "EvaluationError",
    "OptimizeError",
    "OverlapError",
]


class PromptkitError(Exception):
    """Base class of every error promptkit raises.

    >>> try:
    ...     raise MissingVariablesError(["topic"], prompt="ZeroShot")
    ... except PromptkitError as exc:
    ...     print(type(exc).__name__)
    MissingVariablesError
    """


# --------------------------------------------------------------------------- prompts


class PromptError(PromptkitError):
    """A prompt cannot be built or rendered."""


class TemplateSyntaxError(PromptError):
    """A template does not parse; the message gives the line and jinja2's reason."""


class TemplateSecurityError(PromptError):
    """A template tried something the sandbox forbids (attribute access to internals, ...)."""


class MissingVariablesError(PromptError):
    """Variables that the prompt's templates need were not given to ``render()``."""

    def __init__(
        self, missing: list[str], *, prompt: str, unexpected: dict[str, str | None] | None = None
    ) -> None:
        self.missing = sorted(missing)
        self.prompt = prompt
        self.unexpected = sorted(unexpected or {})
        names = ", ".join(repr(m) for m in self.missing)
        hint = ""
        if unexpected:
            got = ", ".join(
                f"{k!r}" + (f" (did you mean {v!r}?)" if v else "")
                for k, v in sorted(unexpected.items())
            )
            hint = f" It also got unexpected variable(s) {got}."
        super().__init__(
            f"{prompt} is missing variable(s) {names}: pass them to render()/run(), "
            f"e.g. render({self.missing[0]}=...).{hint}"
        )


class UnexpectedVariablesError(PromptError):
    """``render()`` got variables that no template of the prompt uses (usually a typo)."""

    def __init__(
        self, unexpected: dict[str, str | None], *, prompt: str, expected: list[str]
    ) -> None:
        self.unexpected = sorted(unexpected)
        self.prompt = prompt
        self.expected = sorted(expected)
        parts = []
        for name in self.unexpected:
            close = unexpected[name]
            parts.append(f"{name!r} (did you mean {close!r}?)" if close else repr(name))
        exp = ", ".join(repr(e) for e in self.expected) or "none"
        super().__init__(
            f"{prompt} got unexpected variable(s) {', '.join(parts)}; it uses: {exp}. "
            "Fix the name, or build the prompt with extra_vars='ignore' to allow extras."
        )


class InputValidationError(PromptError):
    """The variables failed validation against the prompt's ``inputs`` pydantic model."""

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        self.errors = errors or []
        super().__init__(message)


class InvalidPromptError(PromptError, ValueError):
    """A prompt, example, document or message was built with invalid fields.

    ``errors`` holds pydantic's error list; the message names each field and the problem.
    """

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        self.errors = errors or []
        super().__init__(message)


# --------------------------------------------------------------------------- configuration


class ConfigurationError(PromptkitError):
    """``connect()`` or a backend was configured in a way that cannot work."""


class PriceError(ConfigurationError, ValueError):
    """A price table entry is malformed (it names the entry and the accepted forms)."""


class MediaError(PromptError, ValueError):
    """An image, audio clip or file cannot be used: unreadable, over its size limit, or its
    bytes are not the media type declared (the message names the file and the fix)."""


class UnsupportedPartError(ConfigurationError, ValueError):
    """A backend (or endpoint) cannot take a content part type (an image, audio, a file);
    raised before anything is sent. ``part_type`` and ``backend`` say which."""

    def __init__(self, message: str, *, part_type: str = "", backend: str = "") -> None:
        super().__init__(message)
        self.part_type = part_type
        self.backend = backend


class ParameterError(PromptkitError, ValueError):
    """A sampling parameter is out of range, or the backend cannot honour it."""


# --------------------------------------------------------------------------- backends


class BackendError(PromptkitError):
    """A model call failed. ``status`` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        backend: str | None = None,
        attempts: int | None = None,
        body: str | None = None,
    ) -> None:
        self.status = status
        self.backend = backend
        self.attempts = attempts
        self.body = body
        super().__init__(message)


class AuthenticationError(BackendError):
    """401/403: the API key is missing, wrong, or lacks access to the model."""


class BadRequestError(BackendError):
    """The server rejected the request (4xx other than auth and rate limit)."""


class ContextLengthError(BadRequestError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class FeatureRefusedError(BadRequestError):
    """The server refused a feature of the request by name, whatever its status (a 4xx,
    or a 5xx whose message names the field): ``features`` lists them, as promptkit names
    (``"n"``, ``"seed"``, ``"logprobs"``, ...), ``"json_schema"`` for the JSON-schema form
    of the response format, ``"response_format"`` for the response format as a whole, or
    ``"tools"`` for tool calling (a server started without it, or a model without it), or
    ``"tool_choice"`` for the request's tool choice (vLLM without auto tool choice refuses
    ``"auto"`` but takes ``"required"`` or a tool's name).

    Never retried. :class:`~promptkit.LLM` calls catch it, fall back (``n`` emulated by one
    request per choice, ``json_schema`` sent as ``json_object`` with the schema, the others
    dropped per ``on_unsupported``) and remember the refusal for the backend's later calls;
    it reaches the caller when ``on_unsupported="error"`` or nothing is left to fall back to
    (tool calling has no fallback: the refusal is raised, and later requests with tools, or
    with the refused tool choice, on that backend raise it again without being sent).

    >>> FeatureRefusedError("no seeds here", status=400, features=("seed",)).features
    ('seed',)
    """

    features: tuple[str, ...] = ()
    #: What the server said, in brief (its validation messages where it sent some).
    reason: str = ""

    def __init__(
        self, message: str, *, features: tuple[str, ...] = (), reason: str = "", **kw: Any
    ) -> None:
        self.features = tuple(features)
        self.reason = reason
        super().__init__(message, **kw)


class RateLimitError(BackendError):
    """429 Too Many Requests, still so after every retry.

    ``retry_after`` is how many seconds the last 429 reply asked to wait (its
    ``Retry-After`` or ``retry-after-ms`` header), or None when it did not say. The batch
    runner pauses for it before sending the input again.

    >>> RateLimitError("slow down", status=429, retry_after=2.0).retry_after
    2.0
    """

    retry_after: float | None = None

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(BackendError):
    """5xx from the server, still so after every retry."""


class BackendTimeoutError(BackendError):
    """The server did not answer in time, after every retry."""


class BackendConnectionError(BackendError):
    """The connection could not be made or was dropped, after every retry."""


class MalformedResponseError(BackendError):
    """The reply is not what the API promises: bad JSON, wrong content type, no choices,
    or a stream cut before its end."""


class ContentFilteredError(BackendError):
    """The server withheld the output (``finish_reason == "content_filter"``)."""


class TruncatedError(BackendError):
    """The reply stopped at ``max_tokens`` and the call asked for truncation to be an error.

    ``completion`` holds the partial reply.
    """

    def __init__(self, message: str, *, completion: Any = None, **kw: Any) -> None:
        self.completion = completion
        super().__init__(message, **kw)


# --------------------------------------------------------------------------- strategies


class ChainWiringError(PromptError, ValueError):
    """A chain's steps do not fit together: a step needs a variable that neither the chain's
    inputs nor an earlier step provide, two steps write the same name, ...

    Raised when the :class:`~promptkit.Chain` is built, before any model call. ``problems``
    lists every problem found, one sentence each.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"The chain is wired wrongly: {self.problems[0]}"
        else:
            message = "The chain is wired wrongly:\n" + "\n".join(f"- {p}" for p in self.problems)
        super().__init__(message)


class ExtractionError(PromptkitError, ValueError):
    """No answer could be extracted from a reply (an extractor found nothing, or a chain
    step's ``extract`` returned ``None``). ``text`` is the reply."""

    def __init__(self, message: str, *, text: str | None = None) -> None:
        self.text = text
        super().__init__(message)


class ToolArgumentsError(PromptkitError, ValueError):
    """A tool call's arguments cannot be used: the text is not a JSON object, or it does
    not validate against the tool's parameters.

    - ``tool``: the tool's name; ``call_id``: the call's id (``None`` if the reply had none);
    - ``raw``: the arguments exactly as the model wrote them;
    - ``errors``: pydantic's error dicts when validation failed (empty for bad JSON).

    >>> from promptkit import ToolCall
    >>> try:
    ...     ToolCall(id="c1", name="add", raw_arguments="{oops").arguments
    ... except ToolArgumentsError as exc:
    ...     print(exc.raw)
    {oops
    """

    def __init__(
        self,
        message: str,
        *,
        tool: str,
        raw: str,
        call_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.tool = tool
        self.raw = raw
        self.call_id = call_id
        self.errors = list(errors or [])
        super().__init__(message)


class ToolError(PromptkitError):
    """A tool raised while a :class:`~promptkit.ToolLoop` ran it and the loop's
    ``on_tool_error`` is ``"raise"``. The tool's exception is ``__cause__``; ``tool`` and
    ``call_id`` name the call; ``steps`` holds the loop's steps so far."""

    def __init__(
        self, message: str, *, tool: str, call_id: str, steps: tuple[Any, ...] = ()
    ) -> None:
        self.tool = tool
        self.call_id = call_id
        self.steps = steps
        super().__init__(message)


class StructuredOutputError(PromptkitError):
    """The model's reply never validated against the output model, after every attempt.

    - ``output``: the last reply, as text (the invalid output);
    - ``errors``: its validation errors (pydantic's error dicts; a reply with no JSON in it
      has one error of type ``"json_invalid"``);
    - ``attempts``: how many replies were tried; ``usage``: tokens summed over all of them;
    - ``model``: the name of the output model; ``completions``: every attempt's Completion.
    """

    def __init__(
        self,
        message: str,
        *,
        output: str,
        errors: list[dict[str, Any]],
        attempts: int,
        model: str,
        usage: Usage | None = None,
        completions: tuple[Completion, ...] = (),
    ) -> None:
        self.output = output
        self.errors = errors
        self.attempts = attempts
        self.model = model
        if usage is None:
            from ._types import Usage

            usage = Usage()
        self.usage = usage
        self.completions = completions
        super().__init__(message)


class ChainStepError(PromptkitError):
    """A step of a chain failed. The original error is ``error`` (and ``__cause__``).

    ``step`` is the failing step's name and ``index`` its position (0-based); ``result``
    is the :class:`~promptkit.ChainResult` of the steps that completed before it, with
    their outputs and usage.
    """

    def __init__(self, message: str, *, step: str, index: int, result: ChainResult,
                 error: BaseException) -> None:  # fmt: skip
        self.step = step
        self.index = index
        self.result = result
        self.error = error
        super().__init__(message)


# --------------------------------------------------------------------------- evaluation


class EvaluationError(PromptkitError):
    """An evaluation cannot run as asked (a variant, a metric or an option is wrong)."""


class DatasetError(EvaluationError, ValueError):
    """A dataset file or row is unusable. ``path``, ``line`` (1-based) and ``field`` say
    where, when known; the message names them too.

    >>> str(DatasetError("field 'answer' is missing", path="data.jsonl", line=3, field="answer"))
    "data.jsonl line 3: field 'answer' is missing"
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = " ".join(p for p in (path, f"line {line}" if line is not None else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class OverlapError(EvaluationError):
    """A variant's few-shot examples are among the scored items: its accuracy would be
    inflated by answers it was shown. ``variant`` names it; ``overlaps`` lists
    ``(example index, item id)`` pairs."""

    def __init__(self, message: str, *, variant: str, overlaps: list[tuple[int, str]]) -> None:
        self.variant = variant
        self.overlaps = overlaps
        super().__init__(message)


# --------------------------------------------------------------------------- optimize


class OptimizeError(EvaluationError):
    """An optimisation cannot run as asked (a prompt, a dataset or an option is wrong)."""


class BudgetError(OptimizeError):
    """The budget cannot pay even for measuring the starting prompt on the validation and
    test items. ``needed`` and ``budget`` say what the estimate was and what was allowed."""

    def __init__(self, message: str, *, needed: str, budget: str) -> None:
        self.needed = needed
        self.budget = budget
        super().__init__(message)
