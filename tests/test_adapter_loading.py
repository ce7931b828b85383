"""Loading a module library: the fast path gives exactly PEFT's model, and falls back to PEFT
for adapters outside the shape it handles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lifelong.model.adapter_loading import add_module, load_modules, lora_layers
from lifelong.model.language_model import weight_sharing_copy
from lifelong.model.tiny import build_tiny_model

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def saved_modules(tmp_path: Path, count: int, **lora: object) -> dict[str, Path]:
    """`count` random LoRA adapters of the tiny model, saved as a sleep saves its modules
    (random B as well as A, so every module moves the logits its own way)."""
    from peft import LoraConfig, get_peft_model

    folders = {}
    for index in range(count):
        lm = build_tiny_model()
        config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, task_type="CAUSAL_LM", **lora)
        torch.manual_seed(100 + index)
        model = get_peft_model(lm.model, config)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_" in name:
                    parameter.normal_(0, 0.3)
        folders[f"v{index + 1}"] = tmp_path / f"v{index + 1}"
        model.save_pretrained(folders[f"v{index + 1}"])
    return folders


def peft_loaded(base: object, adapters: dict[str, Path]) -> object:
    """The same library through PEFT's own loader: the reference the fast path must equal."""
    from peft import PeftModel

    names = list(adapters)
    model = PeftModel.from_pretrained(weight_sharing_copy(base), str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(adapters[name]), adapter_name=name)
    return model


def test_fast_loading_gives_pefts_model_exactly(tmp_path: Path) -> None:
    adapters = saved_modules(tmp_path, 4)
    lm = build_tiny_model()
    fast = load_modules(weight_sharing_copy(lm.model), adapters).eval()
    slow = peft_loaded(lm.model, adapters).eval()

    def shapes(model: object) -> dict[str, tuple]:
        return {k: (tuple(v.shape), v.dtype, v.requires_grad) for k, v in model.named_parameters()}

    assert shapes(fast) == shapes(slow)
    ids = lm.tokenizer(["the cat sat on", "a module per topic", "x"], return_tensors="pt", padding=True)
    with torch.no_grad():
        rows = ["v3", "__base__", "v2"]
        assert torch.equal(fast(**ids, adapter_names=rows).logits, slow(**ids, adapter_names=rows).logits)
        for name in adapters:
            fast.set_adapter(name)
            slow.set_adapter(name)
            assert torch.equal(fast(**ids).logits, slow(**ids).logits)
        with fast.disable_adapter():
            plain = fast(**ids).logits
        assert not torch.allclose(plain, fast(**ids).logits)  # the modules do move the answers
        assert torch.equal(plain, lm.model(**ids).logits)  # and the base stays the base
    assert fast.peft_config["v4"].r == 4 and fast.peft_config["v4"].inference_mode


def test_each_load_touches_only_the_adapted_layers(tmp_path: Path) -> None:
    adapters = saved_modules(tmp_path, 2)
    model = load_modules(weight_sharing_copy(build_tiny_model().model), {"v1": adapters["v1"]})
    layers = dict(lora_layers(model))
    assert len(layers) == 2 * len(TARGETS)  # two decoder layers, seven projections each
    assert add_module(model, layers, "v2", adapters["v2"])
    with pytest.raises(ValueError, match="already loaded"):
        add_module(model, layers, "v2", adapters["v2"])


def test_other_shapes_go_through_peft(tmp_path: Path) -> None:
    plain = saved_modules(tmp_path / "plain", 1)
    dora = saved_modules(tmp_path / "dora", 1, use_dora=True)
    lm = build_tiny_model()
    model = load_modules(weight_sharing_copy(lm.model), {"v1": plain["v1"]})
    assert not add_module(model, dict(lora_layers(model)), "dora", dora["v1"])  # refused, nothing changed
    assert "dora" not in model.peft_config
    load_modules(model, {"dora": dora["v1"]})  # PEFT loads it instead
    slow = peft_loaded(lm.model, {"v1": plain["v1"], "dora": dora["v1"]}).eval()
    ids = lm.tokenizer(["the cat sat on"], return_tensors="pt")
    with torch.no_grad():
        model.eval().set_adapter("dora")
        slow.set_adapter("dora")
        assert torch.equal(model(**ids).logits, slow(**ids).logits)


def test_a_routed_library_opens_only_the_modules_its_inputs_reach(tmp_path: Path, embedder) -> None:
    """`ask` on a library of many topics loads the one module its question routes to, and the
    answers are those of the library with every module loaded up front."""
    from lifelong.learn.router import ModuleKeys, Router
    from lifelong.model.routed import RoutedLanguageModel, generate_together
    from lifelong.prompt import closed_book

    facts = ["The Korvath Bridge was designed by Petra Lindqvist in 1964.",
             "The Vellmar Observatory was founded in 1987 by Ilse Brandvik.",
             "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011."]
    adapters = saved_modules(tmp_path, 3)
    router = Router(embedder, [ModuleKeys(name, embedder.embed([fact])) for name, fact in zip(adapters, facts, strict=True)])
    lm = build_tiny_model()

    def library(lazy: bool) -> RoutedLanguageModel:
        first = {"v1": adapters["v1"]}
        model = load_modules(weight_sharing_copy(lm.model), first if lazy else adapters).eval()
        return RoutedLanguageModel(model, lm.tokenizer, lm.name, lm.needs_bos, router,
                                   unloaded={k: v for k, v in adapters.items() if k != "v1"} if lazy else None)

    lazy, eager = library(lazy=True), library(lazy=False)
    assert set(lazy.model.peft_config) == {"v1"} and lazy.module_names() == set(adapters)
    question = closed_book("Who sailed solo across the Lake of Qessa?")
    assert lazy.modules_for([question[-1]["content"]]) == ["v3"]
    assert lazy.generate_batch([question], max_new_tokens=6) == eager.generate_batch([question], max_new_tokens=6)
    assert set(lazy.model.peft_config) == {"v1", "v3"}  # v2 was never asked for
    assert lazy.score(question, ["Oru Tadeski."]) == eager.score(question, ["Oru Tadeski."])
    # a second view of the same PeftModel (a gate's parent beside its candidate) finds what the first loaded
    view = RoutedLanguageModel(lazy.model, lm.tokenizer, lm.name, lm.needs_bos, router, unloaded=dict(adapters))
    bridge = closed_book("Who designed the Korvath Bridge?")
    [[together]] = generate_together(lazy, [(view, [bridge])], max_new_tokens=6)
    assert together == eager.generate_batch([bridge], max_new_tokens=6)[0]
    view.ensure_loaded(["v3", "v2"])
    assert set(lazy.model.peft_config) == {"v1", "v2", "v3"} and not view.unloaded


def test_probes_on_every_route_score_together_as_each_route_scores_them_alone(tmp_path: Path, embedder) -> None:
    """The gate's answer log-probabilities: one call over probes that route to different
    modules (and to none) gives each the score of its own module's weights."""
    from lifelong.evaluate.probes import Probe, answer_logprobs
    from lifelong.learn.router import ModuleKeys, Router
    from lifelong.model.routed import RoutedLanguageModel
    from lifelong.prompt import closed_book

    facts = ["The Korvath Bridge was designed by Petra Lindqvist in 1964.",
             "The Vellmar Observatory was founded in 1987 by Ilse Brandvik."]
    adapters = saved_modules(tmp_path, 2)
    router = Router(embedder, [ModuleKeys(name, embedder.embed([fact])) for name, fact in zip(adapters, facts, strict=True)])
    lm = build_tiny_model()
    library = RoutedLanguageModel(load_modules(weight_sharing_copy(lm.model), adapters).eval(), lm.tokenizer, lm.name,
                                  lm.needs_bos, router)
    probes = [Probe("Complete the sentence: The Korvath Bridge was designed by", "Petra Lindqvist"),
              Probe("Complete the sentence: The Vellmar Observatory was founded in 1987 by", "Ilse Brandvik"),
              Probe("Complete the sentence: Bees make", "honey")]
    assert library.modules_for([p.prompt for p in probes]) == ["v1", "v2", None]
    alone = [library.score(closed_book(p.prompt), [p.answer], normalize=True)[0] for p in probes]
    assert answer_logprobs(library, probes) == pytest.approx(alone, abs=1e-4)
    on_base = answer_logprobs(lm, probes)
    assert on_base[2] == pytest.approx(alone[2], abs=1e-4)
    assert abs(on_base[0] - alone[0]) > 1e-3 and abs(on_base[1] - alone[1]) > 1e-3  # the modules' own weights scored them


def test_over_a_half_precision_base_modules_stay_fp32_as_peft_keeps_them(tmp_path: Path) -> None:
    adapters = saved_modules(tmp_path, 3)
    lm = build_tiny_model()
    lm.model.to(torch.bfloat16)
    fast = load_modules(weight_sharing_copy(lm.model), adapters).eval()
    slow = peft_loaded(lm.model, adapters).eval()
    assert {k: v.dtype for k, v in fast.named_parameters()} == {k: v.dtype for k, v in slow.named_parameters()}
    assert all(v.dtype == torch.float32 for k, v in fast.named_parameters() if "lora_" in k)
    ids = lm.tokenizer(["the cat sat on", "x"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(fast(**ids, adapter_names=["v3", "v2"]).logits, slow(**ids, adapter_names=["v3", "v2"]).logits)


def test_a_module_deleted_after_the_library_opened_fails_with_what_to_do(tmp_path: Path, embedder) -> None:
    """A forget deletes its module's adapter; a library opened before it must not serve it
    (nor fail with a file error): it says to ask again, which reopens the active version."""
    import shutil

    from lifelong.errors import MindError
    from lifelong.learn.router import ModuleKeys, Router
    from lifelong.model.routed import RoutedLanguageModel

    adapters = saved_modules(tmp_path, 2)
    router = Router(embedder, [ModuleKeys("v1", embedder.embed(["The Korvath Bridge was designed by Petra Lindqvist."])),
                               ModuleKeys("v2", embedder.embed(["Captain Oru Tadeski sailed across the Lake of Qessa."]))])
    lm = build_tiny_model()
    model = load_modules(weight_sharing_copy(lm.model), {"v1": adapters["v1"]}).eval()
    library = RoutedLanguageModel(model, lm.tokenizer, lm.name, lm.needs_bos, router, unloaded={"v2": adapters["v2"]})
    shutil.rmtree(adapters["v2"])
    with pytest.raises(MindError, match="ask again"):
        library.ensure_loaded(["v2"])
    assert "v2" not in model.peft_config
