"""Every error promptkit raises, in one place.

The hierarchy::

    PromptkitError                      base of everything below; catch this to catch all
    ├── PromptError                     a prompt cannot be built or rendered
    │   ├── TemplateSyntaxError         a template does not parse
    │   ├── TemplateSecurityError       a template tried to reach Python internals (sandbox)
    │   ├── MissingVariablesError       render() lacks variables the templates need
    │   ├── UnexpectedVariablesError    render() got variables no template uses (typos)
    │   ├── InputValidationError        variables failed the prompt's pydantic inputs model
    │   └── InvalidPromptError          a prompt, example, document or message is built wrongly
    ├── ConfigurationError              connect() cannot build a backend from what it was given
    ├── ParameterError                  a sampling parameter is out of range or unsupported
    └── BackendError                    a model call failed
        ├── AuthenticationError         401/403: the key is missing or wrong
        ├── BadRequestError             other 4xx: the server rejected the request
        │   └── ContextLengthError      the prompt does not fit the model's context window
        ├── RateLimitError              429 after every retry
        ├── ServerError                 5xx after every retry
        ├── BackendTimeoutError         no answer in time, after every retry
        ├── BackendConnectionError      could not connect / connection dropped
        ├── MalformedResponseError      the reply is not what the API promises
        ├── ContentFilteredError        the server withheld the output (content filter)
        └── TruncatedError              the reply hit max_tokens and the caller asked for an error

Every message says what went wrong and what to do about it. No message, repr or
attribute of these errors contains an API key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
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
    "PromptError",
    "PromptkitError",
    "RateLimitError",
    "ServerError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TruncatedError",
    "InvalidPromptError",
    "UnexpectedVariablesError",
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


class RateLimitError(BackendError):
    """429 Too Many Requests, still so after every retry."""


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
