"""Error mapping for the HTTP backends: one failed attempt becomes a :class:`Failure`
(stripped of httpx objects, marked retryable or not), and a failure becomes the promptkit
error the user sees, with the API key redacted from every message and body excerpt.

Deterministic refusals are recognised here: a context overflow, a server not started for
embeddings, and a server refusing a feature by name
(:class:`~promptkit.FeatureRefusedError`, see :data:`REFUSABLE`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ContextLengthError,
    FeatureRefusedError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
)
from ..._secret import Secret
from .codec import loads

if TYPE_CHECKING:
    from .retry import RetryPolicy

__all__ = ["REFUSABLE", "ErrorMapping", "Failure", "excerpt", "safe_url", "tools_fix"]

_EXCERPT = 300

#: Phrases servers use when the prompt does not fit (OpenAI, vLLM, llama.cpp, ...).
_CONTEXT_PHRASES = (
    "context_length_exceeded",
    "maximum context length",
    "exceeds the available context size",
    "exceed_context_size",
    "context window",
    "context length",
    "too many tokens",
)

#: What llama.cpp servers say when asked for embeddings they were not started to serve
#: (a 5xx that retrying cannot cure).
_NO_EMBEDDINGS_PHRASES = (
    "must be created with embedding=true",
    "does not support embeddings",
    "start it with `--embeddings`",
)

#: promptkit parameters a server may refuse by name (FeatureRefusedError.features); the
#: client emulates ``n`` and drops the others per ``on_unsupported``. The response format
#: is ``"json_schema"`` (the JSON-schema form refused: json_object with the schema is
#: tried) or ``"response_format"`` (refused whole: instructions alone).
REFUSABLE = frozenset(
    {
        "n",
        "logprobs",
        "top_logprobs",
        "seed",
        "top_k",
        "min_p",
        "repetition_penalty",
        "presence_penalty",
        "frequency_penalty",
    }
)

#: How servers word the refusal of a field or value (pydantic, FastAPI, OpenAI, vLLM,
#: llama.cpp); a refusal also names a field the request sent.
_REFUSAL_PHRASES = (
    "not supported",
    "unsupported",
    "does not support",
    "not allowed",
    "not permitted",
    "extra_forbidden",
    "literal_error",
    "input should be '",
    "unrecognized",
    "unknown field",
    "unknown parameter",
    "not implemented",
    "only one completion choice",
)

#: How servers refuse tool calling as they were started (llama.cpp's server without
#: ``--jinja``, vLLM without ``--enable-auto-tool-choice``), beside the phrases above
#: (Ollama: "<model> does not support tools").
_TOOL_REFUSAL_PHRASES = ("requires --jinja", "--enable-auto-tool-choice", "tool choice requires")

#: Tool calling named in a message: "tools", "tool calls".
_TOOLS_NAMED = re.compile(r"\btools?\b|\btool[_ ]calls?\b")
#: One tool choice refused: vLLM's '"auto" tool choice requires --enable-auto-tool-choice'
#: (a named or "required" choice still works there), older vLLM's 'tool_choice =
#: "required" is not supported'.
_CHOICE_NAMED = re.compile(r"\btool[_ ]choice\b")

#: ``n`` named in a message: quoted, or as in "n must be 1", "n > 1", "n != 1".
_N_NAMED = re.compile(r"['\"`]n['\"`]|\bn\s*(?:must|>|!=|should)|only one completion choice")

_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+")


def _redact(text: str, secret: Secret | None) -> str:
    """``text`` without the API key (:meth:`Secret.redact`) or anything shaped like an
    OpenAI key (``sk-`` and its first 6 characters stay)."""
    if secret is not None:
        text = secret.redact(text)
    return _KEY_LIKE.sub(r"\1***", text)


def excerpt(text: str, secret: Secret | None, limit: int = _EXCERPT) -> str:
    text = " ".join(_redact(text, secret).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_url(url: str) -> str:
    """``url`` without a password in its userinfo (for reprs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(data: Any) -> tuple[str, str]:
    """(message, code) from an error body: OpenAI ``{"error": {...}}``, Ollama
    ``{"error": "..."}``, FastAPI ``{"detail": ...}``."""
    if not isinstance(data, dict):
        return "", ""
    err = data.get("error", data)
    if isinstance(err, str):
        return err, ""
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or ""
        code = " ".join(str(err.get(k) or "") for k in ("code", "type")).strip()
        if not isinstance(msg, str):
            msg = json.dumps(msg, ensure_ascii=False)
        return msg, code
    return "", ""


def _is_html(resp: httpx.Response) -> bool:
    return "html" in resp.headers.get("content-type", "")


def _is_context_error(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in _CONTEXT_PHRASES)


def _is_no_embeddings(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in _NO_EMBEDDINGS_PHRASES)


_PYDANTIC_MSG = re.compile(r"""['"]msg['"]:\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')""")


def _brief(message: str, limit: int = 200) -> str:
    """A server's error message in brief: the ``msg`` of each pydantic/FastAPI validation
    error it holds, else the message itself, cut at ``limit``."""
    found = [a or b for a, b in _PYDANTIC_MSG.findall(message)]
    text = "; ".join(dict.fromkeys(m.replace('\\"', '"') for m in found if m)) or message
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tools_fix(said: str) -> str:
    """What to do when a server refuses tool calling, by what it said."""
    low = said.lower()
    if "--jinja" in low:
        return "Start llama-server with --jinja (tool calling needs the model's own template)."
    if "--enable-auto-tool-choice" in low or "tool-call-parser" in low:
        return (
            "Start vLLM with --enable-auto-tool-choice and the --tool-call-parser for the "
            "model, or send tool_choice='required' or a named tool (a ToolLoop needs the "
            "auto choice from its second step on)."
        )
    if "tool_choice" in low or "tool choice" in low:
        return "Send another tool_choice ('auto', 'required' or a tool's name)."
    return "Use a model (or a server setting) that supports tool calling."


def _refused_features(text: str, content: bytes, renames: Mapping[str, str]) -> tuple[str, ...]:
    """The features of the request ``content`` that an error ``text`` refuses by name
    (see :data:`REFUSABLE`); empty when it names none or is not worded as a refusal."""
    low = text.lower()
    tools_refused = any(p in low for p in _TOOL_REFUSAL_PHRASES)
    if not tools_refused and not any(p in low for p in _REFUSAL_PHRASES):
        return ()
    body = loads(content) if content else None
    if not isinstance(body, dict):
        return ()
    out: list[str] = []
    if body.get("tools"):
        if _CHOICE_NAMED.search(low):
            out.append("tool_choice")  # one choice refused (vLLM: "auto"), others may pass
        elif tools_refused or _TOOLS_NAMED.search(low):
            out.append("tools")  # tool calling as a whole
    sent = dict(body)
    if isinstance(body.get("options"), dict):  # Ollama's native sampling options
        sent.update(body["options"])
    names = {wire: name for name, wire in renames.items()}
    rf = sent.get("response_format")
    if isinstance(rf, dict) and re.search(r"\bresponse_format\b|\bjson_schema\b", low):
        out.append("json_schema" if rf.get("type") == "json_schema" else "response_format")
    for wire in sent:
        name = names.get(wire, wire)
        if name not in REFUSABLE:
            continue
        if name == "n":
            # vLLM's "n must be 1 when using greedy sampling" refuses a combination, not n
            if _N_NAMED.search(low) and "greedy" not in low:
                out.append(name)
        elif re.search(rf"\b{re.escape(wire)}\b", low):
            out.append(name)
    return tuple(out)


class Failure(Exception):
    """One failed attempt, already stripped of httpx objects. Never reaches the user."""

    def __init__(
        self,
        kind: str,
        *,
        retryable: bool,
        status: int | None = None,
        message: str = "",
        code: str = "",
        body: str | None = None,
        retry_after: float | None = None,
        detail: str = "",
        refused: tuple[str, ...] = (),
        too_long: bool = False,
    ) -> None:
        super().__init__(kind)
        self.kind = kind  # "status", "timeout", "connect", "dropped", "transport"
        self.retryable = retryable
        self.status = status
        self.message = message
        self.code = code
        self.body = body
        self.retry_after = retry_after
        self.detail = detail
        self.refused = refused  # features the server refused by name (never retried)
        self.too_long = too_long  # Retry-After beyond retry_after_max (not retried)


class ErrorMapping:
    """The error-mapping half of :class:`~promptkit.backends._http.HTTPBackend`: how one
    failed attempt is classified (:meth:`_transport_failure`, :meth:`_status_failure`)
    and which promptkit error it becomes (:meth:`_error`)."""

    name: ClassVar[str]
    renames: ClassVar[dict[str, str]]
    model: str
    timeout: float
    retry: RetryPolicy
    _base_url: str
    _key: Secret | None

    def _transport_failure(self, exc: Exception) -> Failure:
        name = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return Failure("timeout", retryable=True, detail=name)
        if isinstance(exc, httpx.ConnectError):
            return Failure("connect", retryable=True, detail=name)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.NetworkError)):
            return Failure("dropped", retryable=True, detail=name)
        return Failure("transport", retryable=False, detail=name)

    def _status_failure(self, resp: httpx.Response, content: bytes = b"") -> Failure:
        """The failure of a reply with an error status to the request body ``content``
        (the retry rules are :class:`RetryPolicy`'s)."""
        status = resp.status_code
        text = resp.content.decode("utf-8", "replace")
        message, code = _server_message(loads(text) if text else None)
        full = f"{message} {code} {text[:2000]}"
        refused: tuple[str, ...] = ()
        if (
            status >= 400
            and status not in (401, 403, 404, 408, 409, 429)
            and not (_is_context_error(full))
        ):
            # the server's message only: a body echoing the request names every field
            said = f"{message} {code}" if message else text[:2000]
            refused = _refused_features(said, content, self.renames)
        should = resp.headers.get("x-should-retry", "").strip().lower()
        retryable = False
        if should in ("true", "false"):
            retryable = should == "true"
        elif refused or status == 501:
            retryable = False
        elif status in (408, 409):
            retryable = True
        elif status == 429:
            retryable = "insufficient_quota" not in full
        elif status >= 500:
            retryable = not (_is_context_error(full) or _is_no_embeddings(full))
        retry_after = _retry_after(resp.headers) if retryable or status == 429 else None
        too_long = (
            retryable
            and self.retry.max_retries > 0
            and retry_after is not None
            and retry_after > self.retry.retry_after_max
        )
        if too_long:
            retryable = False
        return Failure(
            "status",
            retryable=retryable,
            status=status,
            message=excerpt(message, self._key, 500),
            code=code,
            body=excerpt(text, self._key),
            retry_after=retry_after,
            refused=refused,
            too_long=too_long,
        )

    def _malformed(
        self, reason: str, attempts: int | None, body: str | None = None, status: int | None = None
    ) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self.name} at {safe_url(self._base_url)}: malformed reply, {reason}. "
            "Check that base_url points at the right kind of server for this backend "
            "and that the server is healthy.",
            status=status,
            backend=self.name,
            attempts=attempts,
            body=excerpt(body, self._key) if body else None,
        )

    def _stream_error(self, data: Any, attempts: int) -> BackendError:
        """An error the server reported inside a 2xx reply or stream (``{"error": ...}``)."""
        message, code = _server_message(data)
        message = excerpt(message or json.dumps(data, ensure_ascii=False), self._key, 500)
        failure = Failure("status", retryable=False, message=message, code=code, body=message)
        if _is_context_error(f"{message} {code}"):
            return self._error(failure, attempts)
        return ServerError(
            f"{self.name} reported an error in its reply: {message}. "
            "Try again; if it persists, check the server logs.",
            backend=self.name,
            attempts=attempts,
            body=message,
        )

    def _auth_hint(self) -> str:
        if self._key is None:
            return "This server wants an API key: pass api_key=... (sent as a Bearer token)."
        return "Check that api_key is valid and has access to this model."

    def _not_found(self, failure: Failure) -> str:
        return (
            f"Nothing found at {safe_url(self._base_url)} for this request (404). Check "
            "base_url (OpenAI-compatible servers usually end in /v1) and the model name "
            f"{self.model!r}."
        )

    def _error(self, f: Failure, attempts: int, *, midstream: bool = False) -> BackendError:
        """The promptkit error for a failure, after ``attempts`` attempts."""
        url = safe_url(self._base_url)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        said = f' Server said: "{f.message.rstrip(".")}".' if f.message else ""
        kw: dict[str, Any] = {
            "status": f.status,
            "backend": self.name,
            "attempts": attempts,
            "body": f.body,
        }
        if f.kind == "timeout":
            where = " while streaming" if midstream else ""
            return BackendTimeoutError(
                f"{self.name} at {url} did not answer within {self.timeout:g}s{where}{tries} "
                f"({f.detail}). Raise timeout=..., lower max_tokens, or check the server load.",
                **kw,
            )
        if f.kind == "connect":
            return BackendConnectionError(
                f"Could not connect to {self.name} at {url}{tries} ({f.detail}). Check that "
                "the server is running and that base_url is right.",
                **kw,
            )
        if f.kind in ("dropped", "transport"):
            what = "was dropped in the middle of the stream" if midstream else "failed"
            return BackendConnectionError(
                f"The connection to {self.name} at {url} {what}{tries} ({f.detail}). "
                "Try again; if it persists, check the server and any proxy in between.",
                **kw,
            )
        status = f.status or 0
        text = f"{f.message} {f.code} {f.body or ''}"
        if status != 429 and _is_context_error(text):
            return ContextLengthError(
                f"The prompt does not fit the model's context window ({status or 'error'})."
                f"{said} Shorten the prompt, lower max_tokens, or use a model or server "
                "with a longer context.",
                **kw,
            )
        if f.refused:
            brief = _brief(f.message or f.body or "")
            tooling = {"tools", "tool_choice"} & set(f.refused)
            if tooling:
                what = "tool calling" if "tools" in tooling else "this tool_choice"
                then = (
                    f"{tools_fix(f.message or f.body or '')} Not retried, and later calls "
                    f"with {'tools' if 'tools' in tooling else 'that tool_choice'} on this "
                    "backend fail at once, without a request."
                )
            else:
                what = ", ".join(f.refused)
                then = (
                    "Not retried: LLM calls fall back without it (per on_unsupported) and "
                    "remember; otherwise leave it out of the request."
                )
            return FeatureRefusedError(
                f"{self.name} at {url} refused {what} ({status}). Server said: "
                f'"{brief.rstrip(".")}". {then}',
                features=f.refused,
                reason=brief,
                **kw,
            )
        if f.too_long:
            wait = (
                f"asked to wait {f.retry_after:g}s before a retry ({status}), longer than "
                f"retry_after_max ({self.retry.retry_after_max:g}s), so the call stopped "
                f"at once{tries}.{said}"
            )
            if status == 429:
                return RateLimitError(
                    f"{self.name} {wait} Try again after retry_after seconds (the batch "
                    "runner pauses for it), or raise retry_after_max to wait inside the call.",
                    retry_after=f.retry_after,
                    **kw,
                )
            return ServerError(
                f"{self.name} at {url} {wait} Try again later, or raise retry_after_max.",
                **kw,
            )
        if status == 408:
            return BackendTimeoutError(
                f"{self.name} at {url} timed out the request (408){tries}.{said} Try again "
                "later, lower max_tokens, or check the server load.",
                **kw,
            )
        if status in (401, 403):
            return AuthenticationError(
                f"{self.name} at {url} refused the credentials ({status}).{said} "
                f"{self._auth_hint()}",
                **kw,
            )
        if status == 429:
            if "insufficient_quota" in text:
                return RateLimitError(
                    f"{self.name}: the account's quota is used up (429).{said} Check your "
                    "plan and billing; retrying will not help.",
                    retry_after=f.retry_after,
                    **kw,
                )
            return RateLimitError(
                f"{self.name} is rate limiting requests (429){tries}.{said} Send fewer "
                "requests at once (lower max_concurrency), raise max_retries, or check your "
                "rate limits.",
                retry_after=f.retry_after,
                **kw,
            )
        if status >= 500 and _is_no_embeddings(text):
            return ServerError(
                f"{self.name} at {url} does not serve embeddings ({status}).{said} Start "
                "llama.cpp's llama-server with --embeddings (llama-cpp-python's server: "
                "--embedding true), or embed with a server or model that has embeddings.",
                **kw,
            )
        if status == 501:
            return ServerError(
                f"{self.name} at {url} does not implement this request (501).{said} Not "
                "retried: use a server, endpoint or option that has it.",
                **kw,
            )
        if status >= 500:
            return ServerError(
                f"{self.name} at {url} failed with {status}{tries}.{said} Try again later; "
                "if it persists, check the server logs.",
                **kw,
            )
        if status == 404:
            return BadRequestError(self._not_found(f) + said, **kw)
        if status == 409:
            return BadRequestError(
                f"{self.name} at {url} reported a conflict (409){tries}.{said} Another "
                "request probably holds the resource: try again later.",
                **kw,
            )
        if 300 <= status < 400:
            return BadRequestError(
                f"{self.name} at {url} redirected the request ({status}). Set base_url to "
                "the final address of the API.",
                **kw,
            )
        return BadRequestError(
            f"{self.name} rejected the request ({status}).{said} Check the parameters and "
            "extra fields it accepts (Completion.params_sent shows what is sent).",
            **kw,
        )
