"""Content parts on every wire format (issue 14), against respx mocks of each documented shape.

- OpenAI chat: ``{"type": "text"}``, ``{"type": "image_url", "image_url": {"url", "detail"}}``
  (an http(s) URL passed through or a ``data:`` URL), ``{"type": "input_audio",
  "input_audio": {"data": base64, "format": "wav"|"mp3"}}``, ``{"type": "file", "file":
  {"filename", "file_data": data-URL}}``.
- vLLM and llama-server: the OpenAI form; no ``file`` part.
- Ollama /api/chat: ``{"role", "content": text, "images": [base64, ...]}``; no audio, no
  files, no image URLs.
- The embedded backend: text only (a ConfigurationError naming what is needed).
Refusals happen before anything is sent (no request reaches the mock).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import promptkit as pk
from promptkit._types import Message, Request
from promptkit.backends.llama_server import LlamaServerBackend
from promptkit.backends.ollama import OllamaBackend
from promptkit.backends.openai import OpenAIBackend
from promptkit.backends.vllm import VLLMBackend

PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00\x00\x00\rIHDR" + bytes(13)
WAV = b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(28) + b"data" + bytes(4) + bytes(16)
PDF = b"%PDF-1.7\n%fake"
B64 = base64.b64encode(PNG).decode()
BASE = "http://testserver/v1"
OLLAMA = "http://testserver:11434"


def openai_reply(text: str = "a receipt") -> dict[str, Any]:
    return {
        "id": "c1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def sent(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls[-1].request.content)  # type: ignore[no-any-return]


def vision_message(img: pk.ImagePart) -> Message:
    return Message.user(["What is on this receipt?", img, "Answer briefly."])


@pytest.mark.parametrize(
    "make",
    [
        lambda: OpenAIBackend(model="m", base_url=BASE),
        lambda: VLLMBackend(model="m", base_url=BASE),
        lambda: LlamaServerBackend(model="m", base_url=BASE),
    ],
    ids=["openai", "vllm", "llama-server"],
)
def test_openai_form_text_image_audio(mock: respx.MockRouter, make: Any) -> None:
    route = mock.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=openai_reply())
    )
    llm = pk.LLM(make())
    messages = [
        Message.system("You read receipts."),
        vision_message(pk.Image(PNG, detail="high")),
        Message.assistant("Noted."),
        Message.user(["And this one?", pk.Image("https://example.com/r.jpg"),
                      "Transcribe:", pk.Audio(WAV)]),
    ]
    assert llm.complete(messages).text == "a receipt"
    body = sent(route)
    assert body["messages"][0] == {"role": "system", "content": "You read receipts."}
    assert body["messages"][1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is on this receipt?"},
            {"type": "image_url",
             "image_url": {"url": f"data:image/png;base64,{B64}", "detail": "high"}},
            {"type": "text", "text": "Answer briefly."},
        ],
    }
    assert body["messages"][2] == {"role": "assistant", "content": "Noted."}
    assert body["messages"][3]["content"] == [
        {"type": "text", "text": "And this one?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/r.jpg"}},
        {"type": "text", "text": "Transcribe:"},
        {"type": "input_audio",
         "input_audio": {"data": base64.b64encode(WAV).decode(), "format": "wav"}},
    ]


def test_openai_file_part(mock: respx.MockRouter, tmp_path: Path) -> None:
    route = mock.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=openai_reply())
    )
    doc = tmp_path / "invoice.pdf"
    doc.write_bytes(PDF)
    pk.LLM(OpenAIBackend(model="m", base_url=BASE)).complete(
        [Message.user(["Summarise:", pk.File(doc)])]
    )
    assert sent(route)["messages"][0]["content"][1] == {
        "type": "file",
        "file": {"filename": "invoice.pdf",
                 "file_data": "data:application/pdf;base64," + base64.b64encode(PDF).decode()},
    }


@pytest.mark.parametrize("cls", [VLLMBackend, LlamaServerBackend])
def test_servers_without_file_parts_refuse_before_sending(
    mock: respx.MockRouter, cls: type[OpenAIBackend]
) -> None:
    route = mock.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=openai_reply())
    )
    llm = pk.LLM(cls(model="m", base_url=BASE))
    with pytest.raises(pk.UnsupportedPartError, match="does not take file parts") as err:
        llm.complete([Message.user(["Summarise:", pk.File(PDF)])])
    assert err.value.part_type == "file"
    assert isinstance(err.value, pk.ConfigurationError)
    assert not route.called


def test_unreadable_file_fails_before_sending(mock: respx.MockRouter, tmp_path: Path) -> None:
    route = mock.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=openai_reply())
    )
    llm = pk.LLM(OpenAIBackend(model="m", base_url=BASE))
    with pytest.raises(pk.MediaError, match="Cannot read the image file"):
        llm.complete([vision_message(pk.Image(tmp_path / "gone.png"))])
    assert not route.called


def test_text_only_body_is_unchanged(mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(200, json=openai_reply())
    )
    pk.LLM(OpenAIBackend(model="m", base_url=BASE)).complete([Message.user("hi")])
    assert sent(route)["messages"] == [{"role": "user", "content": "hi"}]


def test_ollama_images_on_the_message(mock: respx.MockRouter, tmp_path: Path) -> None:
    route = mock.post(f"{OLLAMA}/api/chat").mock(
        return_value=httpx.Response(200, json={
            "model": "llava", "message": {"role": "assistant", "content": "a receipt"},
            "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2,
        })
    )
    f = tmp_path / "r.png"
    f.write_bytes(PNG)
    llm = pk.LLM(OllamaBackend(model="llava", base_url=OLLAMA))
    assert llm.complete([vision_message(pk.Image(f)), ]).text == "a receipt"
    assert sent(route)["messages"] == [{
        "role": "user",
        "content": "What is on this receipt?\nAnswer briefly.",
        "images": [B64],
    }]
    # a data: URL is decoded and sent inline too
    llm.complete([Message.user(["Look", pk.Image("data:image/png;base64," + B64)])])
    assert sent(route)["messages"][0]["images"] == [B64]


@pytest.mark.parametrize(
    ("part", "match"),
    [
        (pk.Audio(WAV), "does not take audio parts"),
        (pk.File(PDF), "does not take file parts"),
        (pk.Image("https://example.com/r.png"), "not URLs"),
    ],
)
def test_ollama_refuses_audio_files_and_urls(
    mock: respx.MockRouter, part: Any, match: str
) -> None:
    route = mock.post(f"{OLLAMA}/api/chat").mock(return_value=httpx.Response(500))
    llm = pk.LLM(OllamaBackend(model="llava", base_url=OLLAMA))
    with pytest.raises(pk.UnsupportedPartError, match=match):
        llm.complete([Message.user(["x", part])])
    assert not route.called


def test_embedded_backend_refuses_media_naming_what_is_needed(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from promptkit.backends.llamacpp import LlamaCppBackend

    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")  # never loaded: the refusal comes first
    backend = LlamaCppBackend(model=str(model))
    with pytest.raises(pk.ConfigurationError, match="mmproj") as err:
        backend.complete(Request(messages=[vision_message(pk.Image(PNG))]))
    assert isinstance(err.value, pk.UnsupportedPartError)
    assert "LLAVA_BUILD=OFF" in str(err.value)
    with pytest.raises(pk.UnsupportedPartError):
        backend.chat_tokens([vision_message(pk.Image(PNG))])


def test_batch_file_carries_parts(tmp_path: Path) -> None:
    from promptkit.batch.files import export_openai_batch

    prompt = pk.Prompt(
        history=[Message.user(["Earlier receipt:", pk.Image(PNG)]), Message.assistant("ok")]
    )
    out = tmp_path / "batch.jsonl"
    export_openai_batch(prompt, [{"input": "total?"}], out, model="gpt-4o-mini")
    line = json.loads(out.read_text().splitlines()[0])
    content = line["body"]["messages"][0]["content"]
    assert content[1]["image_url"]["url"] == f"data:image/png;base64,{B64}"


def test_fake_backend_takes_parts() -> None:
    seen: list[Request] = []

    def reply(request: Request) -> str:
        seen.append(request)
        return "ok"

    llm = pk.LLM(pk.FakeBackend(reply))
    assert llm.complete([vision_message(pk.Image(PNG))]).text == "ok"
    assert seen[0].messages is not None and seen[0].messages[0].has_media


def test_openai_sdk_backend_sends_the_same_parts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    openai = pytest.importorskip("openai")
    from sdk_respx import sdk_mock

    from promptkit.backends.openai_sdk import OpenAISDKBackend

    base = "http://127.0.0.1:8080/v1"
    memo = tmp_path / "memo.mp3"
    memo.write_bytes(b"ID3\x04" + bytes(40))
    with sdk_mock(monkeypatch) as router:
        route = router.post(f"{base}/chat/completions").respond(json=openai_reply())
        client = openai.OpenAI(base_url=base, api_key="sk-test-0123456789")
        llm = pk.LLM(OpenAISDKBackend(client=client, model="m"))
        llm.complete([Message.user(["Listen:", pk.Audio(memo), pk.Image(PNG, detail="low")])])
    content = sent(route)["messages"][0]["content"]
    assert content[1] == {"type": "input_audio", "input_audio": {
        "data": base64.b64encode(memo.read_bytes()).decode(), "format": "mp3"}}
    assert content[2]["image_url"] == {"url": f"data:image/png;base64,{B64}", "detail": "low"}


def test_telemetry_summarises_parts() -> None:
    from promptkit._telemetry import input_messages

    request = Request(messages=[
        Message.user(["Look:", pk.Image(PNG), pk.Image("https://example.com/a.png")])
    ])
    out = json.loads(input_messages(request))
    parts = out[0]["parts"]
    assert parts[0] == {"type": "text", "content": "Look:"}
    assert parts[1]["type"] == "blob" and parts[1]["mime_type"] == "image/png"
    assert parts[1]["size"] == len(PNG) and "content" not in parts[1]
    assert parts[2] == {"type": "uri", "modality": "image", "uri": "https://example.com/a.png"}
    assert B64 not in json.dumps(out)
