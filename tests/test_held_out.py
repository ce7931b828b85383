"""Evaluation questions never leak into training: the gate's probes, the benchmark questions
and the retention sets are all disjoint from what sleep trains on."""

from __future__ import annotations

import json

from lifelong import Mind
from lifelong.consolidate import TRAINING_DATA, SleepConfig
from lifelong.evaluate.knowledge import read_jsonl
from lifelong.evaluate.probes import RETENTION_CANDIDATES, acquisition_probes
from lifelong.learn.rehearsal import REHEARSAL_PROMPTS
from lifelong.learn.anchors import HELD_OUT_CHAT, HELD_OUT_RAW
from lifelong.learn.trainer import TrainConfig
from conftest import shared_data


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip("?.")


def test_no_gate_probe_or_benchmark_question_appears_in_the_training_data(mind: Mind) -> None:
    rows = read_jsonl(shared_data("tofu_authors_dev.jsonl"))[:3]
    for row in rows:
        mind.learn(row["answer"])
    manifest = mind.sleep(SleepConfig(train=TrainConfig(rank=4, epochs=1, bf16=False))).manifest
    training = [json.loads(line) for line in (mind.versions.path(manifest.id) / TRAINING_DATA).read_text().splitlines()]
    prompts = {_normal(m["content"]) for example in training for m in example["prompt"]}
    probes = {_normal(p.prompt) for p in acquisition_probes(mind.memories())}
    questions = {_normal(row["question"]) for row in rows}
    assert probes and not probes & prompts
    assert not questions & prompts
    assert not any(_normal(p.prompt) in prompt for p in acquisition_probes(mind.memories()) for prompt in prompts)


def test_rehearsal_prompts_are_disjoint_from_anchors_and_every_evaluation_set() -> None:
    evaluation = {_normal(r.get("question") or r["prompt"]) for name in
                  ("world_facts_mcq.jsonl", "real_authors_mcq.jsonl", "known_facts_dev.jsonl", "tofu_authors_dev.jsonl")
                  for r in read_jsonl(shared_data(name))}
    evaluation |= {_normal(p) for p in (*HELD_OUT_CHAT, *HELD_OUT_RAW, *RETENTION_CANDIDATES)}
    assert not {_normal(p) for p in REHEARSAL_PROMPTS} & evaluation


def test_training_anchors_are_disjoint_from_the_held_out_anchors_and_retention_probes() -> None:
    from lifelong.learn.anchors import HELD_OUT_CHAT, HELD_OUT_RAW, TRAINING_CHAT, TRAINING_RAW

    training = {_normal(p) for p in (*TRAINING_CHAT, *TRAINING_RAW)}
    assert not training & {_normal(p) for p in (*HELD_OUT_CHAT, *HELD_OUT_RAW, *RETENTION_CANDIDATES, *REHEARSAL_PROMPTS)}
