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

from typing import TYPE_CHECKING, Any

from ._completion import Choice, Completion, TokenLogprob, Usage
from ._config import ResolvedConfig, connect, resolve_config
from ._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ChainStepError,
    ChainWiringError,
    ConfigurationError,
    ContentFilteredError,
    ContextLengthError,
    ExtractionError,
    InputValidationError,
    InvalidPromptError,
    MalformedResponseError,
    MissingVariablesError,
    ParameterError,
    PromptError,
    PromptkitError,
    RateLimitError,
    ServerError,
    StructuredOutputError,
    TemplateSecurityError,
    TemplateSyntaxError,
    TruncatedError,
    UnexpectedVariablesError,
)
from ._files import load_prompt, save_prompt
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

if TYPE_CHECKING:
    from ._cache import Cache, CacheStats, CacheWarning
    from .batchfiles import export_openai_batch, import_openai_batch_results
    from .runner import BatchItem, BatchResult, BatchSummary, arun_batch, run_batch
    from .strategies import (
        Chain,
        ChainResult,
        PerspectivesResult,
        PerspectivesRun,
        Refine,
        RefineResult,
        RefineRound,
        Sample,
        SelfConsistency,
        Step,
        StepResult,
        StructuredResult,
        Vote,
        arun_perspectives,
        astructured,
        astructured_result,
        extract,
        normalize,
        run_perspectives,
        structured,
        structured_result,
    )

#: Names imported on first use, so that `import promptkit` stays light.
_LAZY: dict[str, str] = {
    "Cache": "._cache",
    "CacheStats": "._cache",
    "CacheWarning": "._cache",
    "export_openai_batch": ".batchfiles",
    "import_openai_batch_results": ".batchfiles",
    "BatchItem": ".runner",
    "BatchResult": ".runner",
    "BatchSummary": ".runner",
    "arun_batch": ".runner",
    "run_batch": ".runner",
    "Chain": ".strategies",
    "ChainResult": ".strategies",
    "PerspectivesResult": ".strategies",
    "PerspectivesRun": ".strategies",
    "Refine": ".strategies",
    "RefineResult": ".strategies",
    "RefineRound": ".strategies",
    "Sample": ".strategies",
    "SelfConsistency": ".strategies",
    "Step": ".strategies",
    "StepResult": ".strategies",
    "StructuredResult": ".strategies",
    "Vote": ".strategies",
    "arun_perspectives": ".strategies",
    "astructured": ".strategies",
    "astructured_result": ".strategies",
    "extract": ".strategies",
    "normalize": ".strategies",
    "run_perspectives": ".strategies",
    "structured": ".strategies",
    "structured_result": ".strategies",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

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
    "BatchItem",
    "BatchResult",
    "BatchSummary",
    "Cache",
    "CacheStats",
    "CacheWarning",
    "Chain",
    "ChainOfThought",
    "ChainResult",
    "ChainStepError",
    "ChainWiringError",
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
    "ExtractionError",
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
    "PerspectivesResult",
    "PerspectivesRun",
    "Prompt",
    "PromptError",
    "PromptkitError",
    "RateLimitError",
    "Refine",
    "RefineResult",
    "RefineRound",
    "Request",
    "ResolvedConfig",
    "Role",
    "Sample",
    "SamplingParams",
    "SelfConsistency",
    "ServerError",
    "Step",
    "StepResult",
    "StructuredOutputError",
    "StructuredResult",
    "Template",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TextStream",
    "TokenLogprob",
    "TruncatedError",
    "UnexpectedVariablesError",
    "UnsupportedParameterWarning",
    "Usage",
    "Vote",
    "ZeroShot",
    "__version__",
    "approx_tokens",
    "arun_batch",
    "arun_perspectives",
    "astructured",
    "astructured_result",
    "connect",
    "export_openai_batch",
    "extract",
    "import_openai_batch_results",
    "load_prompt",
    "normalize",
    "resolve_config",
    "run_batch",
    "run_perspectives",
    "save_prompt",
    "structured",
    "structured_result",
]
