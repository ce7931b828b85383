"""`lifelong serve`: an OpenAI-compatible HTTP API over tenant minds.

Any OpenAI client talks to it: `GET /v1/models`, `POST /v1/chat/completions` (streamed or not,
with usage counts). Each answer also carries `lifelong`: the memories it used and cited, and
the ids of the turns it remembered (an OpenAI client ignores the extra field). Requests say
who they are with `Authorization: Bearer KEY`; the key alone decides the tenant, so nothing
in a body can reach another tenant's memories. Memories are learned, listed and forgotten
over `/v1/memories`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifelong.errors import BusyError, InputError, LifelongError, NotFoundError
from lifelong.memory.records import NewMemory
from lifelong.mind import Mind, PreparedAnswer
from lifelong.model.language_model import LanguageModel
from lifelong.serve.batching import GENERATION_LOCK, Batcher, usage
from lifelong.serve.dashboard import PAGE, latest_plots
from lifelong.serve.jobs import Jobs
from lifelong.serve.keys import KeyRing
from lifelong.serve.tenants import TenantMinds
from lifelong.serve.upstream import Upstream, UpstreamError
from lifelong.versions import BASE_VERSION
from lifelong.versions.audit import acting_as

SERVED_NAME = "lifelong"  # `model` naming the active version, whatever its id
MAX_TOKENS = 512
MAX_OTHER_VERSIONS = 4  # non-active versions kept loaded for requests that name them
FEEDBACK_FILE = "feedback.jsonl"  # ratings and comments, one JSON line each


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # OpenAI's content parts: the text ones count
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class LifelongOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    remember: bool = True  # remember the last user turn, as `lifelong chat` does
    use_memory: bool = True
    k: int = Field(3, ge=1, le=20)
    namespace: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model: str = SERVED_NAME
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = Field(None, ge=0)
    n: int = Field(1, ge=1, le=1)
    lifelong: LifelongOptions = Field(default_factory=LifelongOptions)


class SleepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int | None = Field(None, ge=1, le=50)
    strategy: str | None = None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    completion_id: str | None = None
    rating: int | None = Field(None, ge=-1, le=1)  # -1 bad, 0 neutral, 1 good: kept for later use
    comment: str | None = Field(None, max_length=2000)
    correction: str | None = Field(None, min_length=1, max_length=20000)  # learned as a fact; supersedes what it corrects
    supersedes: int | None = Field(None, ge=1)  # the memory it replaces, when known


class MemoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    texts: list[str] | None = None
    source: str = "api"
    trust: Literal["untrusted", "user", "trusted"] = "user"
    namespace: str = "default"


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    """OpenAI's error shape, so clients raise their usual exceptions."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def _status_of(exc: LifelongError) -> int:
    if isinstance(exc, UpstreamError):
        return 502
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, BusyError):
        return 409
    if isinstance(exc, InputError):
        return 400
    return 422


def create_app(root: Path, *, language_model: LanguageModel | None = None, embedder: Any = None,
               batch_window: float = 0.01, max_batch: int = 16, results: Path = Path("results"),
               upstream: Upstream | None = None) -> FastAPI:
    """The server for the mind directory `root` (tenants under root/tenants/, keys in root/keys.db);
    the dashboard shows the latest plots of the `lifelong bench` folder `results`. With
    `upstream`, answers are generated by that OpenAI-compatible server (serve/upstream.py)."""
    tenants = TenantMinds(root, language_model, embedder)
    keys = KeyRing(root)
    batcher = Batcher(batch_window, max_batch)  # max_batch=1: one request at a time (the load benchmark's baseline)
    jobs = Jobs()
    other_versions: dict[tuple[str, str, Any], LanguageModel] = {}  # models of versions other than the active one

    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()
        tenants.close()
        keys.close()

    app = FastAPI(title="lifelong", version="1", lifespan=lifespan,
                  description="OpenAI-compatible chat over a model that remembers, per tenant.")
    app.state.tenants, app.state.keys, app.state.batcher = tenants, keys, batcher

    @app.exception_handler(LifelongError)
    async def lifelong_error(_request: Request, exc: LifelongError) -> JSONResponse:
        return _error(_status_of(exc), str(exc), "invalid_request_error" if _status_of(exc) < 500 else "server_error")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")), "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        return _error(exc.status_code, str(exc.detail), kind)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:  # never a traceback in a response
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details", "server_error")

    @app.middleware("http")
    async def attribute_to_tenant(request: Request, call_next: Any) -> Any:
        """Audit lines a request writes name its tenant ("api:acme"), not the server's OS user."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        who = keys.tenant_for(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        request.state.tenant = who  # the one key lookup of this request; `tenant` below reads it
        if who is None:
            return await call_next(request)
        with acting_as(f"api:{who}"):
            return await call_next(request)

    def tenant(request: Request) -> str:
        found = getattr(request.state, "tenant", None)
        if found is None:
            raise StarletteHTTPException(401, "missing, unknown or revoked API key; pass Authorization: Bearer KEY "
                                              "(create one with `lifelong keys create TENANT`)")
        return found

    def served(mind: Mind, model: str) -> tuple[str, LanguageModel | None]:
        """The version a request names: `lifelong` (or the active id) is the active version."""
        active = mind.versions.active_id()
        if model in (SERVED_NAME, active):
            return active, None
        known = {BASE_VERSION, *(m.id for m in mind.versions.list())}
        if model not in known:
            raise NotFoundError(f"model {model!r} is not served here; GET /v1/models lists {SERVED_NAME!r} and the version ids")
        if model == BASE_VERSION:
            return model, mind.base_model
        key = (str(mind.path), model, mind.store.revision())  # a forget since changes what the version may serve
        if key not in other_versions:
            while len(other_versions) >= MAX_OTHER_VERSIONS:  # each is a copy of the weights: keep a few
                other_versions.pop(next(iter(other_versions)))
            other_versions[key] = mind.version_model(model)
        return model, other_versions[key]

    @app.get("/v1/models")
    def list_models(who: str = Depends(tenant)) -> dict[str, Any]:
        mind = tenants.mind(who)
        with tenants.lock(who):
            versions = [BASE_VERSION, *(m.id for m in mind.versions.list())]
            active = mind.versions.active_id()
        created = int(mind.path.stat().st_ctime)
        data = [{"id": SERVED_NAME, "object": "model", "created": created, "owned_by": who, "active_version": active}]
        data += [{"id": v, "object": "model", "created": created, "owned_by": who} for v in versions]
        return {"object": "list", "data": data}

    def prepare(who: str, body: ChatRequest) -> tuple[Mind, PreparedAnswer, str, int]:
        mind = tenants.mind(who)
        users = [m for m in body.messages if m.role == "user" and m.text().strip()]
        if not users:
            raise InputError("messages has no user turn with text; the last user message is the question")
        question = users[-1].text()
        last = max(i for i, m in enumerate(body.messages) if m.role == "user" and m.text().strip())
        history = [{"role": m.role, "content": m.text()} for m in body.messages[:last] if m.role in ("user", "assistant")]
        max_new = body.max_completion_tokens or body.max_tokens or 256
        with tenants.lock(who):
            version, lm = served(mind, body.model)
            prepared = mind.prepare_answer(question, history=history, use_memory=body.lifelong.use_memory,
                                           k=body.lifelong.k, namespace=body.lifelong.namespace,
                                           max_new_tokens=max_new, temperature=body.temperature)
        if lm is not None:  # another version than the active one: same prompt, that version's weights
            prepared = PreparedAnswer(prepared.question, lm, prepared.messages, prepared.retrieved, prepared.memories)
        return mind, prepared, version, max_new

    def remember(who: str, mind: Mind, body: ChatRequest, question: str) -> list[int]:
        if not body.lifelong.remember:
            return []
        with tenants.lock(who):
            return mind.remember_turn(question, namespace=body.lifelong.namespace or "default").created

    def extra(prepared: PreparedAnswer, text: str, remembered: list[int], version: str) -> dict[str, Any]:
        answer = prepared.answer(text)
        return {"version": version, "citations": [m.id for m in answer.citations], "remembered": remembered,
                "memories": [{"id": h.memory.id, "text": h.memory.text, "source": h.memory.source, "trust": h.memory.trust,
                              "score": h.score} for h in answer.retrieved]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatRequest, who: str = Depends(tenant)) -> Any:
        mind, prepared, version, max_new = await run_in_threadpool(prepare, who, body)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        seed = body.seed or 0
        if body.stream:
            return StreamingResponse(_stream(who, mind, body, prepared, version, max_new, completion_id, created, seed),
                                     media_type="text/event-stream")
        if upstream is not None:  # generation there, memory here
            text, counts, finish = await upstream.complete(prepared.messages, body.model, max_new, body.temperature)
            counts = counts or usage(prepared.lm, prepared.messages, text)
            version = f"upstream {upstream.url}"
        else:
            text = await asyncio.wrap_future(batcher.submit(prepared.lm, prepared.messages, max_new, body.temperature, seed))
            counts = usage(prepared.lm, prepared.messages, text)
            finish = "length" if counts["completion_tokens"] >= max_new else "stop"
        remembered = await run_in_threadpool(remember, who, mind, body, prepared.question)
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": counts, "lifelong": extra(prepared, text, remembered, version)}

    async def _stream(who: str, mind: Mind, body: ChatRequest, prepared: PreparedAnswer, version: str, max_new: int,
                      completion_id: str, created: int, seed: int) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}
            return f"data: {json.dumps(payload)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        pieces: list[str] = []
        if upstream is not None:
            async for piece in upstream.stream(prepared.messages, body.model, max_new, body.temperature):
                pieces.append(piece)
                yield chunk({"content": piece})
            version = f"upstream {upstream.url}"
        else:
            stream = _locked_stream(prepared, max_new, body.temperature, seed)
            try:
                while True:
                    piece = await run_in_threadpool(next, stream, None)
                    if piece is None:
                        break
                    pieces.append(piece)
                    yield chunk({"content": piece})
            finally:  # the client went away mid-answer: stop generating and free the model
                await run_in_threadpool(stream.close)
        text = "".join(pieces)
        remembered = await run_in_threadpool(remember, who, mind, body, prepared.question)
        counts = usage(prepared.lm, prepared.messages, text)
        yield chunk({}, "length" if counts["completion_tokens"] >= max_new else "stop",
                    lifelong=extra(prepared, text, remembered, version))
        if body.stream_options and body.stream_options.include_usage:
            yield (f"data: {json.dumps({'id': completion_id, 'object': 'chat.completion.chunk', 'created': created, 'model': body.model, 'choices': [], 'usage': counts})}\n\n")
        yield "data: [DONE]\n\n"

    @app.post("/v1/memories")
    def learn(body: MemoryIn, who: str = Depends(tenant)) -> dict[str, Any]:
        texts = ([body.text] if body.text is not None else []) + list(body.texts or [])
        if not texts or not all(t.strip() for t in texts):
            raise InputError("give text (one memory) or texts (several), none empty")
        mind = tenants.mind(who)
        with tenants.lock(who):
            report = mind.learn_records([NewMemory(t, body.source, body.trust, body.namespace) for t in texts])
        return report.to_dict()

    @app.get("/v1/memories")
    def memories(who: str = Depends(tenant), query: str | None = None, limit: int = 100, namespace: str | None = None,
                 source: str | None = None, contains: str | None = None) -> dict[str, Any]:
        if not 1 <= limit <= 10_000:
            raise InputError("limit must be between 1 and 10000")
        mind = tenants.mind(who)
        with tenants.lock(who):
            if query:
                hits = mind.recall(query, min(limit, 100), namespace=namespace)
                return {"object": "list", "data": [{**h.memory.to_dict(), "score": h.score} for h in hits]}
            found = mind.memories(namespace=namespace, source=source, contains=contains, limit=limit)
        return {"object": "list", "data": [m.to_dict() for m in found]}

    @app.delete("/v1/memories/{memory_id}")
    def forget(memory_id: int, who: str = Depends(tenant)) -> dict[str, Any]:
        mind = tenants.mind(who)
        with tenants.lock(who), GENERATION_LOCK:  # a forget may measure its proof with the model
            return mind.forget_many([memory_id]).to_dict()

    @app.post("/v1/sleep", status_code=202)
    def start_sleep(body: SleepIn | None = None, who: str = Depends(tenant)) -> dict[str, Any]:
        """Consolidate the tenant's new memories in the background; returns the job to follow."""
        from dataclasses import replace

        from lifelong.consolidate import SleepConfig
        from lifelong.learn.strategies import parse_strategy

        body = body or SleepIn()
        config = SleepConfig()
        if body.strategy:
            parse_strategy(body.strategy)  # a bad name is a 400 now, not a failed job later
            config = replace(config, strategy=body.strategy)
        if body.epochs:
            config = replace(config, train=replace(config.train, epochs=body.epochs))
        mind = tenants.mind(who)

        def run(report: Any, progress: Any) -> dict[str, Any]:
            # its own connection to the tenant's store: requests go on while it sleeps
            with Mind.open(mind.path, embedder=tenants.embedder, language_model=tenants.language_model) as sleeper:
                result = sleeper.sleep(config, report=report, progress=progress)
            return {"message": result.message, "activated": result.activated,
                    "version": result.manifest.id if result.manifest else None}

        return jobs.start_sleep(who, mind, run).to_dict()

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str, who: str = Depends(tenant)) -> dict[str, Any]:
        return jobs.get(tenants.mind(who), job_id).to_dict()

    @app.post("/v1/feedback")
    def feedback(body: FeedbackIn, who: str = Depends(tenant)) -> dict[str, Any]:
        """A rating is stored; a correction is learned as the tenant's fact, replacing the one
        it corrects (named by id, or found by the contradiction check)."""
        if body.rating is None and body.correction is None:
            raise InputError("give a rating (-1, 0 or 1) or a correction (the right fact), or both")
        mind = tenants.mind(who)
        result: dict[str, Any] = {"rating_stored": body.rating is not None, "created": [], "superseded": []}
        with tenants.lock(who):
            if body.supersedes is not None:
                mind.store.get(body.supersedes)  # a 404 before anything is written
            if body.rating is not None or body.comment:
                record = {"time": time.time(), "completion_id": body.completion_id, "rating": body.rating, "comment": body.comment}
                with open(mind.path / FEEDBACK_FILE, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
                mind.versions.audit("feedback", mind.versions.active_id(), rating=body.rating, completion=body.completion_id)
            if body.correction is not None:
                report = mind.learn(body.correction, source="feedback", supersedes=[body.supersedes] if body.supersedes else ())
                with GENERATION_LOCK:
                    screened = mind.screen_pending()  # finds what it corrects when no id was given
                result["created"] = report.created
                result["superseded"] = sorted({*report.superseded, *(i for s in screened for i in s.supersedes)})
                result["quarantined"] = [s.memory_id for s in screened if s.quarantine]
        return result

    @app.get("/v1/versions")
    def versions(who: str = Depends(tenant)) -> dict[str, Any]:
        mind = tenants.mind(who)
        active = mind.versions.active_id()
        data = [{**json.loads(m.to_json()), "active": m.id == active} for m in mind.versions.list()]
        return {"object": "list", "active": active, "data": data}

    @app.get("/v1/audit")
    def audit(who: str = Depends(tenant), limit: int = 200) -> dict[str, Any]:
        from lifelong.versions.audit import AuditLog

        log = AuditLog(tenants.mind(who).versions.audit_log)
        check = log.verify()
        return {"object": "list", "intact": check.intact, "problems": check.problems, "data": log.records()[-max(1, min(limit, 5000)):]}

    @app.get("/v1/quarantine")
    def quarantine(who: str = Depends(tenant)) -> dict[str, Any]:
        mind = tenants.mind(who)
        with tenants.lock(who), GENERATION_LOCK:
            held = mind.quarantined()
        return {"object": "list", "data": [m.to_dict() for m in held]}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return PAGE

    @app.get("/v1/plots")
    def plots() -> dict[str, Any]:
        """The latest benchmark run's plots (not tenant data: no key needed)."""
        return {"object": "list", "data": latest_plots(results)}

    @app.get("/plots/{study}/{run}/{name}", include_in_schema=False)
    def plot_file(study: str, run: str, name: str) -> FileResponse:
        known = {(p["study"], p["run"], p["file"]) for p in latest_plots(results)}
        if (study, run, name) not in known:  # only listed files: no path reaches outside the results folder
            raise StarletteHTTPException(404, f"no plot {study}/{run}/{name}; GET /v1/plots lists them")
        return FileResponse(results / study / run / name, media_type="image/png")

    return app


def _locked_stream(prepared: PreparedAnswer, max_new: int, temperature: float, seed: int) -> Iterator[str]:
    """The model streams under the generation lock (taken and released in the worker thread
    that runs this generator's first and last step)."""
    with GENERATION_LOCK:
        yield from prepared.lm.stream(prepared.messages, max_new, temperature, seed)
