"""Compile a model's decoder layers for one training run, then give the eager ones back.

Eager PyTorch runs a training step of a small model on a CPU as thousands of separate kernels:
the norms, rotary embeddings, activations, residual adds and LoRA's casts and scaling each read
and write whole activations, and on a 2-core CPU those memory-bound kernels and the copies
between them take about as long as the matrix products (profiled in README, issue 16).
`torch.compile` fuses them. Every decoder layer runs the same code, so compiling the layers
one by one ("regional compilation") traces one layer and reuses its graph for all of them: on
SmolLM2-135M a cold compile took 68-106 s and 16-18 s from inductor's on-disk cache, against 331 s
and 105 s for the whole model at once. The compile is a fixed cost paid before the first step,
so it pays off on long sleeps only; it is off unless asked for (`TrainConfig.compile_layers`).

The compiled forward is an instance attribute shadowing the class's method, undone on exit:
the gate and serving that follow run the same eager code as a model never trained here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def decoder_layers(causal_lm: Any) -> list[Any]:
    """The repeated decoder layers of a transformers causal LM (`model.layers`), or none for a
    model laid out otherwise."""
    layers = getattr(getattr(causal_lm, "model", None), "layers", None)
    return list(layers) if layers is not None else []


def compiler_available() -> bool:
    """Inductor builds its CPU kernels with a C++ compiler; without one the first compiled
    step fails deep inside torch, so `--compile` checks first."""
    import shutil

    return any(shutil.which(name) for name in ("c++", "g++", "clang++"))


@contextlib.contextmanager
def compiled_decoder_layers(causal_lm: Any, enabled: bool) -> Iterator[bool]:
    """Inside, every decoder layer of `causal_lm` runs compiled (dynamic shapes: packed batches
    change width every step); yields whether it does. Raises InputError when no C++ compiler is
    on PATH."""
    layers = decoder_layers(causal_lm) if enabled else []
    if not layers:
        yield False
        return
    if not compiler_available():
        from lifelong.errors import InputError

        raise InputError("--compile needs a C++ compiler on PATH (g++ or clang++); install one, or sleep without --compile")
    import torch
    import torch._dynamo

    # One graph serves every layer; the first layer's input needs no gradient and the rest do,
    # so two variants are compiled. The limit leaves room for both times a few shape guards.
    # Dynamo keeps what it compiled for the layers' shared code for the rest of the process, so
    # only a process's first compiled training pays the compile.
    before = [vars(layer).get("forward") for layer in layers]  # an instance-level forward (a hook's) comes back
    with torch._dynamo.config.patch(recompile_limit=max(16, 2 * len(layers))):
        try:
            for layer in layers:
                layer.forward = torch.compile(layer.forward, dynamic=True)
            yield True
        finally:
            for layer, forward in zip(layers, before, strict=True):
                if forward is None:
                    vars(layer).pop("forward", None)
                else:
                    layer.forward = forward
