"""Token counters: the approximation, tiktoken (with a locally built encoding: tiktoken's
own files come from the network), message costs, and Conversation's history budget."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import promptkit as pk
from promptkit._tokens import (
    APPROX,
    MESSAGE_OVERHEAD,
    ApproxTokenCounter,
    TiktokenCounter,
    TokenCounter,
    approx_tokens,
    message_cost,
)


def test_the_approximation() -> None:
    assert isinstance(APPROX, ApproxTokenCounter) and isinstance(APPROX, TokenCounter)
    assert [APPROX.count("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]
    assert approx_tokens("abcdefgh") == 2 + MESSAGE_OVERHEAD == 6
    assert pk.approx_tokens is approx_tokens  # the public name is unchanged
    assert repr(APPROX) == "APPROX"


def test_message_cost_semantics() -> None:
    class Words:
        def count(self, text: str) -> int:
            return len(text.split())

    assert message_cost(None) is approx_tokens
    assert message_cost(Words())("three small words") == 3 + MESSAGE_OVERHEAD
    assert message_cost(len)("abcd") == 4  # a function is a message's whole cost
    with pytest.raises(TypeError, match="count"):
        message_cost(42)  # type: ignore[arg-type]


def conversation(**kw: Any) -> pk.Conversation:
    c = pk.Conversation(role="bot", **kw)
    for i in range(4):
        c = c.with_turn(f"question {i} " + "x" * 36, f"answer {i} " + "y" * 36)
    return c


def test_conversation_budget_with_a_token_counter() -> None:
    class Words:
        def count(self, text: str) -> int:
            return len(text.split())

    # each message: 3 words + 4 framing = 7; a turn 14; budget 30 keeps the last 2 turns
    c = conversation(max_history_tokens=30, token_counter=Words())
    history = c.render(input="next")[1:-1]
    assert [m.content.split()[1] for m in history] == ["2", "2", "3", "3"]
    # the default approximation: each message ceil(45/4)+4 = 16, a turn 32
    c = conversation(max_history_tokens=70)
    assert len(c.render(input="next")[1:-1]) == 4
    # a plain function stays the whole cost of a message, as before
    c = conversation(max_history_tokens=100, token_counter=len)
    assert len(c.render(input="next")[1:-1]) == 2


def test_token_counter_is_not_serialised() -> None:
    c = conversation(max_history_tokens=30, token_counter=APPROX)
    assert "token_counter" not in c.model_dump()
    assert c.model_copy(update={"max_turns": 1}).token_counter is APPROX


# --------------------------------------------------------------------------- tiktoken


def tiny_encoding() -> Any:
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {bytes([i]): i for i in range(256)}
    for piece in (b"he", b"ll", b"hell", b"hello"):
        ranks[piece] = len(ranks)
    return tiktoken.Encoding(
        "tiny", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={"<|end|>": 300}
    )


def test_tiktoken_with_a_local_encoding() -> None:
    enc = tiny_encoding()
    counter = TiktokenCounter(encoding=enc)
    assert isinstance(counter, TokenCounter)
    assert counter.count("hello") == 1
    assert counter.count("hello world") == 1 + 1 + 5
    assert counter.count("<|end|>") == len("<|end|>")  # special tokens counted as text
    assert counter.load() is enc
    assert repr(counter) == "TiktokenCounter('tiny')"


def test_tiktoken_model_names_map_to_encodings(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = tiny_encoding()
    import tiktoken.registry

    # stand in for the o200k_base file, which tiktoken would download
    monkeypatch.setitem(tiktoken.registry.ENCODINGS, "o200k_base", enc)
    assert TiktokenCounter("gpt-4o-mini").count("hello") == 1
    assert TiktokenCounter("some-future-model").load() is enc  # unknown models: o200k_base
    assert TiktokenCounter(encoding="o200k_base").count("hello hello") == 3


def test_tiktoken_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    tiktoken = pytest.importorskip("tiktoken")

    def offline(name: str) -> Any:
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    counter = TiktokenCounter("gpt-4o")
    with pytest.raises(pk.ConfigurationError, match="TIKTOKEN_CACHE_DIR") as info:
        counter.count("hi")
    assert "o200k_base" in str(info.value) and "ConnectionError" in str(info.value)


def test_tiktoken_unknown_encoding_name() -> None:
    pytest.importorskip("tiktoken")
    with pytest.raises(pk.ConfigurationError, match="no encoding 'nope'"):
        TiktokenCounter(encoding="nope").count("x")


def test_tiktoken_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    with pytest.raises(pk.ConfigurationError, match="pip install tiktoken"):
        TiktokenCounter("gpt-4o").count("x")
    with pytest.raises(pk.ConfigurationError, match="model name or an encoding"):
        TiktokenCounter()
