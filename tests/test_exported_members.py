"""promptkit's public names, pinned (as httpx's tests/test_exported_members.py does).

Adding or removing a public name is a decision: update EXPORTED in the same change.
"""

from __future__ import annotations

import inspect
import types

import promptkit

EXPORTED = [
    "APPROX",
    "Audio",
    "AudioPart",
    "AuthenticationError",
    "AzureOpenAIBackend",
    "BALANCED",
    "Backend",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "BatchItem",
    "BatchResult",
    "BatchSummary",
    "Budget",
    "BudgetError",
    "COMMON_SPECIAL_TOKENS",
    "CREATIVE",
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
    "Dataset",
    "DatasetError",
    "Delimited",
    "Delta",
    "Document",
    "Embeddings",
    "EvalReport",
    "EvaluationError",
    "Example",
    "ExampleSelector",
    "ExtractionError",
    "FACTUAL",
    "FakeBackend",
    "FeatureRefusedError",
    "FewShot",
    "File",
    "FilePart",
    "Image",
    "ImagePart",
    "InputValidationError",
    "Instruction",
    "InvalidPromptError",
    "ItemResult",
    "LAYOUT_TEMPLATES",
    "LLM",
    "LONG",
    "LOW_RANDOMNESS",
    "LengthBudgetExamples",
    "LlamaCppTokenCounter",
    "MMRExamples",
    "MalformedResponseError",
    "MediaError",
    "Message",
    "Metric",
    "MissingVariablesError",
    "NO_REPETITION",
    "Negative",
    "OpenAISDKBackend",
    "OptimizeError",
    "OptimizeReport",
    "OverlapError",
    "PRECISE",
    "PRESETS",
    "ParameterError",
    "Perspective",
    "Perspectives",
    "PerspectivesResult",
    "PerspectivesRun",
    "Price",
    "Prompt",
    "PromptError",
    "PromptkitError",
    "RateLimitError",
    "RayPrompt",
    "Record",
    "Refine",
    "RefineResult",
    "RefineRound",
    "Request",
    "ResolvedConfig",
    "Retriever",
    "Role",
    "SHORT",
    "Sample",
    "SamplingParams",
    "SelfConsistency",
    "ServerError",
    "ServerTokenCounter",
    "SimilarExamples",
    "Split",
    "SqliteVecRetriever",
    "Step",
    "StepResult",
    "StructuredOutputError",
    "StructuredResult",
    "Template",
    "TemplateSecurityError",
    "TemplateSyntaxError",
    "TextPart",
    "TextStream",
    "TiktokenCounter",
    "TokenCounter",
    "TokenLogprob",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolError",
    "ToolLoop",
    "ToolLoopResult",
    "ToolRun",
    "ToolStep",
    "TruncatedError",
    "UnexpectedVariablesError",
    "UnsupportedParameterWarning",
    "UnsupportedPartError",
    "Usage",
    "Variant",
    "VariantResult",
    "VectorIndex",
    "Vote",
    "ZeroShot",
    "__version__",
    "aevaluate",
    "aoptimize",
    "approx_tokens",
    "arun_batch",
    "arun_perspectives",
    "astructured",
    "astructured_result",
    "config_profiles",
    "connect",
    "evaluate",
    "export_openai_batch",
    "extract",
    "import_openai_batch_results",
    "load_dataset",
    "load_prompt",
    "metrics",
    "neutralise",
    "normalize",
    "optimize",
    "resolve_config",
    "run_batch",
    "run_perspectives",
    "save_prompt",
    "split",
    "structured",
    "structured_result",
    "wilson_interval",
]


def test_all_is_the_pinned_list() -> None:
    assert sorted(EXPORTED) == EXPORTED, "keep EXPORTED sorted"
    assert len(set(promptkit.__all__)) == len(promptkit.__all__), "a name exported twice"
    assert sorted(promptkit.__all__) == EXPORTED


def test_every_exported_name_resolves() -> None:
    for name in promptkit.__all__:
        assert getattr(promptkit, name) is not None, name
    assert dir(promptkit) == sorted(promptkit.__all__)


def test_nothing_private_is_exported() -> None:
    private = [n for n in promptkit.__all__ if n.startswith("_") and n != "__version__"]
    assert private == []
    # what an exported name refers to is defined under promptkit, never a private helper
    for name in promptkit.__all__:
        value = getattr(promptkit, name)
        if isinstance(value, types.ModuleType):
            assert value.__name__.startswith("promptkit."), name
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("promptkit"), name
            assert not value.__name__.startswith("_"), name


def test_every_public_attribute_is_exported() -> None:
    """A public class or function on the package is in __all__ (submodules and typing
    helpers aside), and every lazily imported name is exported or a subpackage."""
    for name, value in vars(promptkit).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if name in ("TYPE_CHECKING", "Any"):
            continue
        assert name in promptkit.__all__, name
    for name, module in promptkit._LAZY.items():
        assert name in promptkit.__all__ or module == f".{name}", name


def test_every_error_is_defined_in_the_one_tree() -> None:
    """Every PromptkitError subclass of the package is defined in promptkit._errors, and
    the tree in its docstring names each of them."""
    import importlib

    import promptkit._errors as errors

    for module in ("evaluation", "optimization", "strategies", "batch", "retrieval", "prompty"):
        importlib.import_module(f"promptkit.{module}")
    seen: list[type] = []
    todo: list[type] = [promptkit.PromptkitError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("promptkit") and cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    assert len(seen) > 25
    for cls in seen:
        assert cls.__module__ == "promptkit._errors", cls
        assert f" {cls.__name__} " in (errors.__doc__ or ""), cls
        assert cls.__name__ in errors.__all__, cls
