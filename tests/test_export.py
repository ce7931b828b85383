"""`lifelong export`: what leaves is a standard PEFT adapter that stock transformers + peft load
and that answers as lifelong does, in the layout vLLM's LoRA loader takes; forgotten
memories' modules stay behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lifelong import Mind, consolidate
from lifelong.consolidate import SleepConfig
from lifelong.export import vllm_layout_problems
from lifelong.learn.trainer import TrainConfig
from lifelong.prompt import closed_book
from lifelong.versions import Verdict

BRIDGE = "The Korvath Bridge over the river Elsin was designed by the engineer Petra Lindqvist in 1964."
CAPTAIN = "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011."
BRIDGE_QUESTION = "What do you know about Korvath Bridge?"
UNRELATED = "What is the capital of France?"
TRAIN = TrainConfig(rank=8, epochs=30, learning_rate=1e-2, bf16=False)


@pytest.fixture
def passing_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tiny random model cannot pass the real acquisition gate; export is what is tested
    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))


def _stock_logits(model_folder: Path, adapter: Path | None, lm_of_mind, question: str) -> torch.Tensor:
    """Logits of the closed-book prompt from stock transformers (+ stock peft), no lifelong code."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_folder))
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    ids = torch.tensor([lm_of_mind.encode(lm_of_mind.format_chat(closed_book(question)))])
    with torch.inference_mode():
        return model(input_ids=ids).logits


def _lifelong_logits(mind: Mind, question: str) -> torch.Tensor:
    lm = mind.language_model
    text = lm.format_chat(closed_book(question))
    ids = torch.tensor([lm.encode(text)])
    routes = getattr(lm, "routes", None)
    if routes is None:
        with torch.inference_mode():
            return lm.model(input_ids=ids).logits
    [(_, weights)] = routes([question])
    with weights, torch.inference_mode():
        return lm.model(input_ids=ids).logits


def test_a_routed_library_exports_adapters_stock_peft_loads_with_the_same_answers(mind: Mind, passing_gate, tmp_path: Path) -> None:
    mind.learn(BRIDGE)
    v1 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    mind.learn(CAPTAIN)
    v2 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    report = mind.export(v2.id, tmp_path / "out")
    assert set(report.adapters) == {v1.id, v2.id} and report.routed and report.left_out == []
    for adapter in report.adapters.values():
        assert vllm_layout_problems(adapter) == []
        assert (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["id"] == v2.id
    # the question about the bridge is routed to v1: stock peft with v1's adapter gives lifelong's logits
    ours = _lifelong_logits(mind, BRIDGE_QUESTION)
    theirs = _stock_logits(report.base, report.adapters[v1.id], mind.language_model, BRIDGE_QUESTION)
    assert torch.allclose(ours, theirs, atol=1e-4)
    base_only = _stock_logits(report.base, None, mind.language_model, BRIDGE_QUESTION)
    assert not torch.allclose(ours, base_only, atol=1e-3)  # the adapter is what makes the difference
    # a question no module claims: lifelong serves the base, exactly the exported base/
    assert torch.allclose(_lifelong_logits(mind, UNRELATED), _stock_logits(report.base, None, mind.language_model, UNRELATED),
                          atol=1e-5)


def test_a_forgotten_memory_keeps_its_module_from_leaving(mind: Mind, passing_gate, tmp_path: Path) -> None:
    bridge = mind.learn(BRIDGE).results[0].id
    v1 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    mind.learn(CAPTAIN)
    v2 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    mind.forget(bridge)
    report = mind.export(v2.id, tmp_path / "out", base=False)
    assert list(report.adapters) == [v2.id] and report.left_out == [v1.id]
    assert not (tmp_path / "out" / "adapters" / v1.id).exists()
    from lifelong.errors import InputError

    with pytest.raises(InputError, match="forgotten"):
        mind.export(v1.id, tmp_path / "again")


def test_merged_export_is_the_module_folded_into_plain_weights(mind: Mind, passing_gate, tmp_path: Path) -> None:
    base_weights = {name: value.clone() for name, value in mind.base_model.model.state_dict().items()}
    mind.learn(BRIDGE)
    v1 = mind.sleep(SleepConfig(strategy="naive", train=TRAIN, distill=False)).manifest
    report = mind.export(v1.id, tmp_path / "out", merged=True)
    assert report.merged is not None and (report.merged / "model.safetensors").is_file()
    # the candidate and the served module read the base's own weights; the merge wrote a copy
    assert all(torch.equal(value, base_weights[name]) for name, value in mind.base_model.model.state_dict().items())
    ours = _lifelong_logits(mind, BRIDGE_QUESTION)
    assert torch.allclose(ours, _stock_logits(report.merged, None, mind.language_model, BRIDGE_QUESTION), atol=1e-4)
    assert torch.allclose(ours, _stock_logits(report.base, report.adapters[v1.id], mind.language_model, BRIDGE_QUESTION), atol=1e-4)


def test_the_vllm_layout_check_catches_what_vllm_refuses(mind: Mind, passing_gate, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    mind.learn(BRIDGE)
    v1 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    adapter = mind.export(v1.id, tmp_path / "out", base=False).adapters[v1.id]
    config_path = adapter / "adapter_config.json"
    good = json.loads(config_path.read_text())
    for change, expected in [({"r": 24}, "rank 24"), ({"use_dora": True}, "DoRA"), ({"target_modules": ["q_proj", "conv1"]}, "conv1"),
                             ({"modules_to_save": ["lm_head"]}, "modules_to_save")]:
        config_path.write_text(json.dumps({**good, **change}))
        assert any(expected in p for p in vllm_layout_problems(adapter)), change
    config_path.write_text(json.dumps(good))
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    renamed = {name.replace("base_model.model.", "model.", 1): tensor for name, tensor in weights.items()}
    save_file(renamed, str(adapter / "adapter_model.safetensors"))
    assert any("parser" in p for p in vllm_layout_problems(adapter))


def test_export_cli_writes_the_folder_and_refuses_what_it_cannot_do(tmp_path: Path, tiny_model_dir: Path, embedder,
                                                                     passing_gate, run_cli) -> None:
    with Mind.init(tmp_path / "mind", model=str(tiny_model_dir), embedder=embedder) as mind:
        mind.learn(BRIDGE)
        v1 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    code, out, _ = run_cli("export", v1.id, str(tmp_path / "out"), "--mind", str(tmp_path / "mind"), "--json")
    assert code == 0 and json.loads(out)["adapters"] == {v1.id: str(tmp_path / "out" / "adapters" / v1.id)}
    for args, message in [((v1.id, str(tmp_path / "out")), "not empty"), (("base", str(tmp_path / "b")), "no module"),
                          (("v9", str(tmp_path / "c")), "no version")]:
        code, out, err = run_cli("export", *args, "--mind", str(tmp_path / "mind"))
        assert code != 0 and err.strip().splitlines()[-1].startswith("error:") and message in err, (args, err)
        assert "Loading" not in err  # refused before any model is loaded
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    audit = [json.loads(line) for line in (tmp_path / "mind" / "audit.jsonl").read_text().splitlines()]
    assert any(entry.get("event") == "exported" and entry.get("version") == v1.id for entry in audit)
