"""Tool turns in conversations (issue 15): trimming keeps a call with its results, prompt
files round-trip tool messages, the response cache keys on tools and tool turns and keeps
a reply's tool calls."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptkit as pk
from promptkit import LLM, FakeBackend, Message, ToolCall
from promptkit._cache import Cache, cache_key
from promptkit._types import Request
from promptkit.prompts._history import trim_history


def convert(km: float) -> float:
    """Kilometres to miles."""
    return round(km / 1.609344, 2)


def tool_turn(km: int, call_id: str, *, calls: int = 1) -> list[Message]:
    asked = [
        ToolCall(id=f"{call_id}{i}", name="convert", arguments={"km": km}) for i in range(calls)
    ]
    return [
        Message.user(f"{km} km in miles?"),
        Message.assistant("", tool_calls=asked),
        *(Message.tool(str(convert(km)), tool_call_id=c.id, name="convert") for c in asked),
        Message.assistant(f"{convert(km)} miles"),
    ]


HISTORY = [*tool_turn(5, "a", calls=2), *tool_turn(10, "b"), *tool_turn(42, "c", calls=3)]


def unanswered(history: list[Message]) -> set[str]:
    """Call ids asked for without a result in ``history``, and results without a call."""
    asked = {c.id for m in history for c in m.tool_calls or ()}
    answered = {m.tool_call_id for m in history if m.role == "tool"}
    return asked ^ {a for a in answered if a is not None}


@pytest.mark.parametrize("max_turns", [0, 1, 2, 3])
def test_trimming_by_turns_keeps_calls_with_results(max_turns: int) -> None:
    kept = trim_history(HISTORY, max_turns=max_turns)
    assert unanswered(kept) == set()
    assert len([m for m in kept if m.role == "user"]) == max_turns


@pytest.mark.parametrize("budget", range(0, 140, 7))
def test_trimming_by_tokens_keeps_calls_with_results(budget: int) -> None:
    kept = trim_history(HISTORY, max_history_tokens=budget, token_counter=len)
    assert unanswered(kept) == set()
    assert kept == HISTORY[len(HISTORY) - len(kept) :]
    assert not kept or kept[0].role == "user"


def test_tool_call_arguments_count_towards_the_token_budget() -> None:
    turn = tool_turn(5, "a")
    plain = [Message.user(turn[0].content), Message.assistant(""), *turn[2:]]
    costed = sum(len(m.content) for m in plain)
    # with the arguments counted the tool turn no longer fits the budget the bare text fits
    assert trim_history(plain, max_history_tokens=costed, token_counter=len) == plain
    assert trim_history(turn, max_history_tokens=costed, token_counter=len) == []


def test_conversation_render_keeps_tool_turns() -> None:
    conv = pk.Conversation(history=tool_turn(5, "a"), max_turns=1)
    rendered = conv.render(input="and 10 km?")
    assert rendered[:-1] == tool_turn(5, "a")
    assert rendered[1].tool_calls is not None and rendered[2].tool_call_id == "a0"


@pytest.mark.parametrize("ext", ["json", "yaml"])
def test_prompt_files_round_trip_tool_messages(tmp_path: Path, ext: str) -> None:
    conv = pk.Conversation(role="a unit converter", history=HISTORY)
    path = tmp_path / f"conv.{ext}"
    pk.save_prompt(conv, path)
    text = path.read_text()
    assert "tool_call_id" in text and "tool_calls" in text
    back = pk.load_prompt(path)
    assert back == conv
    assert isinstance(back, pk.Conversation) and back.history == HISTORY


def test_cache_key_covers_tools_and_tool_turns() -> None:
    backend = FakeBackend()
    spec = pk.Tool(convert).spec()
    plain = Request(messages=[Message.user("5 km?")])
    keys = {
        cache_key(backend, plain),
        cache_key(backend, Request(messages=plain.messages, tools=(spec,))),
        cache_key(backend, Request(messages=plain.messages, tools=(spec,), tool_choice="required")),
        cache_key(
            backend,
            Request(messages=plain.messages, tools=({**spec, "description": "other"},)),
        ),
        cache_key(
            backend,
            Request(messages=plain.messages, tools=(spec,), parallel_tool_calls=False),
        ),
        cache_key(backend, Request(messages=tool_turn(5, "a")[:3])),
        cache_key(backend, Request(messages=tool_turn(5, "b")[:3])),  # another call id
        cache_key(backend, Request(messages=tool_turn(6, "a")[:3])),  # other arguments
    }
    assert len(keys) == 8


def test_cache_key_of_requests_without_tools_is_unchanged() -> None:
    """Keys written before tools existed still hit."""
    request = Request(messages=[Message.user("hi")], params={"temperature": 0.7})
    # the key of this request before tool calling was added (commit f08c159)
    assert cache_key(FakeBackend(), request) == (
        "eeb64a0fe037f4046f1d8d644e96947373f49925f218983937612efc8f22c21a"
    )


def test_cached_reply_keeps_its_tool_calls(tmp_path: Path) -> None:
    fake = FakeBackend([[ToolCall(name="convert", arguments={"km": 5})]])
    with Cache(tmp_path / "c.sqlite") as cache:
        llm = LLM(fake, cache=cache)
        first = llm.complete("5 km?", tools=[convert])
        again = llm.complete("5 km?", tools=[convert])
        assert again.cached and len(fake.requests) == 1
        assert again.tool_calls == first.tool_calls
        assert again.finish_reason == "tool_calls"
        with pytest.raises(pk.ConfigurationError):
            llm.complete("5 km?")  # no tools: another key, and the script is used up


def test_telemetry_messages_carry_tool_parts() -> None:
    import json

    from promptkit._telemetry import input_messages, output_messages
    from promptkit._types import Choice, Completion

    turn = tool_turn(5, "a")
    got = json.loads(input_messages(Request(messages=turn[:3])))
    assert got[1]["parts"] == [
        {"type": "tool_call", "id": "a0", "name": "convert", "arguments": '{"km": 5}'}
    ]
    assert got[2]["parts"] == [{"type": "tool_call_response", "id": "a0", "response": "3.11"}]
    reply = Completion([Choice("", 0, "tool_calls", tool_calls=turn[1].tool_calls or ())])
    out = json.loads(output_messages(reply))
    assert out[0]["parts"][0]["type"] == "tool_call"
    assert out[0]["finish_reason"] == "tool_calls"
