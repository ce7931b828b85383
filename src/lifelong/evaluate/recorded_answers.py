"""Closed-book answers a version gave at its own gate, kept in its folder so that the next
sleep's gate reads the parent's answers instead of generating them again.

Why: the gate asks every earlier fact closed-book, of the candidate and of the parent. Over
ten sleeps of ten facts that grew the gate from 35 s to 141 s, about 0.93 s per earlier
probe (README, cost). The parent's answers were measured when it was the candidate, on the
same weights; and a routed candidate answers an earlier probe with the parent's very weights
unless its router sends that probe to the new module (`consolidate.same_weights`).

The file's first row is a fingerprint of how the answers were asked (model, window, the
closed-book prompt as the chat template renders it, answer length, numeric precision); a
mind outlives upgrades of lifelong and moves between machines, so answers asked any other
way are not read. Then one row per probe: the memory it asks about (a forget drops the rows
of what it forgets, unlearn.scrub_versions), a hash of the probe (no text of the memory is
kept here), and whether it was answered (null: its prompt did not fit the window, so it was
not asked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from lifelong.evaluate.probes import PROBE_ANSWER_TOKENS, Probe
from lifelong.model.language_model import LanguageModel
from lifelong.prompt import closed_book
from lifelong.versions.layout import GATE_ANSWERS

RECORD_FORMAT = 1  # raise when what "answered" means changes (scoring, probe wording): older records stop being read


def probe_key(probe: Probe) -> str:
    """A probe's identity without its text. The memory id is part of it (two memories may share
    a sentence opening); 128 bits of the hash keep collisions out of reach for any mind."""
    return hashlib.sha256(f"{probe.memory_id}\0{probe.prompt}\0{probe.answer}".encode()).hexdigest()[:32]


def asked_with(lm: LanguageModel) -> str:
    """How closed-book answers are asked of `lm`: recorded answers count only where this matches."""
    dtype = str(next(lm.model.parameters()).dtype)
    setup = [RECORD_FORMAT, lm.name, lm.context_window, lm.format_chat(closed_book("")), PROBE_ANSWER_TOKENS, dtype]
    return hashlib.sha256(json.dumps(setup).encode()).hexdigest()[:32]


def save_answers(folder: Path, answers: Mapping[Probe, bool | None], fingerprint: str) -> None:
    rows = [{"asked_with": fingerprint}]
    rows += [{"memory_ids": [p.memory_id] if p.memory_id is not None else [], "probe": probe_key(p), "answered": ok}
             for p, ok in answers.items()]
    (folder / GATE_ANSWERS).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def load_answers(folder: Path, fingerprint: str) -> dict[str, bool | None]:
    """Probe hash -> answered; nothing for a version that recorded none (made before this file
    existed, a merge) or recorded them asked another way."""
    path = folder / GATE_ANSWERS
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows or rows[0].get("asked_with") != fingerprint:
        return {}
    return {row["probe"]: row["answered"] for row in rows[1:]}
