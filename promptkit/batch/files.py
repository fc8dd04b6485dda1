"""Batch files for large offline jobs: OpenAI Batch API JSONL, also read by vLLM.

:func:`export_openai_batch` renders a prompt over many inputs into a JSONL file of
requests, one line each::

    {"custom_id": "req-0", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [...], "temperature": 0.0}}

and :func:`import_openai_batch_results` reads the results file(s) back into a
:class:`~promptkit.BatchResult` aligned with the inputs (``custom_id`` ``req-17``
is input 17). Failed requests become typed failures on their input, and an input with no
result line at all is a failure too: nothing is silently dropped.

>>> import os, tempfile, promptkit as pk
>>> tmp = tempfile.mkdtemp()
>>> p = pk.ZeroShot(instruction="Classify the sentiment.")
>>> inputs = [{"input": "I loved it"}, {"input": "It broke"}]
>>> export_openai_batch(p, inputs, os.path.join(tmp, "batch.jsonl"), model="gpt-4o-mini",
...                     params=pk.PRECISE)
2

PATH 1: OPENAI'S BATCH API (half the price, results within 24 hours, up to 50,000
requests and 200 MB per file, one model per file)::

    from openai import OpenAI
    client = OpenAI()
    upload = client.files.create(file=open("batch.jsonl", "rb"), purpose="batch")
    job = client.batches.create(input_file_id=upload.id,
                                endpoint="/v1/chat/completions", completion_window="24h")
    # ... later: poll until job.status == "completed" (or "failed", "expired", "cancelled")
    job = client.batches.retrieve(job.id)
    client.files.content(job.output_file_id).write_to_file("results.jsonl")
    if job.error_file_id:                      # requests that failed, if any
        client.files.content(job.error_file_id).write_to_file("errors.jsonl")

    result = import_openai_batch_results(["results.jsonl", "errors.jsonl"], inputs)

The export's ``target="openai"`` (the default) sends ``max_tokens`` as
``max_completion_tokens`` and only the parameters the OpenAI API accepts.

PATH 2: vLLM ON YOUR OWN GPUs. vLLM's batch runner reads the same file format and writes
the same results format (for chat: it does not serve the ``/v1/completions`` URL, so
``target="vllm"`` with ``endpoint="/v1/completions"`` is refused at export)::

    vllm run-batch -i batch.jsonl -o results.jsonl --model Qwen/Qwen2.5-1.5B-Instruct

    result = import_openai_batch_results("results.jsonl", inputs)

Export with ``target="vllm"`` and ``model=`` the name vLLM serves: it also keeps vLLM's
sampling extras (``top_k``, ``min_p``, ``repetition_penalty``), sends ``max_tokens`` as
``max_completion_tokens`` and checks the values vLLM refuses (see
:class:`~promptkit.VLLMBackend`). ``-i``/``-o`` also take http(s) URLs. A job too large
for one machine is split into several files (``inputs[i::k]`` per GPU node, each exported
with its own ``id_prefix``), run one ``vllm run-batch`` per node, and the results imported
per file.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._errors import (
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    ContentFilteredError,
    ContextLengthError,
    InputValidationError,
    MalformedResponseError,
    ParameterError,
    PromptError,
    PromptkitError,
    RateLimitError,
    ServerError,
)
from .._params import SamplingParams, UnsupportedPolicy, check_policy, merge_params
from .._types import Completion
from ._results import BatchItem, BatchResult, summarize

if TYPE_CHECKING:
    from ..prompts import PromptBase

__all__ = ["export_openai_batch", "import_openai_batch_results"]

Endpoint = Literal["/v1/chat/completions", "/v1/completions"]
Target = Literal["openai", "vllm"]

#: OpenAI's limit on requests per batch file.
OPENAI_MAX_REQUESTS = 50_000

_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")


def _check_dir(path: Path, what: str) -> None:
    if path.is_dir():
        raise ConfigurationError(f"{what}={str(path)!r} is a directory: give a file path.")
    if not path.parent.is_dir():
        raise ConfigurationError(
            f"{what}={str(path)!r}: the directory {str(path.parent)!r} does not exist. "
            "Create it first."
        )


def _check_prefix(id_prefix: str) -> None:
    if not isinstance(id_prefix, str) or not id_prefix or any(c.isspace() for c in id_prefix):
        raise ConfigurationError(
            f"id_prefix={id_prefix!r}: expected a non-empty string without spaces."
        )


def export_openai_batch(
    prompt: PromptBase,
    inputs: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    model: str,
    params: SamplingParams | None = None,
    endpoint: Endpoint = "/v1/chat/completions",
    id_prefix: str = "req",
    target: Target = "openai",
    response_format: dict[str, Any] | None = None,
    on_unsupported: UnsupportedPolicy = "warn",
) -> int:
    """Write one OpenAI Batch API request line per input to ``path``; the number written.

    ``prompt`` is rendered with each input (a dict of variables); ``params`` apply over
    the prompt's own. ``custom_id`` is ``f"{id_prefix}-{index}"``. ``endpoint`` is the
    chat endpoint (messages) or ``"/v1/completions"`` (the prompt flattened with
    ``render_text()``; not accepted by vLLM's batch runner). ``target`` picks the
    parameter set and wire names: ``"openai"`` or ``"vllm"`` (see the module docs). A
    parameter the target cannot take is dropped per ``on_unsupported`` (``"warn"``,
    ``"drop"`` or ``"error"``). ``response_format`` is
    ``{"name": ..., "schema": {...}, "strict": True}`` for JSON-schema output.

    The file is written to a temporary name and renamed when complete. An input that
    cannot be rendered raises :class:`~promptkit.InputValidationError` naming it.
    """
    if endpoint not in _ENDPOINTS:
        raise ConfigurationError(
            f"endpoint={endpoint!r}: expected one of {', '.join(repr(e) for e in _ENDPOINTS)}."
        )
    if target not in ("openai", "vllm"):
        raise ConfigurationError(f"target={target!r}: expected 'openai' or 'vllm'.")
    if target == "vllm" and endpoint == "/v1/completions":
        raise ConfigurationError(
            "target='vllm' with endpoint='/v1/completions': vLLM's batch runner (vllm "
            "run-batch) serves chat, embeddings, score, rerank and audio URLs, not "
            "/v1/completions, and would refuse the whole file. Export with "
            "endpoint='/v1/chat/completions'."
        )
    if not isinstance(model, str) or not model:
        raise ConfigurationError("model=...: the batch file needs the model name for every line.")
    _check_prefix(id_prefix)
    if isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Iterable):
        raise InputValidationError(
            "inputs must be an iterable of dicts of variables (e.g. [{'input': 'a'}]); got a "
            f"{type(inputs).__name__}."
        )
    out = Path(path)
    _check_dir(out, "path")

    from .._client import LLM
    from ..backends.openai import OpenAIBackend
    from ..backends.vllm import VLLMBackend

    backend: OpenAIBackend
    if target == "openai":
        # the official URL gives OpenAI's wire names; the key is never used nor written
        backend = OpenAIBackend(model=model, api_key="batch-export-no-key")
    else:
        backend = VLLMBackend(model=model)
    try:
        check_policy("on_unsupported", on_unsupported)
    except ParameterError as exc:
        raise ConfigurationError(str(exc)) from None
    llm = LLM(backend, on_unsupported="error" if on_unsupported == "error" else "drop")
    dropped: set[str] = set()
    merged = merge_params(prompt.params, params)
    chat = endpoint == "/v1/chat/completions"

    tmp = out.with_name(out.name + ".tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for index, value in enumerate(inputs):
                if not isinstance(value, Mapping):
                    raise InputValidationError(
                        f"Input {index} is a {type(value).__name__}, not a mapping of variables."
                    )
                try:
                    if chat:
                        request, gone = llm.prepare_request(
                            prompt.render(**value), params=merged, response_format=response_format
                        )
                    else:
                        request, gone = llm.prepare_request(
                            prompt=prompt.render_text(**value), params=merged
                        )
                except PromptError as exc:
                    raise InputValidationError(f"Input {index} cannot be rendered: {exc}") from exc
                dropped.update(gone)
                line = {
                    "custom_id": f"{id_prefix}-{index}",
                    "method": "POST",
                    "url": endpoint,
                    "body": backend.build_body(request),
                }
                f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if dropped and on_unsupported == "warn":
        from .._client import UnsupportedParameterWarning

        where = "the OpenAI API" if target == "openai" else "vLLM"
        warnings.warn(
            f"{', '.join(sorted(dropped))} dropped from every request in {str(out)!r}: "
            f"{where} does not take {'it' if len(dropped) == 1 else 'them'}. Pass "
            "on_unsupported='drop' to silence this, or target='vllm' for vLLM's extras.",
            UnsupportedParameterWarning,
            stacklevel=2,
        )
    if target == "openai" and count > OPENAI_MAX_REQUESTS:
        warnings.warn(
            f"{count} requests in {str(out)!r}: OpenAI's Batch API takes at most "
            f"{OPENAI_MAX_REQUESTS} per file. Split the inputs into several files (one "
            "id_prefix each).",
            stacklevel=2,
        )
    return count


# --------------------------------------------------------------------------- import

_CONTEXT_WORDS = ("context length", "context_length", "maximum context", "too many tokens")


def _error_from(
    custom_id: str, status: int | None, code: Any, message: str, body: str | None
) -> PromptkitError:
    """The typed promptkit error for one failed batch request."""
    where = f"Batch request {custom_id!r} failed"
    detail = f" ({status})" if status else (f" ({code})" if code else "")
    text = f"{where}{detail}: {message or 'no message'}"
    kw: dict[str, Any] = {"status": status, "backend": "batch", "body": body}
    code_s = str(code or "").lower()
    low = f"{message} {code_s}".lower()
    if code_s == "batch_expired":
        return BackendTimeoutError(
            text + ". The batch's completion window ended first: submit these inputs again.",
            **kw,
        )
    if status == 429 or "rate_limit" in code_s:
        return RateLimitError(text, **kw)
    if status in (401, 403):
        return AuthenticationError(text, **kw)
    if any(w in low for w in _CONTEXT_WORDS):
        return ContextLengthError(text, **kw)
    if status is not None and status >= 500:
        return ServerError(text, **kw)
    if status is not None and 400 <= status < 500:
        return BadRequestError(text, **kw)
    if "invalid" in code_s:
        return BadRequestError(text, **kw)
    return BackendError(text, **kw)


def _error_parts(err: Any) -> tuple[str, Any]:
    """(message, code) from an ``error`` value: OpenAI ``{"code", "message"}``, vLLM's
    string or ``ErrorResponse`` (``{"error": {...}}`` or ``{"object": "error", ...}``)."""
    if isinstance(err, str):
        return err, None
    if isinstance(err, Mapping):
        inner = err.get("error")
        if isinstance(inner, Mapping):
            err = inner
        elif isinstance(inner, str):
            return inner, err.get("code")
        msg = err.get("message")
        return (msg if isinstance(msg, str) else json.dumps(err, ensure_ascii=False)), err.get(
            "code"
        )
    return json.dumps(err, ensure_ascii=False), None


def _completion_from(custom_id: str, body: Mapping[str, Any]) -> Completion:
    from ..backends.openai import parse_choice, parse_usage

    raw_choices = body.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        raise MalformedResponseError(
            f"Batch request {custom_id!r}: the response body has no choices.",
            backend="batch",
            body=json.dumps(body, ensure_ascii=False)[:2000],
        )
    try:
        choices = [
            parse_choice(ch, i, isinstance(ch.get("message"), Mapping))
            for i, ch in enumerate(raw_choices)
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedResponseError(
            f"Batch request {custom_id!r}: a choice lacks an expected field "
            f"({type(exc).__name__}: {exc}).",
            backend="batch",
        ) from None
    choices.sort(key=lambda c: c.index)
    done = Completion(
        choices=choices,
        model=body.get("model"),
        backend="batch",
        usage=parse_usage(body.get("usage")),
        raw=dict(body),
    )
    if any(c.finish_reason == "content_filter" for c in choices):
        raise ContentFilteredError(
            f"Batch request {custom_id!r}: the server withheld the reply "
            "(finish_reason 'content_filter').",
            backend="batch",
        )
    return done


def _item_from_line(
    custom_id: str, index: int, value: Mapping[str, Any] | None, line: Mapping[str, Any]
) -> BatchItem:
    response = line.get("response")
    error = line.get("error")
    status: int | None = None
    body: Any = None
    if isinstance(response, Mapping):
        sc = response.get("status_code")
        status = sc if isinstance(sc, int) else None
        body = response.get("body")
    failure: PromptkitError | None = None
    completion: Completion | None = None
    if error is not None or (status is not None and status != 200):
        if error is not None:
            message, code = _error_parts(error)
        elif isinstance(body, Mapping) and body.get("error") is not None:
            message, code = _error_parts(body)
        else:
            message, code = "", None
        if status is None and isinstance(code, int):
            status = code
        raw = json.dumps(line, ensure_ascii=False)[:2000]
        failure = _error_from(custom_id, status, code, message, raw)
    elif not isinstance(body, Mapping):
        failure = MalformedResponseError(
            f"Batch request {custom_id!r}: the line has neither a response body nor an error.",
            backend="batch",
        )
    else:
        try:
            completion = _completion_from(custom_id, body)
        except PromptkitError as exc:
            failure = exc
    if failure is not None:
        return BatchItem(index, value, None, failure, type(failure).__name__, str(failure))
    return BatchItem(index, value, completion)


def import_openai_batch_results(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    inputs_or_count: Sequence[Mapping[str, Any]] | int,
    *,
    id_prefix: str = "req",
) -> BatchResult:
    """Read OpenAI Batch API (or ``vllm run-batch``) results into a BatchResult.

    ``paths`` is the output file, or several files (OpenAI's output and error files, or
    the results of several split jobs). ``inputs_or_count`` is the list of inputs that
    was exported (the items carry them) or just their number. Lines are matched to
    inputs by ``custom_id`` (``f"{id_prefix}-{index}"``), in any order.

    - a line with an ``error``, or a ``response.status_code`` other than 200, is a typed
      failure on its input (:class:`~promptkit.RateLimitError` for 429,
      :class:`~promptkit.BadRequestError` for other 4xx,
      :class:`~promptkit.ContextLengthError`, :class:`~promptkit.ServerError`,
      :class:`~promptkit.BackendTimeoutError` for requests the batch expired before
      running, ...);
    - an input with no line is a :class:`~promptkit.BackendError` failure ("no result");
    - a ``custom_id`` that is not one of the inputs', a repeated one, or a line that is
      not JSON raise :class:`~promptkit.ConfigurationError` (wrong file or prefix).

    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "results.jsonl")
    >>> body = {"model": "m", "choices": [{"index": 0, "finish_reason": "stop",
    ...         "message": {"role": "assistant", "content": "positive"}}]}
    >>> with open(path, "w") as f:
    ...     print(json.dumps({"id": "b1", "custom_id": "req-0", "error": None,
    ...                       "response": {"status_code": 200, "body": body}}), file=f)
    >>> result = import_openai_batch_results(path, 2)
    >>> result.texts, result.failed[0].error_type
    (['positive', None], 'BackendError')
    """
    _check_prefix(id_prefix)
    if isinstance(inputs_or_count, bool):
        raise ConfigurationError("inputs_or_count: expected the inputs or their number.")
    if isinstance(inputs_or_count, int):
        if inputs_or_count < 0:
            raise ConfigurationError(f"inputs_or_count={inputs_or_count}: expected >= 0.")
        count = inputs_or_count
        inputs: Sequence[Mapping[str, Any]] | None = None
    else:
        inputs = list(inputs_or_count)
        count = len(inputs)
    files = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    prefix = id_prefix + "-"
    found: dict[int, BatchItem] = {}
    for file in files:
        try:
            handle = open(file, encoding="utf-8")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise ConfigurationError(f"Cannot read batch results {str(file)!r}: {exc}.") from None
        with handle:
            for lineno, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except ValueError:
                    line = None
                if not isinstance(line, Mapping) or not isinstance(line.get("custom_id"), str):
                    raise ConfigurationError(
                        f"{str(file)!r}, line {lineno}: not a batch result line (JSON with a "
                        "custom_id)."
                    )
                custom_id = line["custom_id"]
                rest = custom_id[len(prefix) :] if custom_id.startswith(prefix) else ""
                if not rest.isdigit() or int(rest) >= count or str(int(rest)) != rest:
                    raise ConfigurationError(
                        f"{str(file)!r}, line {lineno}: custom_id {custom_id!r} is not one of "
                        f"the {count} inputs' ids ({prefix}0 ... {prefix}{max(count - 1, 0)}). "
                        "Check id_prefix and that the file belongs to these inputs."
                    )
                index = int(rest)
                if index in found:
                    raise ConfigurationError(
                        f"{str(file)!r}, line {lineno}: custom_id {custom_id!r} appears twice."
                    )
                value = inputs[index] if inputs is not None else None
                found[index] = _item_from_line(custom_id, index, value, line)
    items: list[BatchItem] = []
    for index in range(count):
        item = found.get(index)
        if item is None:
            value = inputs[index] if inputs is not None else None
            names = ", ".join(repr(str(f)) for f in files)
            err = BackendError(
                f"No result for custom_id {prefix}{index} in {names}: the batch may have "
                "expired or been cancelled before running it, or its error file was not "
                "given. Submit it again.",
                backend="batch",
            )
            item = BatchItem(index, value, None, err, type(err).__name__, str(err))
        items.append(item)
    return BatchResult(items, summarize(items))
