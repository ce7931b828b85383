"""Answering on ONNX Runtime: the exported decoding step gives transformers' logits and
answers, with and without a LoRA module, and `ask` runs on it without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong import Mind
from lifelong.model.onnx_decoding import OnnxDecoder, read_lora
from lifelong.model.onnx_export import export_decoder
from lifelong.model.onnx_model import render_chat
from lifelong.model.tiny import CHAT_TEMPLATE, build_tiny_model

PROMPTS = ["Who wrote the letter?", "The bridge over the river was built in", "hello"]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(seed=3, layers=3)


@pytest.fixture(scope="module")
def graph(tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("graph") / "tiny.onnx"
    export_decoder(tiny.model, target)
    return target


def _torch_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()


def _module(tiny, folder: Path):
    """A LoRA module with every matrix random (a trained module's B is never all zero)."""
    from peft import LoraConfig, get_peft_model

    from lifelong.model.language_model import weight_sharing_copy

    peft_model = get_peft_model(weight_sharing_copy(tiny.model), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    peft_model.save_pretrained(folder)
    return peft_model.eval()


def test_the_graph_gives_transformers_logits_at_every_step(tiny, graph) -> None:
    decoder = OnnxDecoder(graph)
    for prompt in PROMPTS:
        ids = tiny.encode(prompt)
        for extra in range(3):  # the prompt, then one token at a time on the cached keys and values
            expected = _torch_logits(tiny.model, ids)
            got = decoder.logits(ids)
            assert np.allclose(got, expected, atol=1e-4), float(np.abs(got - expected).max())
            ids = [*ids, int(np.argmax(expected))]


def test_greedy_answers_are_transformers_greedy_answers(tiny, graph) -> None:
    from lifelong.model.greedy_decoding import greedy_decode
    from lifelong.model.language_model import left_padded

    decoder = OnnxDecoder(graph)
    for prompt in PROMPTS:
        ids = tiny.encode(tiny.format_chat([{"role": "user", "content": prompt}]))
        input_ids, mask = left_padded([ids], tiny.tokenizer.pad_token_id)
        expected = greedy_decode(tiny.model, input_ids, mask, 24, tiny.stop_ids())[0]
        assert decoder.greedy(ids, 24, tiny.stop_ids()) == expected


def test_a_saved_lora_module_gives_peft_logits_and_no_module_gives_the_bases(tiny, graph, tmp_path: Path) -> None:
    peft_model = _module(tiny, tmp_path / "adapter")
    module = read_lora(tmp_path / "adapter")
    assert module is not None and module.scale == 2.0
    decoder = OnnxDecoder(graph)
    ids = tiny.encode(PROMPTS[0])
    adapted = _torch_logits(peft_model, ids)
    with peft_model.disable_adapter():
        base = _torch_logits(peft_model, ids)
    assert np.abs(adapted - base).max() > 0.1  # the module moves the logits...
    assert np.allclose(decoder.logits(ids, module), adapted, atol=1e-4)  # ...as PEFT moves them
    assert np.array_equal(decoder.logits(ids), decoder.logits(ids, decoder.zero_lora()))


def test_the_chat_template_renders_as_transformers_renders_it(tiny) -> None:
    conversations = [[{"role": "user", "content": "Where is Trento?"}],
                     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\n  there"}]]
    # special tokens as variables, loop controls, trimmed blocks, tojson: what transformers' renderer offers
    other = ("{{ bos_token }}{% for m in messages %}\n  {% if m.role == 'system' %}{% continue %}{% endif %}\n"
             "{{ m.content | trim }}|{{ m | tojson }}{% endfor %}{% if add_generation_prompt %}{{ eos_token }}{% endif %}")
    special = {"bos_token": tiny.tokenizer.bos_token, "eos_token": tiny.tokenizer.eos_token}
    for messages in conversations:
        assert render_chat(CHAT_TEMPLATE, messages) == tiny.format_chat(messages)
        expected = tiny.tokenizer.apply_chat_template(messages, chat_template=other, tokenize=False, add_generation_prompt=True)
        assert render_chat(other, messages, special) == expected


def test_ask_answers_on_onnx_runtime_as_on_torch_and_a_new_process_never_imports_torch(
        tiny_model_dir: Path, embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFELONG_CACHE", str(tmp_path / "cache"))
    questions = ["Where is the office?", "Who is Ada?", "What colour is the sky?"]
    with Mind.init(tmp_path / "mind", model=str(tiny_model_dir), embedder=embedder) as mind:
        mind.learn("The office of Korvath Engineering is in Trento.")
        on_onnx = [mind.ask(q, max_new_tokens=12).text for q in questions]
        assert type(mind.answer_model()).__name__ == "OnnxLanguageModel"
    # the export is in the cache, not beside the model, and names its weights (for stale-graph cleanup)
    [described] = (tmp_path / "cache" / "decoders").glob("*.json")
    assert not list(tiny_model_dir.parent.glob(f"{tiny_model_dir.name}-*.onnx"))
    assert json.loads(described.read_text())["source"]["path"] == str((tiny_model_dir / "model.safetensors").resolve())
    monkeypatch.setenv("LIFELONG_TORCH_ANSWERS", "1")
    with Mind.open(tmp_path / "mind", embedder=embedder) as mind:
        assert [mind.ask(q, max_new_tokens=12).text for q in questions] == on_onnx
    monkeypatch.delenv("LIFELONG_TORCH_ANSWERS")
    script = ("import sys, json; from lifelong import Mind\n"
              f"m = Mind.open({str(tmp_path / 'mind')!r})\n"
              f"print(json.dumps([m.ask({questions[0]!r}, max_new_tokens=12).text, 'torch' in sys.modules]))")
    # the first process may export what this cache lacks (the embedder's graph, with torch); a later one imports no torch
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert json.loads(runs[-1].strip().splitlines()[-1]) == [on_onnx[0], False]


def test_a_routed_library_answers_on_onnx_runtime_as_on_torch(
        tiny_model_dir: Path, embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong import consolidate
    from lifelong.consolidate import SleepConfig
    from lifelong.learn.trainer import TrainConfig
    from lifelong.versions import Verdict

    # a tiny random model never passes the real gate; this is about what a promoted library serves
    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))
    monkeypatch.setenv("LIFELONG_CACHE", str(tmp_path / "cache"))
    loud = SleepConfig(strategy="routed", train=TrainConfig(rank=8, epochs=30, learning_rate=1e-2, bf16=False), distill=False)
    questions = ["What do you know about Korvath Bridge?", "What is the capital of France?", "Who designed the bridge?"]
    with Mind.init(tmp_path / "mind", model=str(tiny_model_dir), embedder=embedder) as mind:
        mind.learn("The Korvath Bridge over the river Elsin was designed by the engineer Petra Lindqvist in 1964.")
        assert mind.sleep(loud).activated
        onnx = mind.answer_model()
        assert type(onnx).__name__ == "OnnxLanguageModel" and onnx.router is not None
        closed = [mind.ask(q, use_memory=False, max_new_tokens=12).text for q in questions]
        with_memory = [mind.ask(q, max_new_tokens=12).text for q in questions]
        base = onnx.generate_batch([[{"role": "user", "content": questions[0]}]], 12)  # routed: the module answers
        assert onnx.generate_on([[{"role": "user", "content": questions[0]}]], ["__base__"], 12) != base  # unlike the base
    monkeypatch.setenv("LIFELONG_TORCH_ANSWERS", "1")
    with Mind.open(tmp_path / "mind", embedder=embedder) as mind:
        assert [mind.ask(q, use_memory=False, max_new_tokens=12).text for q in questions] == closed
        assert [mind.ask(q, max_new_tokens=12).text for q in questions] == with_memory


def test_an_export_whose_weights_were_rewritten_or_removed_is_deleted_and_a_current_one_kept(tiny, tmp_path: Path) -> None:
    from lifelong.model.onnx_export import remove_stale_graphs, stale, weights_file

    folder = tmp_path / "decoders"
    sources = {name: tmp_path / f"{name}.safetensors" for name in ("kept", "rewritten", "removed")}
    for source in sources.values():
        source.write_bytes(b"weights")
    graphs = {name: folder / f"{name}.onnx" for name in sources}
    for name, graph in graphs.items():
        export_decoder(tiny.model, graph, source=sources[name])
    assert not any(stale(graph) for graph in graphs.values())
    sources["rewritten"].write_bytes(b"new weights")  # another size: the export no longer matches
    sources["removed"].unlink()

    assert remove_stale_graphs(folder) > 0
    assert sorted(path.name for path in folder.iterdir()) == ["kept.data", "kept.json", "kept.onnx"]
    assert weights_file(graphs["kept"]).is_file() and not stale(graphs["kept"])
    assert remove_stale_graphs(folder) == 0
