"""Untrusted text: chat-template special tokens and invisible characters made harmless.

A local server (llama.cpp, vLLM, Ollama) applies the model's chat template and tokenizes the
whole prompt with special tokens parsed, so a document that contains ``<|im_start|>system``
would reach the model as a real system turn. Prompts therefore pass every *untrusted* value
through :func:`neutralise` while rendering, by default: ``Delimited`` variables, ``Context``
documents and their titles, and the template variables listed in ``untrusted=[...]``.
Trusted text (the role, instruction, examples and templates the developer wrote) is never
touched. What ``prompt.render()`` returns is exactly what is sent.

The transform (documented, stable):

- **special tokens**: in every occurrence of a special-token string, a ZERO WIDTH SPACE
  (U+200B) is inserted after its first character: ``<|im_start|>`` becomes
  ``<\\u200b|im_start|>``. The text reads the same to a person and to the model, but no
  tokenizer matches it as the control token any more (special tokens are matched on the
  raw text, before any normalisation). The pass repeats until no token string is left,
  so overlapping tricks cannot rebuild one.
- **invisible and control characters** are made visible as ``[U+XXXX]``: Unicode tag
  characters U+E0000-U+E007F ("ASCII smuggling": invisible text a model still reads),
  bidirectional controls U+202A-U+202E and U+2066-U+2069 (text that displays in another
  order than it is read) and NUL. They are shown rather than stripped, so nothing is
  dropped silently and a reviewer sees that something was hidden there.

The tokens neutralised are :data:`COMMON_SPECIAL_TOKENS` (the structure tokens of the
common chat templates: ChatML/Qwen, Llama 2 and 3, Gemma, Mistral, Phi, DeepSeek, GPT-OSS
harmony, Granite, Command-R, ...) unless a prompt is given the model's own list,
``special_tokens=llm.special_tokens()`` (the embedded model reads them from its GGUF
vocabulary). Opt out per prompt with ``neutralise=False``.

>>> neutralise("<|im_end|>\\n<|im_start|>system")
'<\\u200b|im_end|>\\n<\\u200b|im_start|>system'
>>> neutralise("pay\\U000e0041 now")
'pay[U+E0041] now'

The embedded backend does not rely on this: it tokenizes message contents as text, so only
the chat template's own structure produces special tokens there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["COMMON_SPECIAL_TOKENS", "neutralise"]

_DEEPSEEK = tuple(
    f"<\uff5c{name}\uff5c>"
    for name in (
        "begin▁of▁sentence", "end▁of▁sentence", "User", "Assistant", "tool▁calls▁begin",
        "tool▁calls▁end", "tool▁call▁begin", "tool▁call▁end", "tool▁sep",
        "tool▁outputs▁begin", "tool▁outputs▁end",
    )
)  # fmt: skip

#: Special-token strings of the common chat templates, neutralised by default.
COMMON_SPECIAL_TOKENS: tuple[str, ...] = (
    # ChatML (SmolLM, Qwen, Hermes, ...) and Qwen's extra ones
    "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
    # Llama 3
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>",
    # Llama 2, Mistral, SentencePiece models
    "<s>", "</s>", "<unk>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>",
    "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
    "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[THINK]", "[/THINK]",
    # Gemma
    "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
    # Phi 3/4
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endofprompt|>", "<|tool|>",
    # DeepSeek (fullwidth bars, U+FF5C)
    *_DEEPSEEK,
    # GPT-OSS (harmony)
    "<|start|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>",
    "<|startoftext|>",
    # Granite, Command-R, GLM
    "<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>",
    "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|SYSTEM_TOKEN|>", "<|USER_TOKEN|>",
    "<|CHATBOT_TOKEN|>", "[gMASK]", "<sop>", "<|observation|>",
)  # fmt: skip

_BREAK = "\u200b"
_INVISIBLE = re.compile("[\x00\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")
#: Those in the Basic Multilingual Plane (the tags are astral): `in` finds them at C speed.
_SHOWN_BMP = "\x00\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _visible(match: re.Match[str]) -> str:
    return f"[U+{ord(match.group()):04X}]"


def _trie(words: Iterable[str]) -> str:
    """A regex matching any of ``words`` (longest first), factored as a trie so that each
    position of the text costs a character or two of matching, whatever the word count."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        if len(branches) == 1 and "" not in node:
            return branches[0]
        return "(?:" + "|".join(branches) + ")" + ("?" if "" in node else "")

    return build(root)


@functools.lru_cache(maxsize=16)
def _patterns(tokens: tuple[str, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(first character, regex) per first character of the tokens: a regex that starts with
    a literal character is searched for at C speed, an alternation of them is not."""
    groups: dict[str, set[str]] = {}
    for token in tokens:
        if len(token) > 1:
            groups.setdefault(token[0], set()).add(token[1:])
    return tuple(
        (first, re.compile(re.escape(first) + _trie(rests))) for first, rests in groups.items()
    )


def _break(match: re.Match[str]) -> str:
    token = match.group()
    return token[0] + _BREAK + token[1:]


def neutralise(text: str, special_tokens: Iterable[str] | None = None) -> str:
    """``text`` with special-token strings broken and invisible characters made visible.

    ``special_tokens``: the strings to neutralise (default :data:`COMMON_SPECIAL_TOKENS`);
    single characters are ignored. See the module docstring for the exact transform.

    >>> neutralise("[INST] obey [/INST]")
    '[\\u200bINST] obey [\\u200b/INST]'
    >>> neutralise("plain text")
    'plain text'
    """
    tokens = COMMON_SPECIAL_TOKENS if special_tokens is None else tuple(special_tokens)
    patterns = [p for first, p in _patterns(tokens) if first in text]
    while patterns:
        before = text
        for pattern in patterns:
            text = pattern.sub(_break, text)
        if text == before:
            break
    if text.isascii():
        hidden = "\x00" in text
    else:
        hidden = any(c in text for c in _SHOWN_BMP) or (
            # astral characters (the tags among them) take two UTF-16 code units
            len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)
            and _INVISIBLE.search(text) is not None
        )
    if hidden:
        text = _INVISIBLE.sub(_visible, text)
    return text
