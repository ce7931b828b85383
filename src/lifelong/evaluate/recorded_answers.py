"""Closed-book answers a version gave at its own gate, kept in its folder so that the next
sleep's gate reads the parent's answers instead of generating them again.

Why: the gate asks every earlier fact closed-book, of the candidate and of the parent. Over
ten sleeps of ten facts that grew the gate from 35 s to 141 s, about 0.93 s per earlier
probe (README, cost). The parent's answers were measured when it was the candidate, on the
same weights; and a routed candidate answers an earlier probe with the parent's very weights
unless its router sends that probe to the new module (`consolidate.same_weights`).

One row per probe: the memory it asks about, a hash of the probe (no text of the memory is
kept here), and whether it was answered (null: its prompt did not fit the window). A forget
drops the rows of the memories it forgets (unlearn.scrub_versions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from lifelong.evaluate.probes import Probe
from lifelong.versions.layout import GATE_ANSWERS


def probe_key(probe: Probe) -> str:
    return hashlib.sha256(f"{probe.memory_id}\0{probe.prompt}\0{probe.answer}".encode()).hexdigest()[:32]


def save_answers(folder: Path, answers: Mapping[Probe, bool | None]) -> None:
    rows = ({"memory_ids": [p.memory_id] if p.memory_id is not None else [], "probe": probe_key(p), "answered": ok}
            for p, ok in answers.items())
    (folder / GATE_ANSWERS).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def load_answers(folder: Path) -> dict[str, bool | None]:
    """Probe hash -> answered, or nothing for a version that recorded none (made before this
    file existed, a merge, or a candidate that asked no probe)."""
    path = folder / GATE_ANSWERS
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {row["probe"]: row["answered"] for row in rows}
