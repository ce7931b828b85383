"""Write a version as files other engines load: standard PEFT adapters, the weights they apply
to, the manifest, and on request the merged weights.

lifelong's own server routes each request to the module that learned its topic. An engine
such as vLLM serves LoRA adapters by name instead (`--enable-lora --lora-modules NAME=DIR`),
so a routed library is exported as one adapter per module and the client names the module;
the router itself does not travel. Modules that learned a memory since forgotten or
superseded are never exported: what `forget` took out of serving must not leave by the back
door. The base is exported too, because the adapters were trained on the exact weights
lifelong loaded (for the packaged models, dequantised from GGUF; after a merge, the merged
checkpoint), and an adapter applied to other weights answers differently.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import InputError
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.versions import BASE_VERSION, VersionRegistry
from lifelong.versions.registry import MANIFEST
from lifelong.versions.layout import ADAPTER

# What vLLM's LoRA loader accepts (vllm/lora: the ranks it allocates, the weight-name parser,
# the Llama family's packed modules). Checked here because vLLM cannot run on this machine.
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head")
VLLM_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")


@dataclass
class ExportReport:
    version: str
    folder: Path
    adapters: dict[str, Path] = field(default_factory=dict)  # module name -> PEFT adapter folder
    base: Path | None = None
    merged: Path | None = None
    left_out: list[str] = field(default_factory=list)  # modules not exported: they learned forgotten memories
    routed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "folder": str(self.folder),
                "adapters": {k: str(v) for k, v in self.adapters.items()},
                "base": str(self.base) if self.base else None, "merged": str(self.merged) if self.merged else None,
                "left_out": self.left_out, "routed": self.routed}


def exportable_modules(registry: VersionRegistry, version_id: str, existing: Mapping[int, Memory]) -> tuple[list[str], list[str]]:
    """(modules whose adapters may leave, modules held back because they learned a memory that
    is no longer current). A merge version has no module; its weights are the export."""
    from lifelong.versions.serving import tainted, valid_library

    manifest = registry.get(version_id)
    if manifest.kind != "module":
        return [], []
    if not manifest.modules:
        return ([], [version_id]) if tainted(manifest, existing) else ([version_id], [])
    current = {i: m for i, m in existing.items() if m.current}
    valid = list(valid_library(registry, manifest.modules, current))
    return valid, [m for m in manifest.modules if m not in valid]


def vllm_layout_problems(adapter: Path, max_lora_rank: int = 16) -> list[str]:
    """Why vLLM would refuse this adapter folder (empty when it would load it): the files it
    reads, a rank it allocates, target modules its Llama-family models take, no DoRA, and
    weight names its parser understands (`base_model.model.<module>.lora_A.weight`)."""
    problems: list[str] = []
    config_path = adapter / "adapter_config.json"
    if not config_path.is_file():
        return [f"{adapter}: adapter_config.json is missing"]
    config = json.loads(config_path.read_text(encoding="utf-8"))
    weights = next((adapter / name for name in VLLM_WEIGHT_FILES if (adapter / name).is_file()), None)
    if weights is None:
        problems.append(f"{adapter}: no adapter_model.safetensors")
    if config.get("peft_type") != "LORA":
        problems.append(f"peft_type {config.get('peft_type')!r} is not LORA")
    rank = int(config.get("r", 0))
    if rank not in VLLM_RANKS or rank > max_lora_rank:
        problems.append(f"rank {rank} needs --max-lora-rank {rank} and one of {VLLM_RANKS}")
    if config.get("use_dora"):
        problems.append("DoRA adapters are not served by vLLM")
    if config.get("bias", "none") != "none":
        problems.append(f"bias {config.get('bias')!r} needs vLLM's LoRA bias support; export with bias 'none'")
    if config.get("modules_to_save"):
        problems.append(f"modules_to_save {config['modules_to_save']} are not LoRA weights")
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    unsupported = sorted(t for t in targets if t.split(".")[-1] not in VLLM_MODULES)
    if unsupported:
        problems.append(f"target modules {unsupported} are not LoRA-capable in vLLM's Llama family")
    if weights is not None and weights.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            names = list(handle.keys())
        for name in names:
            if not name.startswith("base_model.model.") or not name.endswith((".lora_A.weight", ".lora_B.weight")):
                problems.append(f"weight {name} is not a name vLLM's parser takes (base_model.model.<module>.lora_A/B.weight)")
                break
        modules = {n.removeprefix("base_model.model.").rsplit(".lora_", 1)[0].split(".")[-1] for n in names}
        if modules - set(targets):
            problems.append(f"weights for {sorted(modules - set(targets))} are not in target_modules")
        if not names:
            problems.append("the adapter holds no weights")
    return problems


def _save_model(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def export_version(registry: VersionRegistry, version_id: str, foundation_for: Callable[[str], LanguageModel],
                   existing: Mapping[int, Memory], folder: Path, merged: bool = False, base: bool = True) -> ExportReport:
    """Write `version_id` into `folder` (which must not exist or be empty):

    adapters/<module>/   one PEFT adapter per module that may still serve
    base/                the weights those adapters apply to (config, safetensors, tokenizer)
    merged/              with merged=True: the base with every exported module folded in
    manifest.json        the version's manifest; export.json says what was written and left out

    `foundation_for(version_id)` gives the weights the version builds on (the base or a merge).
    """
    if version_id == BASE_VERSION:
        raise InputError("the base version has no module to export; name a version from `lifelong versions`")
    manifest = registry.get(version_id)
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder} is not empty; name a new folder for the export")
    modules, left_out = exportable_modules(registry, version_id, existing)
    if manifest.kind == "module" and not modules:
        raise InputError(f"{version_id}'s modules all learned memories since forgotten or superseded; "
                         f"run `lifelong sleep` to rebuild them, then export the new version")
    foundation = foundation_for(version_id)  # loaded only once the request is known to be sound
    folder.mkdir(parents=True, exist_ok=True)
    report = ExportReport(version_id, folder, left_out=left_out, routed=bool(manifest.modules))
    if base or manifest.kind == "merge":
        report.base = _save_model(foundation.model, foundation.tokenizer, folder / "base")
    for module in modules:
        target = folder / "adapters" / module
        shutil.copytree(registry.path(module) / ADAPTER, target)
        config_path = target / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = str(report.base.resolve()) if report.base else foundation.name
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
        target.joinpath("README.md").unlink(missing_ok=True)  # PEFT's empty model card, not ours
        report.adapters[module] = target
    if merged and modules:
        report.merged = _save_model(_merge_adapters(foundation, report.adapters), foundation.tokenizer, folder / "merged")
    shutil.copy(registry.path(version_id) / MANIFEST, folder / MANIFEST)
    (folder / "export.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return report


def _merge_adapters(foundation: LanguageModel, adapters: Mapping[str, Path]) -> Any:
    """The foundation with every adapter's low-rank update added to its weights (on a copy).
    For a routed library this applies every module to every input: the router does not
    survive a merge, which is why adapters are the default export."""
    from lifelong.consolidate import with_modules

    own = foundation.with_own_weights()
    return with_modules(own, adapters).merge_and_unload(adapter_names=list(adapters))  # writes own's weights only
