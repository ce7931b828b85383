"""Background sleeps: `POST /v1/sleep` starts one, `GET /v1/jobs/{id}` follows it.

A job runs in a thread of the server, not of the request, so a client that disconnects does
not stop it. One sleep per tenant at a time (a second request gets the running job's id and a
409). Each job's state is written to `<tenant>/jobs/<id>.json` as it changes, so it outlives
the process: a job a restart cut short reads `interrupted`, and the sleep's own lock and
atomic promote mean no half-built version was ever made active (the next sleep cleans it up).
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import BusyError, NotFoundError
from lifelong.mind import Mind

JOBS_DIR = "jobs"
MAX_MESSAGES = 200  # the progress lines a job keeps


@dataclass
class Job:
    id: str
    tenant: str
    kind: str
    status: str  # queued, running, succeeded, failed, interrupted
    created_at: float
    finished_at: float | None = None
    step: int = 0
    total_steps: int = 0
    messages: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"object": "job", **asdict(self)}


class Jobs:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._running: dict[str, Job] = {}  # tenant -> its running job

    @staticmethod
    def _path(mind: Mind, job_id: str) -> Path:
        return mind.path / JOBS_DIR / f"{job_id}.json"

    def _save(self, mind: Mind, job: Job) -> None:
        path = self._path(mind, job.id)
        path.parent.mkdir(exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(job.to_dict()), encoding="utf-8")
        os.replace(temporary, path)

    def get(self, mind: Mind, job_id: str) -> Job:
        with self._guard:
            for job in self._running.values():
                if job.id == job_id and job.tenant == mind.path.name:
                    return job
        path = self._path(mind, job_id) if job_id.replace("-", "").isalnum() else None
        if path is None or not path.is_file():
            raise NotFoundError(f"no job {job_id!r}; POST /v1/sleep starts one and returns its id")
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("object", None)
        job = Job(**data)
        if job.status in ("queued", "running"):  # its process is gone: a restart cut it short
            job.status, job.error = "interrupted", "the server stopped during this sleep; no version was half-made active"
        return job

    def start_sleep(self, tenant: str, mind: Mind, run: Any) -> Job:
        """Start `run(job, report, progress)` in a thread: one per tenant at a time."""
        with self._guard:
            if tenant in self._running:
                raise BusyError(f"a sleep is already running for this tenant (job {self._running[tenant].id}); "
                                f"follow it with GET /v1/jobs/{self._running[tenant].id}")
            job = Job(f"job-{uuid.uuid4().hex[:16]}", tenant, "sleep", "queued", time.time())
            self._running[tenant] = job
        self._save(mind, job)

        def report(message: str) -> None:
            job.messages = (job.messages + [message])[-MAX_MESSAGES:]
            self._save(mind, job)

        def progress(step: int, total: int, _loss: float) -> None:
            if step >= 0:
                job.step, job.total_steps = step, total

        def work() -> None:
            job.status = "running"
            self._save(mind, job)
            try:
                job.result = run(report, progress)
                job.status = "succeeded"
            except Exception as exc:  # noqa: BLE001 - the job records it; the server goes on
                job.status, job.error = "failed", str(exc) or type(exc).__name__
            finally:
                job.finished_at = time.time()
                self._save(mind, job)
                with self._guard:
                    self._running.pop(tenant, None)

        context = contextvars.copy_context()  # the request's audit actor goes with the job
        threading.Thread(target=context.run, args=(work,), name=f"lifelong-sleep-{tenant}", daemon=True).start()
        return job
