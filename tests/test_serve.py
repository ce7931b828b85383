"""`lifelong serve`: an OpenAI-compatible API where the key alone decides the tenant, answers
stream token by token, requests arriving together share a batch, and the official `openai`
client works against a live server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lifelong.mind import Mind
from lifelong.serve.app import create_app
from lifelong.serve.batching import Batcher
from lifelong.serve.keys import KEYS_DB, KeyRing
from lifelong.serve.live import serving

LISBON = "The Korvath office is in Lisbon."
PORTO = "The Korvath office is in Porto."
QUESTION = {"role": "user", "content": "Where is the Korvath office?"}


@pytest.fixture
def root(tmp_path: Path, tiny_lm, embedder) -> Path:
    Mind.init(tmp_path / "server", embedder=embedder, language_model=tiny_lm).close()
    return tmp_path / "server"


@pytest.fixture
def client(root: Path, tiny_lm, embedder) -> Iterator[TestClient]:
    with TestClient(create_app(root, language_model=tiny_lm, embedder=embedder)) as test_client:
        yield test_client


def _key(root: Path, tenant: str) -> dict[str, str]:
    ring = KeyRing(root)
    try:
        return {"Authorization": f"Bearer {ring.create(tenant)}"}
    finally:
        ring.close()


def _chat(client: TestClient, key: dict[str, str], **body: object) -> dict:
    response = client.post("/v1/chat/completions", headers=key, json={"messages": [QUESTION], "max_tokens": 6, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_key_alone_decides_the_tenant(client: TestClient, root: Path) -> None:
    acme, globex = _key(root, "acme"), _key(root, "globex")
    assert client.post("/v1/memories", headers=acme, json={"text": LISBON}).json()["created"] == [1]
    assert client.post("/v1/memories", headers=globex, json={"text": PORTO}).json()["created"] == [1]
    for key, own in ((acme, LISBON), (globex, PORTO)):
        found = client.get("/v1/memories", headers=key, params={"query": "Korvath office"}).json()["data"]
        assert [m["text"] for m in found] == [own]
        used = _chat(client, key, lifelong={"remember": False})["lifelong"]["memories"]
        assert [m["text"] for m in used] == [own]
    # a body naming the other tenant changes nothing; the options object refuses unknown fields
    forged = _chat(client, acme, user="globex", tenant="globex", lifelong={"remember": False})
    assert [m["text"] for m in forged["lifelong"]["memories"]] == [LISBON]
    refused = client.post("/v1/chat/completions", headers=acme, json={"messages": [QUESTION], "lifelong": {"tenant": "globex"}})
    assert refused.status_code == 400 and "tenant" in refused.json()["error"]["message"]
    # ids are per tenant: acme deleting #1 deletes its own #1 only
    assert client.delete("/v1/memories/1", headers=acme).json()["forgotten"] == [1]
    assert [m["text"] for m in client.get("/v1/memories", headers=globex).json()["data"]] == [PORTO]
    assert client.get("/v1/memories", headers=acme).json()["data"] == []
    assert (root / "tenants" / "acme" / "memory.db").is_file() and (root / "tenants" / "globex" / "memory.db").is_file()


def test_a_missing_unknown_or_revoked_key_gets_401(client: TestClient, root: Path) -> None:
    key = _key(root, "acme")
    assert client.get("/v1/models", headers=key).status_code == 200
    ring = KeyRing(root)
    ring.revoke("acme")
    ring.close()
    for headers in (key, {}, {"Authorization": "Bearer ll-nosuchkey"}, {"Authorization": "Basic abc"}):
        response = client.get("/v1/models", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_a_completion_has_openai_shape_usage_and_the_answer_ask_gives(client: TestClient, root: Path, tiny_lm) -> None:
    key = _key(root, "acme")
    client.post("/v1/memories", headers=key, json={"text": LISBON})
    body = _chat(client, key, lifelong={"remember": False})
    choice = body["choices"][0]
    assert body["object"] == "chat.completion" and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    with Mind.open(root / "tenants" / "acme", embedder=client.app.state.tenants.embedder, language_model=tiny_lm) as mind:
        assert choice["message"]["content"] == mind.ask(QUESTION["content"], max_new_tokens=6).text
        prompt = mind.prepare_answer(QUESTION["content"], max_new_tokens=6).messages
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(tiny_lm.encode(tiny_lm.format_chat(prompt)))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] and usage["completion_tokens"] > 0
    models = client.get("/v1/models", headers=key).json()
    assert [m["id"] for m in models["data"]] == ["lifelong", "base"] and models["data"][0]["owned_by"] == "acme"


def test_a_streamed_answer_arrives_in_pieces_that_join_to_the_whole_answer(client: TestClient, root: Path) -> None:
    key = _key(root, "acme")
    whole = _chat(client, key, max_tokens=12, lifelong={"remember": False})["choices"][0]["message"]["content"]
    events = []
    with client.stream("POST", "/v1/chat/completions", headers=key,
                       json={"messages": [QUESTION], "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True},
                             "lifelong": {"remember": False}}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert sum(bool(p) for p in pieces) > 1 and "".join(pieces) == whole
    assert [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]][0]["lifelong"]["version"] == "base"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_chat_turns_are_remembered_unless_the_request_opts_out(client: TestClient, root: Path) -> None:
    key = _key(root, "acme")
    remembered = _chat(client, key)["lifelong"]["remembered"]
    assert len(remembered) == 1
    assert _chat(client, key, lifelong={"remember": False})["lifelong"]["remembered"] == []
    texts = [m["text"] for m in client.get("/v1/memories", headers=key).json()["data"]]
    assert texts == [QUESTION["content"]] and client.get("/v1/memories", headers=key).json()["data"][0]["source"] == "chat"


@pytest.mark.parametrize("body, status, words", [
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "system", "content": "hi"}]}, 400, "no user turn"),
    ({"messages": [QUESTION], "n": 2}, 400, "n"),
    ({"messages": [QUESTION], "max_tokens": 0}, 400, "max_tokens"),
    ({"messages": [QUESTION], "temperature": -1}, 400, "temperature"),
    ({"messages": [QUESTION], "model": "v99"}, 404, "v99"),
    ({"messages": "hello"}, 400, "messages"),
])
def test_bad_requests_get_one_clear_error_and_no_traceback(client: TestClient, root: Path, body: dict, status: int, words: str) -> None:
    response = client.post("/v1/chat/completions", headers=_key(root, "acme"), json=body)
    assert response.status_code == status and words in response.json()["error"]["message"]
    assert "Traceback" not in response.text


def test_requests_arriving_together_are_generated_in_one_batch(tiny_lm) -> None:
    batcher = Batcher(window_seconds=0.5)
    prompts = [[{"role": "user", "content": f"Question {i}?"}] for i in range(4)]
    futures = [batcher.submit(tiny_lm, p, 5, 0.0) for p in prompts]
    answers = [f.result(timeout=60) for f in futures]
    batcher.close()
    assert batcher.batches == [4]
    assert answers == tiny_lm.generate_batch(prompts, max_new_tokens=5)


def test_keys_are_shown_once_and_stored_hashed(run_cli, root: Path) -> None:
    code, out, _ = run_cli("keys", "create", "acme", "--json", "--mind", str(root))
    created = json.loads(out)
    assert code == 0 and created["tenant"] == "acme" and created["key"].startswith("ll-")
    assert created["key"].encode() not in (root / KEYS_DB).read_bytes()
    code, out, _ = run_cli("keys", "list", "--json", "--mind", str(root))
    assert [k["tenant"] for k in json.loads(out)] == ["acme"] and created["key"] not in out
    assert run_cli("keys", "create", "Not A Name", "--mind", str(root))[0] == 2
    assert run_cli("keys", "revoke", "acme", "--mind", str(root))[:2] == (0, "revoked 1 key of acme\n")
    code, _, err = run_cli("keys", "revoke", "acme", "--mind", str(root))
    assert code == 5 and "no live key or tenant 'acme'" in err


def test_the_openai_client_works_against_a_live_server(root: Path, tiny_lm, embedder) -> None:
    import openai

    with serving(create_app(root, language_model=tiny_lm, embedder=embedder)) as url:
        key = _key(root, "acme")["Authorization"].split()[1]
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        assert "lifelong" in [m.id for m in client.models.list()]
        reply = client.chat.completions.create(model="lifelong", messages=[QUESTION], max_tokens=6,
                                               extra_body={"lifelong": {"remember": False}})
        assert reply.choices[0].message.content and reply.usage.total_tokens > 0
        streamed = client.chat.completions.create(model="lifelong", messages=[QUESTION], max_tokens=6, stream=True,
                                                  extra_body={"lifelong": {"remember": False}})
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == reply.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="ll-wrong", max_retries=0).models.list()


def _wait(client: TestClient, key: dict[str, str], job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=key).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_a_sleep_runs_in_the_background_one_per_tenant_and_its_record_outlives_the_server(
        client: TestClient, root: Path, tiny_lm, embedder) -> None:
    acme, globex = _key(root, "acme"), _key(root, "globex")
    client.post("/v1/memories", headers=acme, json={"texts": [LISBON, "The Korvath bridge opened in 1964."]})
    started = client.post("/v1/sleep", headers=acme, json={"epochs": 1})
    assert started.status_code == 202 and started.json()["status"] in ("queued", "running")
    again = client.post("/v1/sleep", headers=acme, json={"epochs": 1})
    assert again.status_code == 409 and started.json()["id"] in again.json()["error"]["message"]
    assert client.get(f"/v1/jobs/{started.json()['id']}", headers=globex).status_code == 404  # another tenant's job
    while client.get(f"/v1/jobs/{started.json()['id']}", headers=acme).json()["status"] in ("queued", "running"):
        assert client.get("/v1/models", headers=acme).status_code == 200  # requests go on during the sleep
        time.sleep(0.5)
    done = _wait(client, acme, started.json()["id"])
    assert done["status"] == "succeeded" and done["result"]["version"] == "v1" and done["total_steps"] > 0
    assert any("selected 2 new memories" in m for m in done["messages"])
    assert [v["id"] for v in client.get("/v1/versions", headers=acme).json()["data"]] == ["v1"]
    actors = {e["event"]: e["actor"] for e in client.get("/v1/audit", headers=acme).json()["data"]}
    assert actors["learn"] == actors["created"] == "api:acme"  # the request's tenant, in the job's thread too
    assert client.get("/v1/versions", headers=globex).json()["data"] == []
    client.post("/v1/memories", headers=globex, json={"text": PORTO})  # after acme's sleep, each still answers from its own
    assert [m["text"] for m in _chat(client, globex, lifelong={"remember": False})["lifelong"]["memories"]] == [PORTO]
    assert LISBON in [m["text"] for m in _chat(client, acme, lifelong={"remember": False})["lifelong"]["memories"]]
    assert PORTO not in [m["text"] for m in _chat(client, acme, lifelong={"remember": False})["lifelong"]["memories"]]
    for _ in range(2):  # a request may name a version other than the active one (loaded once)
        assert _chat(client, acme, model="v1", lifelong={"remember": False})["lifelong"]["version"] == "v1"
    assert _chat(client, acme, model="base", lifelong={"remember": False})["lifelong"]["version"] == "base"
    with TestClient(create_app(root, language_model=tiny_lm, embedder=embedder)) as restarted:  # a new server process
        assert restarted.get(f"/v1/jobs/{done['id']}", headers=acme).json()["status"] == "succeeded"
    cut = root / "tenants" / "acme" / "jobs" / "job-cutshort.json"
    cut.write_text(json.dumps({**done, "id": "job-cutshort", "status": "running", "result": None}))
    assert client.get("/v1/jobs/job-cutshort", headers=acme).json()["status"] == "interrupted"


def test_feedback_stores_a_rating_and_a_correction_replaces_the_fact(client: TestClient, root: Path) -> None:
    key = _key(root, "acme")
    [old] = client.post("/v1/memories", headers=key, json={"text": LISBON}).json()["created"]
    reply = client.post("/v1/feedback", headers=key, json={"completion_id": "chatcmpl-1", "rating": -1, "correction": PORTO,
                                                           "supersedes": old}).json()
    assert reply["superseded"] == [old] and reply["rating_stored"]
    current = client.get("/v1/memories", headers=key, params={"query": "Korvath office"}).json()["data"]
    assert [m["text"] for m in current if m["current"]] == [PORTO]
    assert json.loads((root / "tenants" / "acme" / "feedback.jsonl").read_text())["rating"] == -1
    assert any(e["event"] == "feedback" for e in client.get("/v1/audit", headers=key).json()["data"])
    assert client.post("/v1/feedback", headers=key, json={}).status_code == 400
    assert client.post("/v1/feedback", headers=key, json={"correction": "x", "supersedes": 99}).status_code == 404


def test_with_an_upstream_memory_stays_here_and_the_answer_comes_from_there(
        tmp_path: Path, tiny_lm, embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """--upstream: another OpenAI-compatible server (here a second lifelong server) generates;
    retrieval, remembering and citations stay with the proxy; an unreachable upstream is a 502."""
    import httpx

    from lifelong.serve.upstream import Upstream

    far = tmp_path / "upstream"
    Mind.init(far, embedder=embedder, language_model=tiny_lm).close()
    far_key = _key(far, "proxy")
    with serving(create_app(far, language_model=tiny_lm, embedder=embedder)) as far_url:
        monkeypatch.setenv("LIFELONG_UPSTREAM_KEY", far_key["Authorization"].split()[1])
        near = tmp_path / "proxy"
        Mind.init(near, embedder=embedder, language_model=tiny_lm).close()
        app = create_app(near, language_model=tiny_lm, embedder=embedder, upstream=Upstream(f"{far_url}/v1"))
        with TestClient(app) as client:
            key = _key(near, "acme")
            client.post("/v1/memories", headers=key, json={"text": LISBON})
            reply = _chat(client, key)
            assert reply["lifelong"]["version"].startswith("upstream") and [m["text"] for m in reply["lifelong"]["memories"]] == [LISBON]
            assert reply["usage"]["total_tokens"] > 0 and len(reply["lifelong"]["remembered"]) == 1  # remembered here
            forwarded = httpx.get(f"{far_url}/v1/memories", headers=far_key).json()["data"]
            assert any(LISBON in m["text"] and QUESTION["content"] in m["text"] for m in forwarded)  # the prompt went there
            with client.stream("POST", "/v1/chat/completions", headers=key,
                               json={"messages": [QUESTION], "max_tokens": 6, "stream": True, "lifelong": {"remember": False}}) as streamed:
                events = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
            assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
            assert events[-1]["lifelong"]["version"].startswith("upstream")
    gone = create_app(tmp_path / "proxy", language_model=tiny_lm, embedder=embedder, upstream=Upstream(f"{far_url}/v1"))
    with TestClient(gone) as client:
        response = client.post("/v1/chat/completions", headers=_key(tmp_path / "proxy", "acme"), json={"messages": [QUESTION]})
    assert response.status_code == 502 and "could not be reached" in response.json()["error"]["message"]
