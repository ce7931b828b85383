"""The base's retention probes are recorded once per model on a machine, not once per mind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lifelong.evaluate import probes as probe_module
from lifelong.evaluate.probes import load_probes, record_retention_probes
from lifelong.model.language_model import LanguageModel
from lifelong.model.tiny import build_tiny_model


def _fresh(lm: LanguageModel) -> LanguageModel:
    """The same weights in a new wrapper: nothing remembered in process, as in a new process."""
    return LanguageModel(lm.model, lm.tokenizer, lm.name)


def test_a_second_mind_on_the_same_model_copies_the_probes_and_another_model_records_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFELONG_CACHE", str(tmp_path / "cache"))
    lm = build_tiny_model(seed=3)
    first = record_retention_probes(_fresh(lm), tmp_path / "a.jsonl", confidence=0.0)
    assert first and load_probes(tmp_path / "a.jsonl") == first

    def no_recording(*args, **kwargs):
        raise AssertionError("recorded again")

    monkeypatch.setattr(probe_module, "_confident_completions", no_recording)
    assert record_retention_probes(_fresh(lm), tmp_path / "b.jsonl", confidence=0.0) == first
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    with pytest.raises(AssertionError, match="recorded again"):  # other weights, other probes
        record_retention_probes(build_tiny_model(seed=4), tmp_path / "c.jsonl", confidence=0.0)
    with pytest.raises(AssertionError, match="recorded again"):  # another recipe (confidence), too
        record_retention_probes(_fresh(lm), tmp_path / "d.jsonl", confidence=0.5)


def test_the_fingerprint_follows_the_weights() -> None:
    lm = build_tiny_model(seed=3)
    before = _fresh(lm).fingerprint()
    assert build_tiny_model(seed=3).fingerprint() == before != build_tiny_model(seed=4).fingerprint()
    with torch.no_grad():
        lm.model.model.layers[0].mlp.down_proj.weight.add_(1e-3)  # a fine-tune or merge moves every value
    assert _fresh(lm).fingerprint() != before
