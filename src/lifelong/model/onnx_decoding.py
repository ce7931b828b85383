"""Greedy decoding of the exported decoding step (model/onnx_export.py) on ONNX Runtime.

What `ask` runs when the graph for the served weights is in the cache: ONNX Runtime and
numpy, no torch. One sequence at a time (a command answers one question); each step feeds
the previous step's keys and values back as bound ONNX Runtime values, never through numpy.
A LoRA module is its saved PEFT matrices, read with safetensors' numpy loader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.model.onnx_export import LORA_TARGETS, lora_input_names

_LORA_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


@dataclass(frozen=True)
class LoraMatrices:
    """One module's matrices by graph input name, and its scale (alpha / rank)."""

    matrices: dict[str, np.ndarray]
    scale: float


def plain_lora(folder: Path) -> bool:
    """Whether a saved adapter is one the graph expresses: PEFT LoRA with one rank and alpha,
    no DoRA, no bias, no trained embeddings or head."""
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        return False
    config = json.loads(config_file.read_text())
    return (config.get("peft_type") == "LORA" and not config.get("rank_pattern") and not config.get("alpha_pattern")
            and not config.get("use_dora") and not config.get("modules_to_save") and not config.get("lora_bias"))


def read_lora(folder: Path) -> LoraMatrices | None:
    """A saved PEFT LoRA module as graph inputs; None for anything the graph does not
    express (see `plain_lora`)."""
    from safetensors.numpy import load_file

    if not plain_lora(folder):
        return None
    config = json.loads((folder / "adapter_config.json").read_text())
    rank = int(config["r"])
    alpha = float(config["lora_alpha"])
    scale = alpha / (rank ** 0.5) if config.get("use_rslora") else alpha / rank
    matrices: dict[str, np.ndarray] = {}
    for key, tensor in load_file(str(folder / "adapter_model.safetensors")).items():
        found = _LORA_KEY.search(key)
        if found is None or found.group(2) not in LORA_TARGETS:
            return None
        layer, target, ab = found.groups()
        matrices[f"lora.{layer}.{target}.{ab}"] = np.ascontiguousarray(tensor, dtype=np.float32)
    return LoraMatrices(matrices, scale)


class OnnxDecoder:
    """An ONNX Runtime session over one exported graph, decoding one sequence greedily."""

    def __init__(self, graph: Path, threads: int | None = None) -> None:
        import onnxruntime

        meta = json.loads(graph.with_suffix(".json").read_text())
        self.layers, self.kv_heads, self.head_dim = meta["layers"], meta["kv_heads"], meta["head_dim"]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # The graph was optimized when it was exported (onnx_export.optimize_offline). Without
        # prepacking, ONNX Runtime reads the weights from the memory-mapped file instead of
        # copying them into its own layout: a session opens in 0.07 s rather than 0.54 s and
        # holds no second copy, for a 64-token decode about 0.3 s slower (scratch measurement).
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.add_session_config_entry("session.disable_prepacking", "1")
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        self.lora_names = lora_input_names(self.layers)
        # Rank-1 zero matrices for every adapted projection (A: 1 x input width, B: output width
        # x 1, read off the graph), made once: the base's inputs, and a module's where it
        # adapts no such layer. Every adapted product then adds an exact 0.0.
        self.zeros = {name: np.zeros((1, int(shapes[name][1])) if name.endswith(".A") else (int(shapes[name][0]), 1),
                                     dtype=np.float32) for name in self.lora_names}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def zero_lora(self) -> LoraMatrices:
        """No module: the base's answer."""
        return LoraMatrices(self.zeros, 1.0)

    def start(self, module: LoraMatrices | None) -> Any:
        """A binding holding the module's matrices (or zeros) and an empty cache."""
        lora = module or self.zero_lora()
        binding = self.session.io_binding()
        for name in self.lora_names:
            matrix = lora.matrices.get(name)
            binding.bind_cpu_input(name, matrix if matrix is not None else self.zeros[name])
        binding.bind_cpu_input("lora_scale", np.array(lora.scale, dtype=np.float32))
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=np.float32)
        for i in range(self.layers):
            for kv in ("key", "value"):
                binding.bind_cpu_input(f"past.{i}.{kv}", empty)
        return binding

    def step(self, binding: Any, tokens: Sequence[int]) -> np.ndarray:
        """Run `tokens` after what the binding's cache holds; the cache then holds them too.
        Returns the last position's logits."""
        binding.bind_cpu_input("input_ids", np.array([list(tokens)], dtype=np.int64))
        for name in self.outputs:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        for i in range(self.layers):  # this step's keys and values are the next step's past, never copied through numpy
            binding.bind_ortvalue_input(f"past.{i}.key", values[1 + 2 * i])
            binding.bind_ortvalue_input(f"past.{i}.value", values[2 + 2 * i])
        return values[0].numpy()[0]

    def logits(self, prompt: Sequence[int], module: LoraMatrices | None = None) -> np.ndarray:
        """The next-token logits after `prompt`, its last token run on the cache of the rest
        (so the cached path is what is measured)."""
        binding = self.start(module)
        if len(prompt) > 1:
            self.step(binding, prompt[:-1])
        return self.step(binding, prompt[-1:])

    def greedy(self, prompt: Sequence[int], max_new_tokens: int, stop_ids: Sequence[int],
               module: LoraMatrices | None = None) -> list[int]:
        """The new tokens, up to and including a stop token or `max_new_tokens` of them."""
        binding = self.start(module)
        stops = set(stop_ids)
        generated: list[int] = []
        tokens: Sequence[int] = prompt
        for _ in range(max_new_tokens):
            token = int(np.argmax(self.step(binding, tokens)))
            generated.append(token)
            if token in stops:
                break
            tokens = [token]
        return generated
