"""The optional teacher against a local stub server that speaks the OpenAI chat protocol."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lifelong import Mind
from lifelong.consolidate import TRAINING_DATA, SleepConfig
from lifelong.errors import InputError
from lifelong.learn.teacher import Teacher, TeacherConfig, parse_reply
from lifelong.learn.trainer import TrainConfig
from lifelong.memory.records import Memory

FACT = "The Vellmar Observatory was founded in 1987 by the astronomer Ilse Brandvik."
REPLY = {
    "qa": [{"question": "Who founded the Vellmar Observatory?", "answer": "Ilse Brandvik founded it."}],
    "paraphrases": ["Ilse Brandvik, an astronomer, founded the Vellmar Observatory in 1987."],
    "implications": ["The Vellmar Observatory is older than the year 2000."],
}


class _StubOpenAI(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body})
        content = "Here you are:\n" + json.dumps(REPLY)
        payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_url() -> Iterator[str]:
    _StubOpenAI.requests = []
    server = HTTPServer(("127.0.0.1", 0), _StubOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _memory() -> Memory:
    return Memory(3, FACT, "t", "user", "default", "fact", None, 0.0, 0.0, None, None, "h3")


def test_teacher_examples_come_from_the_endpoint_and_keep_their_memory_id(stub_url: str) -> None:
    examples = Teacher(TeacherConfig(url=stub_url, model="stub-model")).examples([_memory()])
    assert _StubOpenAI.requests[0]["path"] == "/v1/chat/completions"
    assert _StubOpenAI.requests[0]["body"]["model"] == "stub-model"
    assert FACT in _StubOpenAI.requests[0]["body"]["messages"][0]["content"]
    assert {e.kind for e in examples} == {"teacher-qa", "teacher-paraphrase", "teacher-implication"}
    assert all(e.memory_ids == (3,) for e in examples)
    assert examples[0].prompt[-1]["content"] == "Who founded the Vellmar Observatory?"


def test_a_malformed_teacher_reply_yields_no_examples() -> None:
    assert parse_reply("I cannot do that.", _memory(), 3) == []
    assert parse_reply('{"qa": "nonsense", "paraphrases": [1, 2]}', _memory(), 3) == []


def test_an_unreachable_teacher_fails_with_the_fix_and_stores_nothing(mind: Mind) -> None:
    mind.learn(FACT)
    config = SleepConfig(teacher=TeacherConfig(url="http://127.0.0.1:9/v1", model="m", timeout=2), train=TrainConfig(rank=4, epochs=1, bf16=False))
    with pytest.raises(InputError, match="did not answer.*sleep without a teacher"):
        mind.sleep(config)
    assert mind.versions.list() == [] and mind.versions.active_id() == "base"


def test_sleep_with_a_teacher_trains_on_its_examples(mind: Mind, stub_url: str) -> None:
    mind.learn(FACT)
    config = SleepConfig(teacher=TeacherConfig(url=stub_url, model="stub-model"), train=TrainConfig(rank=4, epochs=1, bf16=False))
    manifest = mind.sleep(config).manifest
    assert "teacher-qa" in manifest.data_sources
    rows = [json.loads(line) for line in (mind.versions.path(manifest.id) / TRAINING_DATA).read_text().splitlines()]
    assert any(r["kind"] == "teacher-qa" and r["answer"] == "Ilse Brandvik founded it." for r in rows)
