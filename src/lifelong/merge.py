"""Weights: fold the active LoRA module into a new base checkpoint, behind the same gates.

The merge happens on a copy; the merged weights are checked for NaN/inf, compared with the
module they came from (same answers, same retention), and only then written as a version of
kind "merge" and made active. The original base model is never touched, so rollback to any
earlier version still works.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lifelong.consolidate import SleepResult, kl_to_base, tainted, with_adapter
from lifelong.versions.layout import ADAPTER, CHECKPOINT, RETENTION_PROBES, TRAINING_DATA
from lifelong.evaluate.gate import GateMetrics, GatePolicy, judge
from lifelong.errors import MindError
from lifelong.evaluate.probes import acquisition_probes, accuracy, load_probes, retention_agreement
from lifelong.learn.anchors import HELD_OUT_CHAT, HELD_OUT_RAW
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel, left_padded
from lifelong.prompt import closed_book
from lifelong.versions import BASE_VERSION, Manifest, Verdict, VersionRegistry

MAX_LOGIT_GAP = 1e-2  # merged vs module on the anchor prompts; float rounding only


def _anchor_batch(lm: LanguageModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out anchors, left-padded into one batch, for comparing merged and module logits."""
    rows = [lm.encode(lm.format_chat(closed_book(p))) for p in HELD_OUT_CHAT] + [lm.encode(t) for t in HELD_OUT_RAW]
    return left_padded(rows, lm.tokenizer.pad_token_id)


def merge_active(
    mind_path: Path,
    base: LanguageModel,
    foundation_for: Callable[[str], LanguageModel],
    memories: list[Memory],
    policy: GatePolicy = GatePolicy(),
    report: Callable[[str], None] = lambda _m: None,
) -> SleepResult:
    """`foundation_for(version_id)` gives the checkpoint a version builds on; it is called
    with the lock held (see run_sleep)."""
    registry = VersionRegistry(mind_path)
    with registry.exclusive("merge"):
        registry.clean_incomplete()
        return _merge(registry, mind_path, base, foundation_for, memories, policy, report)


def _merge(registry: VersionRegistry, mind_path: Path, base: LanguageModel, foundation_for: Callable[[str], LanguageModel],
           memories: list[Memory], policy: GatePolicy, report: Callable[[str], None]) -> SleepResult:
    active_id = registry.active_id()
    if active_id == BASE_VERSION:
        raise MindError("nothing to merge: the active version is the base model; run `lifelong sleep` first")
    module = registry.get(active_id)
    if module.kind != "module":
        raise MindError(f"{active_id} is already a merged checkpoint; sleep again to create a module to merge")
    if module.modules:
        raise MindError(f"{active_id} is a routed module library: each module acts only on inputs about its memories, and "
                        f"merging it into the weights would apply it to every input; sleep with --strategy kl+replay to build "
                        f"an unrouted module to merge")
    forgotten = tainted(module, {m.id: m for m in memories})
    if forgotten:
        raise MindError(f"{active_id} learned {len(forgotten)} memories since forgotten ({', '.join(f'#{i}' for i in forgotten[:5])}); "
                        f"run `lifelong sleep` to rebuild it without them before merging")
    foundation = foundation_for(module.parent or BASE_VERSION)  # what the module was trained on
    module_lm = with_adapter(foundation, registry.path(active_id) / ADAPTER)
    report(f"merging {active_id} into a copy of its base")
    merged_model = with_adapter(foundation.with_own_weights(),
                                 registry.path(active_id) / ADAPTER).model.merge_and_unload()
    merged = LanguageModel(merged_model, base.tokenizer, base.name, base.needs_bos)

    report("checking the merged weights against the module and the gates")
    finite = all(bool(torch.isfinite(p).all()) for p in merged_model.parameters())
    input_ids, attention = _anchor_batch(base)
    with torch.inference_mode():
        gap = float((merged_model(input_ids=input_ids, attention_mask=attention).logits
                     - module_lm.model(input_ids=input_ids, attention_mask=attention).logits).abs().max())
    current = {m.id: m for m in memories if m.current}
    probes = acquisition_probes([current[i] for i in module.memory_ids if i in current])
    retention = load_probes(mind_path / RETENTION_PROBES) if (mind_path / RETENTION_PROBES).is_file() else []
    gate_metrics = GateMetrics(
        acquisition=accuracy(merged, probes) if probes else 0.0,
        acquisition_parent=accuracy(module_lm, probes) if probes else 0.0,  # the module being folded in
        acquisition_probes=len(probes),
        retention_agreement=retention_agreement(merged, retention),
        kl_drift=kl_to_base(base, merged),
        retention_probes=len(retention),
    )
    metrics = {"finite": finite, "max_logit_gap_to_module": gap, **gate_metrics.to_dict()}
    integrity = []  # checks only a merge needs, before the shared gate
    if not finite:
        integrity.append("the merged weights contain NaN or inf")
    if not gap <= MAX_LOGIT_GAP:
        integrity.append(f"merged logits differ from the module's by {gap:.3g} > {MAX_LOGIT_GAP}")
    if not retention:
        integrity.append("no retention probes recorded for this mind; retention cannot be checked")
    gate = judge(gate_metrics, policy, require_gain=False)
    reasons = integrity + gate.reasons
    verdict = Verdict(passed=not reasons, reasons=reasons)

    def write(folder: Path) -> Manifest:
        merged_model.save_pretrained(folder / CHECKPOINT)
        base.tokenizer.save_pretrained(folder / CHECKPOINT)
        if (registry.path(active_id) / TRAINING_DATA).is_file():
            shutil.copy2(registry.path(active_id) / TRAINING_DATA, folder / TRAINING_DATA)  # replay continues after a merge
        return Manifest(
            id=registry.new_id(), parent=active_id, created_at=time.time(), kind="merge",
            memory_ids=module.memory_ids, memory_hashes=module.memory_hashes,
            synthetic_data_hash=module.synthetic_data_hash, hyperparameters={"merged": active_id, "gate": policy.__dict__},
            metrics=metrics, verdict=verdict, base_model=base.name, data_sources=module.data_sources,
        )

    manifest = registry.create(write)
    if verdict.passed:
        registry.activate(manifest.id, "merged")
        return SleepResult(manifest, True, f"{manifest.id} (merge of {active_id}) promoted")
    return SleepResult(manifest, False, f"{manifest.id} kept for inspection, not activated: " + "; ".join(reasons))


def load_checkpoint(folder: Path, base: LanguageModel) -> LanguageModel:
    from transformers import AutoModelForCausalLM

    if not folder.is_dir():
        raise MindError(f"merged checkpoint {folder} is missing; roll back to an earlier version with `lifelong rollback`")
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=base.model.dtype)
    return LanguageModel(model, base.tokenizer, base.name, base.needs_bos)
