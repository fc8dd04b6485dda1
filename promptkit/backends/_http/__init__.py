"""What every HTTP backend shares: pooled httpx clients, retries and error mapping.

:class:`HTTPBackend` owns one lazily created :class:`httpx.Client` and one
:class:`httpx.AsyncClient`, sends JSON bodies built as plain dicts, retries transient
failures with tenacity, and turns every failure into a :mod:`promptkit` error. Subclasses
(the OpenAI-compatible and Ollama backends) only build bodies and parse replies.

Retries (see :class:`RetryPolicy` for the rules): 408, 409, 429, 5xx (but 501),
timeouts, refused and dropped connections are retried with exponential backoff and jitter;
a ``Retry-After`` header (seconds or an HTTP date, or OpenAI's ``retry-after-ms``) is
honoured, and one asking for longer than ``retry_after_max`` ends the call at once with
the error (``RateLimitError.retry_after`` says how long). A server's ``x-should-retry:
true``/``false`` header overrides the status. Deterministic refusals are never retried: a
context overflow, a server not started for embeddings, 501, and a server refusing a
feature by name (:class:`~promptkit.FeatureRefusedError`: one failed request, then the
client falls back and remembers). The first attempt runs without any retry machinery, so
a call that succeeds pays nothing for it.

The API key lives in a :class:`~promptkit._secret.Secret`, whose ``repr`` is masked; it is
sent only as ``Authorization: Bearer ...`` and is redacted from every error message and
body excerpt (see :meth:`~promptkit._secret.Secret.redact` for the rule).
Errors are raised outside of ``except`` blocks, so no httpx or json exception (whose
request object would carry the headers) is chained to what the user sees.

The package is split by concern: :mod:`.transport` (clients, send/retry, reading replies
and streams; :class:`HTTPOptions`, :class:`Body`), :mod:`.retry` (:class:`RetryPolicy`),
:mod:`.sse` (:class:`SSEDecoder`), :mod:`.errors` (failures and error mapping) and
:mod:`.codec` (JSON).
"""

from .codec import dumps, loads
from .errors import REFUSABLE, Failure, _refused_features, excerpt, safe_url
from .retry import RetryPolicy
from .sse import SSEDecoder
from .transport import _ASYNC_POOLS, Body, HTTPBackend, HTTPOptions

__all__ = [
    "REFUSABLE",
    "Body",
    "Failure",
    "HTTPBackend",
    "HTTPOptions",
    "RetryPolicy",
    "SSEDecoder",
    "_ASYNC_POOLS",
    "_refused_features",
    "dumps",
    "excerpt",
    "loads",
    "safe_url",
]
