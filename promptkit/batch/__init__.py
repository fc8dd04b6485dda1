"""The batch runner (``promptkit.batch``): one prompt over many inputs, concurrently,
durably, within rate limits.

>>> import promptkit as pk
>>> llm = pk.LLM(pk.FakeBackend(lambda request: request.messages[-1].content.upper()))
>>> shout = pk.ZeroShot(instruction="Repeat the text in capitals.")
>>> result = shout.batch(llm, [{"input": "hi"}, {"input": "bye"}], progress=False)
>>> result.texts
['HI', 'BYE']
>>> result.summary.ok, result.summary.failed
(2, 0)

WHAT IT DOES. :func:`run_batch` (``prompt.batch``) and :func:`arun_batch`
(``await prompt.abatch``) render the prompt with each input (a dict of variables) and send
it, ``concurrency`` requests at a time. A fixed pool of workers pulls inputs from the
iterable as it goes, so a generator of a million inputs is never materialised and at most
``concurrency`` requests are in flight. Results come back in input order as a
:class:`BatchResult`. An input that fails (a template error, a 400, a timeout after the
backend's retries ...) is recorded on its :class:`BatchItem` with its typed
:class:`~promptkit.PromptkitError`; the other inputs go on. The results themselves are
kept for the returned BatchResult; ``collect=False`` keeps only the summary (memory then
stays flat for any number of inputs: pair it with ``out=``).

DURABLE RUNS. With ``out="results.jsonl"`` every result is appended to the file as it
completes, one JSON line each (format below). Start the same run again after a crash, a
Ctrl-C or a ``kill -9`` and it resumes: inputs already in the file are not sent again, and
the file ends with exactly one line per input. How that is guaranteed:

- each line is written with a single ``os.write`` on a file descriptor opened with
  ``O_APPEND``, so a line is never interleaved with another and a killed process leaves at
  worst one partial (*torn*) last line;
- on start the file is read, a torn last line (no final newline) is cut off, and the
  indices present are skipped; an index is never written twice;
- an advisory lock (``flock``, POSIX) refuses a second process on the same file;
- every line carries a hash of its input and of the run's identity (prompt, parameters,
  backend and model): resuming with other inputs or arguments is refused with a
  :class:`~promptkit.ConfigurationError` instead of mixing results (other arguments at
  the start; an input that differs from the one on file when that input is read).

*Flush policy.* A line is handed to the kernel by ``os.write`` before the result is
counted as done; from then on it survives the death of the process, ``kill -9``
included. ``fsync`` (which is what survives a power loss or an OS crash) is called at
most once per ``fsync_interval`` seconds (1 s by default) and at the end of the run:
syncing every line would cost a disk flush per request for no gain against process
crashes. After a power loss at most the last second of lines is lost or torn; the resume
logic above recomputes them. ``fsync_interval=0`` syncs every line.

Line format (one JSON object per line, keys in this order)::

    {"index": 0, "status": "ok", "text": "...", "choices": [{"text": "...",
     "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 2,
     "total_tokens": 11}, "model": "...", "backend": "...", "cached": false,
     "input_sha": "...", "run_sha": "...", "v": 1}
    {"index": 1, "status": "error", "error": {"type": "BadRequestError", "message":
     "...", "status": 400}, "input_sha": "...", "run_sha": "...", "v": 1}

Lines are in completion order, not input order; :meth:`BatchResult.load` reads a file
back in input order. Failed inputs are results too: a resume does not retry them unless
``retry_failed=True``, which first rewrites the file without them (atomically).

RATE LIMITS. ``rpm`` (requests per minute) and ``tpm`` (tokens per minute) are enforced on
the client with token buckets (a burst of at most one second's worth). A request's
tokens are estimated before sending as :func:`promptkit.approx_tokens` of its messages
plus ``max_tokens`` (times ``n``), then reconciled with the usage the server reports. A
reply served from the response cache gives its budget back.

ADAPTIVE SLOW-DOWN. When a request still fails with :class:`~promptkit.RateLimitError`
after the backend's own retries, the runner (1) pauses every worker for the server's
``retry_after`` if the error carries one (up to 5 minutes: a server asking for longer is
recorded as the input's failure at once rather than stalling the batch), else for an
exponential backoff (1 s, 2 s, 4 s ... at most 60 s); (2) halves the number of requests
in flight (at most once per pause; it grows back by one after each run of that many
successes); and (3) puts the input back in the queue, at most ``max_rate_limit_retries``
times, after which the 429 is recorded as the input's failure. An exhausted quota
(``insufficient_quota``) is recorded at once.

PROGRESS. ``progress=None`` shows a progress bar on stderr when stderr is a terminal;
``True`` forces it (a plain line every 10 s when not a terminal), ``False`` hides it.

HTTP backends: httpx's connection pool allows 100 connections per client, so a
``concurrency`` above 100 queues inside the pool rather than on the server.
"""

from ._api import arun_batch, run_batch
from ._limits import Clock
from ._results import BatchItem, BatchResult, BatchSummary

__all__ = [
    "BatchItem",
    "BatchResult",
    "BatchSummary",
    "Clock",
    "arun_batch",
    "run_batch",
]
