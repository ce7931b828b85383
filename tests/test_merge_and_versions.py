"""show, diff and merge on a tiny model: a merge answers as its module did, NaN is refused,
and a later sleep builds on the merged checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lifelong.versions import Verdict
from lifelong import Mind
from lifelong.consolidate import ADAPTER, SleepConfig
from lifelong.learn.strategies import KNOWN
from lifelong.evaluate.gate import GatePolicy
from lifelong.learn.trainer import TrainConfig
from lifelong.versions.layout import CHECKPOINT

FACTS = [
    "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik.",
    "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011.",
]
QUESTION = "Who founded the Vellmar Observatory?"
OPEN = GatePolicy(min_retention=0.0, max_kl=1e9, max_old_fact_drop=1.0)
LOUD = SleepConfig(strategy="naive", train=TrainConfig(rank=8, epochs=20, learning_rate=1e-2, bf16=False), gate=OPEN, distill=False)


@pytest.fixture
def promoted(mind: Mind, monkeypatch: pytest.MonkeyPatch) -> Mind:
    """A mind whose first sleep is promoted (the tiny model cannot pass the real acquisition gate)."""
    from lifelong import consolidate

    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))
    mind.learn(FACTS[0])
    assert mind.sleep(LOUD).activated
    return mind


def _answer(mind: Mind) -> str:
    return mind.ask(QUESTION, use_memory=False, max_new_tokens=12).text


def test_merge_answers_as_the_module_and_rollback_still_works(promoted: Mind) -> None:
    module_answer = _answer(promoted)
    result = promoted.merge(policy=OPEN)
    assert result.activated and result.manifest.kind == "merge" and result.manifest.parent == "v1"
    assert result.manifest.metrics["finite"] and result.manifest.metrics["max_logit_gap_to_module"] < 1e-2
    assert (promoted.versions.path("v2") / CHECKPOINT / "model.safetensors").is_file()
    assert _answer(promoted) == module_answer
    promoted.rollback("base")
    assert _answer(promoted) != module_answer
    promoted.rollback("v2")
    assert _answer(promoted) == module_answer


def test_a_sleep_after_a_merge_trains_on_the_merged_checkpoint(promoted: Mind) -> None:
    promoted.merge(policy=OPEN)
    promoted.learn(FACTS[1])
    result = promoted.sleep(LOUD)
    assert result.manifest.parent == "v2" and promoted.versions.foundation_id(result.manifest.id) == "v2"
    assert result.manifest.memory_ids == [1, 2]
    assert promoted.language_model is not None and _answer(promoted)


def test_a_module_with_nan_weights_is_not_merged(promoted: Mind) -> None:
    weights_file = promoted.versions.path("v1") / ADAPTER / "adapter_model.safetensors"
    weights = load_file(weights_file)
    name = next(k for k in weights if "lora_B" in k)
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, weights_file)
    result = promoted.merge(policy=OPEN)
    assert not result.activated and promoted.versions.active_id() == "v1"
    assert any("NaN" in reason for reason in result.manifest.verdict.reasons)


def test_merge_with_nothing_active_says_what_to_do(mind: Mind) -> None:
    with pytest.raises(Exception, match="run `lifelong sleep` first"):
        mind.merge()


def test_show_and_diff_on_the_command_line(promoted: Mind, run_cli, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong import consolidate

    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))
    promoted.learn(FACTS[1])
    promoted.sleep(LOUD)
    path = str(promoted.path)
    code, out, _ = run_cli("show", "v2", "--mind", path, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["parent"] == "v1" and shown["memory_ids"] == [1, 2] and "acquisition" in shown["metrics"]
    code, out, _ = run_cli("show", "v2", "--mind", path)
    assert code == 0 and "Captain Oru Tadeski" in out and "verdict: pass" in out
    code, out, _ = run_cli("diff", "v1", "v2", "--mind", path, "--json")
    change = json.loads(out)
    assert code == 0 and change["added"] == [2] and change["removed"] == [] and "kl_drift" in change["metric_deltas"]
    code, out, _ = run_cli("diff", "v1", "v2", "--mind", path)
    assert "+ #2 Captain Oru Tadeski" in out
    code, out, err = run_cli("show", "v9", "--mind", path)
    assert code != 0 and "lifelong versions" in err
    code, out, _ = run_cli("versions", "--mind", path)
    assert code == 0 and "v2" in out


def test_sleep_on_the_command_line_adapts_only_the_layers_asked_for(run_cli, tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    path = str(tmp_path / "cli-mind")
    assert run_cli("init", "--mind", path, "--model", str(tiny_model_dir))[0] == 0
    assert run_cli("learn", "-", "--mind", path, stdin=FACTS[0])[0] == 0
    code, out, err = run_cli("sleep", "--mind", path, "--epochs", "1", "--layers", "1", "--strategy", "naive", "--json")
    result = json.loads(out)
    assert code == 10 and not result["activated"]  # a random tiny model never passes the acquisition gate
    assert "not activated" in result["message"] and "training a LoRA module" in err
    assert result["manifest"]["hyperparameters"]["trainable_layers"] == 1
    adapter = tmp_path / "cli-mind" / "versions" / "v1" / ADAPTER / "adapter_model.safetensors"
    with safe_open(str(adapter), "pt") as weights:
        assert {k.split("layers.")[1].split(".")[0] for k in weights.keys()} == {"1"}
    code, _, err = run_cli("sleep", "--mind", path, "--strategy", "magic")
    assert code == 2 and "combine " + ", ".join(KNOWN) in err
