"""EWC for LoRA: keep the module's weight change small where the base model's knowledge lives.

Elastic weight consolidation (Kirkpatrick et al. 2017) penalises moving each weight in
proportion to its Fisher information on what should be kept. A LoRA module changes a base
matrix W by delta = B @ A * scale, so the penalty is sum F_W * (delta - delta_parent)^2 over
the adapted matrices, with F_W estimated once on general anchor text (the model's own greedy
continuations, so it measures what the model currently knows rather than any label).
The Fisher is normalised to mean 1, so the weight is comparable across models.

Cost: an elementwise penalty over every adapted matrix touches ~100M numbers per step on the
default model (it made a training step 5x slower). Each matrix's Fisher is therefore
approximated by the outer product of its row and column means, F_ij ~ u_i v_j; with the change
written as a product P @ Q of rank 2r, sum u_i v_j (PQ)_ij^2 = sum((P^T diag(u) P) * (Q diag(v) Q^T)),
which costs O(r^2 (m + n)) per matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lifelong.model.language_model import LanguageModel


def _lora_layers(peft_model: Any) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in peft_model.named_modules() if isinstance(module, LoraLayer) and "default" in module.lora_A}


def lora_factors(module: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(B * scale, A): the module's weight change is their product."""
    return module.lora_B["default"].weight * module.scaling["default"], module.lora_A["default"].weight


class WeightAnchor:
    def __init__(self, lm: LanguageModel, peft_model: Any, texts: Sequence[str]) -> None:
        self.layers = _lora_layers(peft_model)
        fisher = self._fisher(lm, peft_model, texts)
        self.rows = {name: f.mean(1) for name, f in fisher.items()}  # u: (out,)
        self.cols = {name: f.mean(0) / f.mean().clamp_min(1e-30) for name, f in fisher.items()}  # v: (in,)
        self.count = sum(f.numel() for f in fisher.values())
        with torch.no_grad():
            self.start = {name: tuple(t.detach().clone().float() for t in lora_factors(m)) for name, m in self.layers.items()}

    def _fisher(self, lm: LanguageModel, peft_model: Any, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        weights = {name: m.get_base_layer().weight for name, m in self.layers.items()}
        flags = {name: w.requires_grad for name, w in weights.items()}
        for w in weights.values():
            w.requires_grad_(True)
        fisher = {name: torch.zeros_like(w) for name, w in weights.items()}
        try:
            with peft_model.disable_adapter():
                for text in texts:
                    ids = torch.tensor([lm.encode(text)])
                    logits = peft_model(input_ids=ids).logits[0, :-1].float()
                    labels = logits.argmax(-1).detach()  # the model's own predictions: what it knows
                    loss = F.cross_entropy(logits, labels)
                    grads = torch.autograd.grad(loss, list(weights.values()))
                    for name, grad in zip(weights, grads, strict=True):
                        fisher[name] += grad.detach() ** 2
        finally:
            for name, w in weights.items():
                w.requires_grad_(flags[name])
        mean = torch.stack([f.mean() for f in fisher.values()]).mean().clamp_min(1e-30)
        return {name: f / mean for name, f in fisher.items()}

    def __call__(self) -> torch.Tensor:
        """Mean Fisher-weighted squared change of the adapted weights since training began."""
        total = torch.zeros(())
        for name, module in self.layers.items():
            b, a = lora_factors(module)
            b0, a0 = self.start[name]
            p = torch.cat([b.float(), -b0], dim=1)  # (out, 2r)
            q = torch.cat([a.float(), a0], dim=0)  # (2r, in); change = p @ q
            left = p.T @ (self.rows[name][:, None] * p)
            right = (q * self.cols[name][None, :]) @ q.T
            total = total + (left * right).sum()
        return total / max(self.count, 1)
