"""Which weights a version serves, decided from its manifest and the store alone.

`consolidate.version_model` builds the torch model from this decision; `ask` reads the same
decision to answer on ONNX Runtime without importing torch (model/onnx_model.py). Keeping the
decision in one torch-free place means the two engines can never serve different modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lifelong.learn.router import DEFAULT_RADIUS
from lifelong.memory.records import Memory
from lifelong.versions.layout import ADAPTER
from lifelong.versions.manifest import Manifest
from lifelong.versions.registry import BASE_VERSION, VersionRegistry


@dataclass(frozen=True)
class ServedWeights:
    """The foundation under a version (`merge_id` None: the base model) and what runs on it:
    nothing, one `adapter` on every input, or a routed `library` of modules (routed True,
    even when no module of it may serve any more)."""

    merge_id: str | None
    adapter: Path | None = None
    routed: bool = False
    library: tuple[str, ...] = ()
    radius: float = DEFAULT_RADIUS


def served_weights(registry: VersionRegistry, version_id: str, existing: Mapping[int, Memory] | None,
                   radius: float | None = None) -> ServedWeights:
    """What `version_id` serves. With `existing` (the version's memories still in the store,
    by id), only what may still serve: the library's modules whose memories are all current
    and unchanged, an unrouted module only if none of its memories was forgotten. Without
    it, the version as it was trained."""
    merge_id = registry.foundation_id(version_id)
    if version_id == BASE_VERSION:
        return ServedWeights(merge_id)
    manifest = registry.get(version_id)
    if manifest.kind != "module":
        return ServedWeights(merge_id)
    if not manifest.modules:
        if existing is not None and tainted(manifest, existing):
            return ServedWeights(merge_id)
        return ServedWeights(merge_id, adapter=registry.path(version_id) / ADAPTER)
    chosen = radius if radius is not None else float(manifest.hyperparameters.get("router_radius", DEFAULT_RADIUS))
    if existing is None:
        modules = tuple(manifest.modules)
    else:
        modules = tuple(valid_library(registry, manifest.modules, {i: m for i, m in existing.items() if m.current}))
    return ServedWeights(merge_id, routed=True, library=modules, radius=chosen)


def tainted(manifest: Manifest, existing: Mapping[int, Memory]) -> list[int]:
    """Memories an unrouted module learned that have since been forgotten: the module must
    not serve (a superseded memory is not taint: the next sleep continues the module and
    learns the replacement)."""
    return [i for i in manifest.memory_ids if i not in existing]


def valid_library(registry: VersionRegistry, modules: Sequence[str], current: Mapping[int, Memory]) -> dict[str, list[int]]:
    """The modules whose memories are all still current and unchanged, each with the memory
    ids it learned. A module that learned a memory since superseded or forgotten stops
    serving at once, and the next sleep learns its memories that are still current again in
    a fresh module (a local rebuild)."""
    valid = {}
    for origin in modules:
        manifest = registry.get(origin)
        if not (registry.path(origin) / ADAPTER).is_dir():
            continue  # its weights were deleted by a forget
        if all(i in current and current[i].content_hash == manifest.memory_hashes.get(str(i)) for i in manifest.own_memory_ids):
            valid[origin] = list(manifest.own_memory_ids)
    return valid
