"""Answer extraction: the final answer in a reply, by pattern or by the answer line.

>>> extract_answer("2 and 2 make 4. The answer is 4.", answer_format="The answer is <answer>.")
'4'
"""

from __future__ import annotations

import re

__all__ = ["ANSWER", "extract_answer"]

#: The placeholder for the answer in ``answer_format``.
ANSWER = "<answer>"


def extract_answer(
    text: str, *, answer_pattern: str | None = None, answer_format: str | None = None
) -> str | None:
    """The answer in ``text``: the last match of ``answer_pattern`` (its first group), or
    else of the line that ``answer_format`` asks for. ``None`` when absent."""
    if answer_pattern is not None:
        matches = list(re.finditer(answer_pattern, text))
        if not matches:
            return None
        m = matches[-1]
        return (m.group(1) if m.groups() else m.group(0)).strip()
    if not answer_format or ANSWER not in answer_format:
        return None
    prefix, _, suffix = answer_format.partition(ANSWER)
    prefix = prefix.strip()
    if prefix:
        starts = list(re.finditer(re.escape(prefix), text, flags=re.IGNORECASE))
        if not starts:
            return None
        rest = text[starts[-1].end() :]
    else:
        lines = [line for line in text.splitlines() if line.strip()]
        rest = lines[-1] if lines else ""
    answer = rest.lstrip(" \t*:").split("\n", 1)[0].strip()
    suffix = suffix.strip()
    if suffix and answer.endswith(suffix):
        answer = answer[: -len(suffix)]
    return answer.strip().strip("*").rstrip(".").strip() or None
