"""promptkit: prompting techniques as typed, immutable objects, sent through any backend.

>>> import promptkit as pk
>>> classify = pk.FewShot(
...     instruction="Classify the sentiment of the review as positive or negative.",
...     examples=[pk.Example(input="I loved it", output="positive")],
... )
>>> [m.role for m in classify.render(input="The battery died in an hour")]
['system', 'user', 'assistant', 'user']

Importing promptkit is light: backends import httpx or llama.cpp only when they are used.
"""

from ._completion import Choice, Completion, TokenLogprob, Usage
from ._config import ResolvedConfig, connect, resolve_config
from ._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    ContentFilteredError,
    ContextLengthError,
    InputValidationError,
    InvalidPromptError,
    MalformedResponseError,
    MissingVariablesError,
    ParameterError,
    PromptError,
    PromptkitError,
    RateLimitError,
    ServerError,
    TemplateSecurityError,
    TemplateSyntaxError,
    TruncatedError,
    UnexpectedVariablesError,
)
from ._messages import Message
from ._params import (
    BALANCED,
    CREATIVE,
    FACTUAL,
    LONG,
    LOW_RANDOMNESS,
    NO_REPETITION,
    PRECISE,
    PRESETS,
    SHORT,
    SamplingParams,
)
from ._prompt import (
    LAYOUT_TEMPLATES,
    ChainOfThought,
    Context,
    Conversation,
    Delimited,
    Document,
    Example,
    FewShot,
    Instruction,
    Negative,
    Perspective,
    Perspectives,
    Prompt,
    Role,
    ZeroShot,
    approx_tokens,
)
from ._render import Template
from .backends._base import LLM, Backend, Delta, Request, TextStream, UnsupportedParameterWarning
from .backends.fake import FakeBackend

__version__ = "0.1.0"

__all__ = [
    "BALANCED",
    "CREATIVE",
    "FACTUAL",
    "LAYOUT_TEMPLATES",
    "LLM",
    "LONG",
    "LOW_RANDOMNESS",
    "NO_REPETITION",
    "PRECISE",
    "PRESETS",
    "SHORT",
    "AuthenticationError",
    "Backend",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "ChainOfThought",
    "Choice",
    "Completion",
    "ConfigurationError",
    "ContentFilteredError",
    "Context",
    "ContextLengthError",
    "Conversation",
    "Delimited",
    "Delta",
    "Document",
    "Example",
    "FakeBackend",
    "FewShot",
    "InputValidationError",
    "Instruction",
    "InvalidPromptError",
    "MalformedResponseError",
    "Message",
    "MissingVariablesError",
    "Negative",
    "ParameterError",
    "Perspective",
    "Perspectives",
    "Prompt",
    "PromptError",
    "PromptkitError",
    "RateLimitError",
    "Request",
    "ResolvedConfig",
    "Role",
    "SamplingParams",
    "ServerError",
    "Template",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TextStream",
    "TokenLogprob",
    "TruncatedError",
    "UnexpectedVariablesError",
    "UnsupportedParameterWarning",
    "Usage",
    "ZeroShot",
    "__version__",
    "approx_tokens",
    "connect",
    "resolve_config",
]
