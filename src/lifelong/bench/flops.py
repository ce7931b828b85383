"""Model FLOPs utilisation: a trainer's useful arithmetic against this CPU's measured peak.

The peak is a large square matrix product timed in the same run (2048^3, bf16 and fp32), since
shared machines and CPU models differ. The useful arithmetic per trained token counts the
linear layers of the transformer body only: 2 FLOPs per weight forward and 2 more backward
for the input gradients (the base weights are frozen, so no weight gradients), plus the LoRA
factors' forward, input- and weight-gradient (6 per LoRA weight). Attention scores and the
vocabulary projection are left out, so the figure is a lower bound on the work done.
"""

from __future__ import annotations

from typing import Any

import torch

from lifelong.learn.precision import linear_seconds


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` GFLOP/s of one size^3 matrix product in `dtype`."""
    return 2 * size**3 / linear_seconds(dtype, size, size, size, repeats) / 1e9


def peaks() -> dict[str, float]:
    return {"bf16_gflops": matmul_gflops(torch.bfloat16), "fp32_gflops": matmul_gflops(torch.float32)}


def training_flops_per_token(model: Any) -> float:
    """Useful FLOPs per trained token of a LoRA model (see the module docstring)."""
    frozen = lora = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or "lm_head" in name:
            continue
        if "lora_A" in name or "lora_B" in name:
            lora += module.weight.numel()
        else:
            frozen += module.weight.numel()
    return 4.0 * frozen + 6.0 * lora


def utilisation(tokens_per_second: float, flops_per_token: float, peak: dict[str, float]) -> dict[str, float]:
    """Achieved GFLOP/s and its share of each peak; `mfu` is over the faster one (on some CPUs
    and days bf16 products run slower than fp32: then bf16's peak is not the ceiling)."""
    achieved = tokens_per_second * flops_per_token / 1e9
    return {"achieved_gflops": achieved, "mfu": achieved / max(peak["bf16_gflops"], peak["fp32_gflops"]),
            "mfu_bf16": achieved / peak["bf16_gflops"], "mfu_fp32": achieved / peak["fp32_gflops"]}
