"""Loading saved LoRA modules side by side, each in about the same time however many are loaded.

PEFT's `PeftModel.load_adapter` walks every submodule of the model to find where the new
adapter goes, and each adapter already loaded adds three submodules to every adapted layer,
so the k-th load walks k times as much: on SmolLM2-135M (210 adapted layers) a load took
0.34 s beside one module and 3.2 s beside forty, and a library of n modules cost O(n^2) to
open. A sleep by topic opened its library twice per topic (candidate and parent), so a sleep
of many topics grew as n^3 (README, "Opening a module library").

Every module of a library adapts the same layers the same way (the same `LoraConfig` shape:
a sleep trains each with the mind's settings), so once one module is loaded the adapted
layers are known: a further module only needs its tensors put into each of them. That is
what `LoraLayer.update_layer` (the method PEFT's own injection calls for a layer already
adapted) and a state-dict copy do, once per adapted layer, whatever the library's size.
Anything outside that shape (another PEFT type, DoRA, trained embeddings or heads, a layer
no loaded module adapts) goes through PEFT's own `load_adapter`, so the result is always
PEFT's model, only sooner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ADAPTER_WEIGHTS = "adapter_model.safetensors"  # PEFT's file name for an adapter's tensors
_LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


def load_modules(model: Any, adapters: Mapping[str, Path]) -> Any:
    """`model` (a transformers model, or a PeftModel already holding modules) with every
    saved adapter of `adapters` loaded under its name; returns the PeftModel (a new one
    when `model` had no adapter yet). The adapters load frozen, for inference."""
    from peft import PeftModel

    names = list(adapters)
    if not names:
        return model
    if not isinstance(model, PeftModel):
        model = PeftModel.from_pretrained(model, str(adapters[names[0]]), adapter_name=names[0])
        names = names[1:]
    layers = dict(lora_layers(model))
    for name in names:
        if not add_module(model, layers, name, Path(adapters[name])):
            model.load_adapter(str(adapters[name]), adapter_name=name)
            layers = dict(lora_layers(model))  # PEFT may have adapted layers no module adapted before
    return model


def lora_layers(model: Any) -> Iterator[tuple[str, Any]]:
    """Every LoRA-adapted layer of a PeftModel by its state-dict prefix, found without
    descending into the layers themselves (where each loaded module adds submodules)."""
    from peft.tuners.lora import LoraLayer

    stack: list[tuple[str, Any]] = [("", model)]
    while stack:
        prefix, module = stack.pop()
        if isinstance(module, LoraLayer):
            yield prefix, module
            continue
        for child_name, child in module.named_children():
            stack.append((f"{prefix}.{child_name}" if prefix else child_name, child))


def add_module(model: Any, layers: Mapping[str, Any], name: str, folder: Path) -> bool:
    """Put one saved plain-LoRA adapter into layers already adapted; False (and nothing
    changed) when the adapter is not of that simple shape, for PEFT's own loader to handle."""
    import torch
    from peft import LoraConfig, PeftConfig
    from safetensors.torch import load_file

    if name in model.peft_config:
        raise ValueError(f"a module named {name!r} is already loaded")
    config = PeftConfig.from_pretrained(str(folder))
    weights = folder / ADAPTER_WEIGHTS
    if not isinstance(config, LoraConfig) or not weights.is_file() or not _plain(config):
        return False
    state = load_file(str(weights))
    by_layer: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        suffix = next((s for s in _LORA_SUFFIXES if key.endswith(s)), None)
        prefix = key[: -len(suffix)] if suffix else None
        if prefix is None or prefix not in layers:
            return False
        by_layer.setdefault(prefix, {})["A" if suffix == _LORA_SUFFIXES[0] else "B"] = tensor
    if not by_layer or any(len(pair) != 2 for pair in by_layer.values()):
        return False
    for prefix, pair in by_layer.items():  # every check before the first layer changes
        layer = layers[prefix]
        if pair["A"].shape != (config.r, layer.in_features) or pair["B"].shape != (layer.out_features, config.r):
            return False
    frozen = dataclasses.replace(config, inference_mode=True)
    uninitialised = dataclasses.replace(frozen, init_lora_weights=False)  # every tensor is overwritten just below
    for prefix, pair in by_layer.items():
        layer = layers[prefix]
        layer.update_layer(name, config.r, config.lora_alpha, config=uninitialised)
        for part in (layer.lora_A[name], layer.lora_B[name]):
            if part.weight.dtype in (torch.float16, torch.bfloat16):
                part.float()  # PEFT's loader keeps adapters in fp32 over a half-precision base (autocast_adapter_dtype)
        with torch.no_grad():
            layer.lora_A[name].weight.copy_(pair["A"])
            layer.lora_B[name].weight.copy_(pair["B"])
        for part in (layer.lora_A[name], layer.lora_B[name], layer.lora_dropout[name]):
            part.requires_grad_(False)
            part.eval()  # as PEFT's load_adapter leaves an inference adapter (its dropout off)
    model.peft_config[name] = frozen
    return True


def _plain(config: Any) -> bool:
    """One rank and alpha for every layer, no DoRA or other variant, nothing trained whole, no
    bias: what a sleep trains (the initialisation does not matter, every tensor is loaded)."""
    return (not config.use_dora and not config.modules_to_save and not config.lora_bias
            and not config.rank_pattern and not config.alpha_pattern and not getattr(config, "target_parameters", None)
            and config.init_lora_weights in (True, False, "gaussian")  # others (PiSSA, OLoRA, ...) also change base weights
            and not getattr(config, "trainable_token_indices", None) and not getattr(config, "alora_invocation_tokens", None)
            and not getattr(config, "arrow_config", None) and not getattr(config, "layer_replication", None))

