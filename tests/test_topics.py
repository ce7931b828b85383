"""Topics among a sleep's new memories: what a module per topic is built from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lifelong.learn.topics import topic_groups
from conftest import SHARED_DATA


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_close_vectors_form_a_topic_and_a_stray_one_joins_its_nearest_topic() -> None:
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    vectors = _unit(np.stack([a + 0.1 * rng.standard_normal(8) for _ in range(4)]
                             + [b + 0.1 * rng.standard_normal(8) for _ in range(4)]
                             + [0.3 * a + np.eye(8)[2]]))  # alone, but nearer the first topic
    assert topic_groups(vectors) == [[0, 1, 2, 3, 8], [4, 5, 6, 7]]
    assert topic_groups(vectors, min_size=1) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]


def test_a_few_unrelated_notes_stay_one_topic() -> None:
    assert topic_groups(np.eye(3)) == [[0, 1, 2]]
    assert topic_groups(np.eye(3)[:1]) == [[0]] and topic_groups(np.zeros((0, 3))) == []


@pytest.mark.skipif(not (SHARED_DATA / "tofu_authors_dev.jsonl").is_file(), reason="needs ../shared/data")
def test_tofu_facts_group_by_the_author_they_are_about(embedder) -> None:
    rows = [json.loads(line) for line in (SHARED_DATA / "tofu_authors_dev.jsonl").read_text().splitlines()][:100]
    groups = topic_groups(embedder.embed([r["answer"] for r in rows]))
    author = np.arange(100) // 20  # 20 facts per fictitious author
    assert len(groups) == 5
    assert all(len(set(author[g])) == 1 for g in groups)  # no topic mixes two authors


def test_a_mind_can_ask_for_a_module_per_topic_in_its_config(tmp_path) -> None:
    from lifelong.errors import MindError
    from lifelong.mind_config import CONFIG_FILE, MindConfig, read_config, write_config

    write_config(tmp_path, MindConfig(model="tiny", topic_modules=True))
    assert 'modules = "per-topic"' in (tmp_path / CONFIG_FILE).read_text()
    assert read_config(tmp_path).topic_modules and read_config(tmp_path).train_trust == "user"
    write_config(tmp_path, MindConfig(model="tiny", topic_modules=False))
    assert 'modules = "per-sleep"' in (tmp_path / CONFIG_FILE).read_text() and read_config(tmp_path).topic_modules is False
    write_config(tmp_path, MindConfig(model="tiny"))
    assert "modules" not in (tmp_path / CONFIG_FILE).read_text() and read_config(tmp_path).topic_modules is None  # the default
    (tmp_path / CONFIG_FILE).write_text(MindConfig(model="tiny").to_toml() + '\n[training]\nmodules = "per-author"\n')
    with pytest.raises(MindError, match=r"\[training\] modules = 'per-author' is not one of 'per-sleep', 'per-topic'"):
        read_config(tmp_path)


def test_a_sleep_trains_a_module_per_topic_by_default_wherever_a_topic_module_can_run(embedder) -> None:
    from lifelong.consolidate import SleepConfig, trains_per_topic

    assert trains_per_topic(SleepConfig(strategy="routed+context", embedder=embedder))  # the default sleep
    assert not trains_per_topic(SleepConfig(strategy="context", embedder=embedder))  # unrouted: one continued module
    assert not trains_per_topic(SleepConfig(strategy="routed+context", embedder=embedder, topic_modules=False))  # asked for one
    assert trains_per_topic(SleepConfig(strategy="context", embedder=embedder, topic_modules=True))  # asked: refused by run_sleep


def test_a_sleep_by_topic_writes_every_topics_distillation_in_one_generation_and_trains_on_the_same_data(
        tmp_path, tiny_lm, embedder, monkeypatch) -> None:
    """Each topic's questions were a generation of their own (a few rows each); the sleep now
    writes all topics' questions in one batch, and each topic trains on exactly the data it
    trained on when it wrote its own (the same synthetic-data hash)."""
    from lifelong import Mind, consolidate
    from lifelong.consolidate import SleepConfig, read_examples
    from lifelong.learn.synthesis import MODEL_QUESTION_REQUEST
    from lifelong.learn.trainer import TrainConfig
    from lifelong.model.language_model import LanguageModel
    from lifelong.versions.layout import TRAINING_DATA

    bridge = ["The Korvath Bridge opened in 1931 over the river Elsin.",
              "The Korvath Bridge is 410 metres long and crosses the river Elsin in three spans.",
              "The Korvath Bridge was repainted red in 1998, when its lamps were replaced."]
    captain = ["Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011.",
               "Captain Oru Tadeski's boat, the Marrow Gull, was built by his grandfather.",
               "Captain Oru Tadeski wrote a book about his crossing of the Lake of Qessa."]
    question_batches: list[int] = []
    generate_batch = LanguageModel.generate_batch

    def counting(self, prompts, *args, **kwargs):
        if any(MODEL_QUESTION_REQUEST in p[-1]["content"] for p in prompts):
            question_batches.append(len(prompts))
        return generate_batch(self, prompts, *args, **kwargs)

    monkeypatch.setattr(LanguageModel, "generate_batch", counting)
    config = SleepConfig(strategy="routed", train=TrainConfig(rank=4, epochs=1, bf16=False), topic_modules=True)
    hashes = []
    for name in ("shared", "alone"):
        if name == "alone":  # as before: each topic's own ModelDistiller
            monkeypatch.setattr(consolidate, "SharedDistiller", lambda inner, topics, rows: inner)
        question_batches.clear()
        with Mind.open(tmp_path / name, create=True, embedder=embedder, language_model=tiny_lm) as mind:
            ids = [mind.learn(text).results[0].id for text in [*bridge, *captain]]
            slept = mind.sleep(config)
            assert len(slept.topics) == 2
            assert question_batches == ([6] if name == "shared" else [3, 3])  # one generation for both topics' notes
            hashes.append([t.manifest.synthetic_data_hash for t in slept.topics])
            for topic, own in zip(slept.topics, (ids[:3], ids[3:]), strict=True):
                distilled = [e for e in read_examples(mind.versions.path(topic.manifest.id) / TRAINING_DATA) if e.kind == "distilled"]
                assert distilled and {i for e in distilled for i in e.memory_ids} <= set(own)  # empty answers are dropped
    assert hashes[0] == hashes[1]
