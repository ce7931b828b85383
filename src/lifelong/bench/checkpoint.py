"""Finished units of a long study, kept on disk, so a run cut short (a laptop lid, a session
limit, a crash) can go on with `--resume` instead of starting again from zero.

A unit is one piece of a study whose result does not depend on the others: a SQuAD mode, one
passage of the single-passage mode. Units are only reused by a run with the same study,
model, data and settings; each keeps the code version and seconds it took, so the report can
say what was resumed and from which commit.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from lifelong.bench.output import as_json, write_json
from lifelong.progress import console

T = TypeVar("T")


class Checkpoint:
    """Units of one study run, written to `path` as each finishes."""

    def __init__(self, path: Path, identity: dict[str, Any], code: str, resume: bool) -> None:
        self.path, self.identity, self.code = path, identity, code
        self.units: dict[str, dict[str, Any]] = {}
        self.resumed: list[str] = []
        if path.exists():
            if resume:
                self.units = json.loads(path.read_text(encoding="utf-8"))["units"]
                console().print(f"resuming {len(self.units)} finished unit(s) from {path}")
            else:
                console().print(f"[yellow]a partial run with these settings was at {path}; starting again "
                                f"(--resume would have continued it)[/yellow]")

    @classmethod
    def for_study(cls, out_root: Path, study: str, identity: dict[str, Any], code: str, resume: bool) -> Checkpoint:
        """The checkpoint file is named by a digest of what makes results comparable."""
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return cls(out_root / study / f"partial-{digest}.json", identity, code, resume)

    def unit(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()`'s JSON-able result, or the one an earlier process stored under `key`."""
        if key in self.units:
            self.resumed.append(key)
            return self.units[key]["value"]
        started = time.perf_counter()
        value = as_json(compute())  # the same shape whether computed now or read back
        self.units[key] = {"value": value, "seconds": time.perf_counter() - started, "code": self.code,
                           "finished": datetime.now(UTC).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"identity": self.identity, "units": self.units})
        return value

    def summary(self) -> dict[str, Any]:
        """What results.json records about units taken from earlier processes."""
        resumed = [self.units[k] for k in self.resumed]
        return {"units": len(self.units), "resumed_units": list(self.resumed),
                "resumed_seconds": sum(u["seconds"] for u in resumed),
                "resumed_codes": sorted({u["code"] for u in resumed})}

    def finish(self) -> None:
        """The study's results now hold every unit; the partial file has done its job."""
        self.path.unlink(missing_ok=True)
