"""The served model's decoding step as an ONNX graph, so `ask` can answer without torch.

A new `lifelong ask` process spent about 2.9 s importing torch and transformers and 0.5 s
building the model before its first token (README, "Command-line start-up"); ONNX Runtime
imports in a tenth of a second. The graph is one decoding step of a Llama-architecture
model (SmolLM2, the default): new tokens in, the last position's logits and each layer's
keys and values out, the keys and values of earlier steps in. Each adapted projection also
takes a LoRA module's matrices as inputs, so one exported graph serves the base (zero
matrices: every product adds an exact 0.0, the base's own sums) and every module of a
library (its saved matrices, read with numpy). The arithmetic is transformers' Llama
forward pass written out (RMSNorm in fp32, rotary embedding, grouped keys and values, SiLU
gate); tests/test_onnx_decoding.py checks its logits and greedy answers against the model
run by transformers, and the export happens once per set of weights, into the cache.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
FORMAT_VERSION = 2  # bump when the graph's inputs or arithmetic change: old exports are not reused


def exportable(model: Any) -> bool:
    """Whether `model` is a plain Llama decoder this graph reproduces exactly: no biases,
    default rotary embedding, tied or untied head, no sliding window."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return False
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return (not getattr(config, "attention_bias", False) and not getattr(config, "mlp_bias", False)
            and rope.get("rope_type", "default") == "default" and getattr(config, "hidden_act", "silu") == "silu")


def input_names(layers: int) -> list[str]:
    """The graph's inputs in order: tokens, every layer's past keys and values, then every
    adapted projection's LoRA A and B, then the LoRA scale."""
    names = ["input_ids"]
    names += [f"past.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    names += lora_input_names(layers)
    return [*names, "lora_scale"]


def lora_input_names(layers: int) -> list[str]:
    return [f"lora.{i}.{target}.{ab}" for i in range(layers) for target in LORA_TARGETS for ab in ("A", "B")]


def output_names(layers: int) -> list[str]:
    return ["logits", *[f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]]


def decoder_step(model: Any) -> Any:
    """A torch module computing one decoding step of `model` (a transformers Llama) from
    explicit inputs, the form the exporter traces."""
    import torch

    config = model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    theta = float((getattr(config, "rope_parameters", None) or {}).get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    eps = float(config.rms_norm_eps)
    decoder = model.model
    layers = list(decoder.layers)

    def rms_norm(x: Any, weight: Any) -> Any:
        variance = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(variance + eps))

    def rotate_half(x: Any) -> Any:
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    class DecoderStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            head = model.get_output_embeddings().weight
            # one copy of a tied matrix: the head's transpose, which the token lookup also reads (a column per token)
            self.head_t = torch.nn.Parameter(head.detach().t().contiguous(), requires_grad=False)
            self.tied = head is decoder.embed_tokens.weight
            if not self.tied:
                self.embed = torch.nn.Parameter(decoder.embed_tokens.weight.detach(), requires_grad=False)
            self.final_norm = torch.nn.Parameter(decoder.norm.weight.detach(), requires_grad=False)
            inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
            self.register_buffer("inv_freq", inv_freq, persistent=False)
            self.weights = torch.nn.ParameterList()
            for layer in layers:
                for tensor in (layer.input_layernorm.weight, layer.post_attention_layernorm.weight,
                               *(getattr(layer.self_attn, t).weight for t in _ATTENTION),
                               *(getattr(layer.mlp, t).weight for t in ("gate_proj", "up_proj", "down_proj"))):
                    self.weights.append(torch.nn.Parameter(tensor.detach(), requires_grad=False))

        def forward(self, input_ids: Any, *rest: Any) -> Any:
            n_layers = len(layers)
            past = rest[: 2 * n_layers]
            lora = rest[2 * n_layers : -1]
            scale = rest[-1]
            new = input_ids.shape[1]
            past_len = past[0].shape[2]
            if self.tied:
                hidden = torch.index_select(self.head_t, 1, input_ids.reshape(-1)).t().reshape(input_ids.shape[0], new, -1)
            else:
                hidden = torch.nn.functional.embedding(input_ids, self.embed)
            positions = torch.arange(new, dtype=torch.int64) + past_len
            freqs = positions.float()[:, None] * self.inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos()[None, None], emb.sin()[None, None]
            total = torch.arange(new + past_len, dtype=torch.int64)
            blocked = total[None, :] > positions[:, None]  # a position sees itself and what came before
            mask = torch.zeros(blocked.shape, dtype=torch.float32).masked_fill(blocked, float("-inf"))
            presents = []
            for i in range(n_layers):
                w = self.weights[9 * i : 9 * i + 9]
                adapters = {t: (lora[14 * i + 2 * j], lora[14 * i + 2 * j + 1]) for j, t in enumerate(LORA_TARGETS)}

                def project(x: Any, weight: Any, target: str, adapters: dict = adapters) -> Any:
                    a, b = adapters[target]
                    return torch.matmul(x, weight.t()) + torch.matmul(torch.matmul(x, a.t()), b.t()) * scale

                x = rms_norm(hidden, w[0])
                batch = x.shape[0]
                q = project(x, w[2], "q_proj").reshape(batch, new, heads, head_dim).transpose(1, 2)
                k = project(x, w[3], "k_proj").reshape(batch, new, kv_heads, head_dim).transpose(1, 2)
                v = project(x, w[4], "v_proj").reshape(batch, new, kv_heads, head_dim).transpose(1, 2)
                q = q * cos + rotate_half(q) * sin
                k = k * cos + rotate_half(k) * sin
                keys = torch.cat((past[2 * i], k), dim=2)
                values = torch.cat((past[2 * i + 1], v), dim=2)
                presents += [keys, values]
                group = heads // kv_heads
                keys_all = keys[:, :, None].expand(-1, -1, group, -1, -1).reshape(batch, heads, -1, head_dim)
                values_all = values[:, :, None].expand(-1, -1, group, -1, -1).reshape(batch, heads, -1, head_dim)
                scores = torch.matmul(q, keys_all.transpose(2, 3)) * (1.0 / math.sqrt(head_dim)) + mask
                attended = torch.matmul(torch.softmax(scores, dim=-1), values_all)
                attended = attended.transpose(1, 2).reshape(batch, new, heads * head_dim)
                hidden = hidden + project(attended, w[5], "o_proj")
                x = rms_norm(hidden, w[1])
                gated = torch.nn.functional.silu(project(x, w[6], "gate_proj")) * project(x, w[7], "up_proj")
                hidden = hidden + project(gated, w[8], "down_proj")
            last = rms_norm(hidden[:, -1:], self.final_norm)
            logits = torch.matmul(last, self.head_t)[:, 0]
            return (logits, *presents)

    return DecoderStep().eval()


def export_decoder(model: Any, target: Path, source: Path | None = None) -> None:
    """Export `model`'s decoding step to `target` (its weights in `weights_file(target)`),
    optimized once for ONNX Runtime, atomically: written in a temporary folder and renamed
    into place, the graph last, so an interrupted export is never found. `source`, the
    weights file the model was read from, is recorded so that `remove_stale_graphs` can tell
    when it is gone or rewritten."""
    import torch

    config = model.config
    layers = config.num_hidden_layers
    kv_heads = config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    step = decoder_step(model)
    example: list[Any] = [torch.tensor([[1, 2, 3]], dtype=torch.int64)]
    example += [torch.zeros(1, kv_heads, 2, head_dim) for _ in range(2 * layers)]
    for layer in model.model.layers:
        for target_name in LORA_TARGETS:
            weight = (getattr(layer.self_attn, target_name, None) or getattr(layer.mlp, target_name)).weight
            example += [torch.zeros(1, weight.shape[1]), torch.zeros(weight.shape[0], 1)]
    example.append(torch.tensor(1.0))
    names, outputs = input_names(layers), output_names(layers)
    axes: dict[str, dict[int, str]] = {"input_ids": {0: "batch", 1: "new"}, "logits": {0: "batch"}}
    for i in range(layers):
        for kv in ("key", "value"):
            axes[f"past.{i}.{kv}"] = {0: "batch", 2: "past"}
            axes[f"present.{i}.{kv}"] = {0: "batch", 2: "total"}
    for name in lora_input_names(layers):
        axes[name] = {0: f"rank.{name[:-2]}"} if name.endswith(".A") else {1: f"rank.{name[:-2]}"}  # each projection its own rank
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.stem}-", dir=target.parent) as work:
        raw = Path(work) / "traced.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(step, tuple(example), str(raw), input_names=names, output_names=outputs, dynamic_axes=axes,
                              opset_version=17, dynamo=False, do_constant_folding=False)
        optimized = Path(work) / target.name
        optimize_offline(raw, optimized, weights_file(target).name)
        meta: dict[str, Any] = {"layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "format": FORMAT_VERSION}
        if source is not None:
            meta["source"] = source_record(source)
        (Path(work) / "meta.json").write_text(json.dumps(meta))
        os.replace(Path(work) / weights_file(target).name, weights_file(target))
        os.replace(Path(work) / "meta.json", target.with_suffix(".json"))
        os.replace(optimized, target)  # last: a graph file is only ever found complete
    for stale in target.parent.glob(f"{target.stem.rsplit('-v', 1)[0]}-v*"):  # these weights' exports of older formats
        if not stale.name.startswith(target.stem + "."):
            stale.unlink(missing_ok=True)


def source_record(source: Path) -> dict[str, Any]:
    """What identifies the weights a graph was exported from: their file, size and time."""
    stat = source.stat()
    return {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def stale(graph: Path) -> bool:
    """Whether the weights `graph` was exported from are gone or were rewritten since. A
    graph that recorded no source (exported before sources were recorded, or by a caller
    that gave none) is never called stale: nothing says what it came from."""
    try:
        recorded = json.loads(graph.with_suffix(".json").read_text()).get("source")
    except (OSError, ValueError):
        return False
    if not recorded:
        return False
    path = Path(recorded["path"])
    try:
        return source_record(path) != recorded
    except OSError:  # the weights file is gone
        return True


def remove_stale_graphs(folder: Path) -> int:
    """Delete the exports in `folder` whose weights are gone or rewritten (each is about the
    model's size: 540 MB for SmolLM2-135M, which a removed or re-saved model would otherwise
    leave in the cache for good). Returns the bytes freed."""
    freed = 0
    for graph in folder.glob("*.onnx") if folder.is_dir() else ():
        if stale(graph):
            for part in (graph, weights_file(graph), graph.with_suffix(".json")):  # the graph first: never found half-removed
                try:
                    freed += part.stat().st_size
                    part.unlink()
                except FileNotFoundError:
                    pass
    return freed


def weights_file(graph: Path) -> Path:
    """The graph's weights, stored beside it (ONNX external data), which ONNX Runtime maps
    into memory instead of parsing and copying 540 MB out of the graph file."""
    return graph.with_suffix(".data")


def optimize_offline(raw: Path, target: Path, weights_name: str) -> None:
    """ONNX Runtime's graph optimizations (fusions, constant folding) applied once and saved,
    so a session opens the result with none to run: opening took 2.0 s with the
    optimizations at load, 0.07 s this way (scratch measurement, SmolLM2-135M)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # not ALL: no CPU-specific layouts
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", weights_name)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    onnxruntime.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
