"""Forgetting that reaches the weights and every file a version keeps.

Removing a memory from the store is not enough: a module trained on it can still answer from
its weights, and a version folder keeps the examples it was trained on. So a forget also
walks every version: rows naming the memory (or quoting its text) leave `training_data.jsonl`
and `trained_on.jsonl`, the gate's recorded answers about it leave `gate_answers.jsonl`, its
router keys leave `router_keys.npy`, and a module that learned it loses its adapter weights
(the folder keeps a `forgotten.json` saying which memories took them). Serving already skips
such a module (`consolidate.version_model`); the next sleep learns the module's other, still
current memories again in a fresh module.

A merged checkpoint that folded a forgotten memory into its weights loses them the same way
(the folder keeps its manifest and the marker); the versions built on it can no longer be
served or activated, so forget moves the active pointer to the newest version of the lineage
that stands on intact weights (`servable_ancestor`), and the next sleep relearns from there
what is still current.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.learn.router import KEY_MEMORIES_FILE, KEYS_FILE
from lifelong.memory.records import Memory
from lifelong.versions import BASE_VERSION, Manifest, VersionRegistry
from lifelong.versions.layout import ADAPTER, CHECKPOINT, FORGOTTEN_MARKER, GATE_ANSWERS, TRAINED_ON, TRAINING_DATA



def weights_folder(registry: VersionRegistry, manifest: Manifest) -> Path:
    """Where a version keeps its weights: a module's adapter, or a merge's folded checkpoint."""
    return registry.path(manifest.id) / (ADAPTER if manifest.kind == "module" else CHECKPOINT)


def weights_deleted(registry: VersionRegistry, manifest: Manifest) -> list[int]:
    """The forgotten memories that took this version's weights with them; [] if intact."""
    marker = registry.path(manifest.id) / FORGOTTEN_MARKER
    if not marker.is_file() or weights_folder(registry, manifest).exists():
        return []
    return list(json.loads(marker.read_text(encoding="utf-8"))["memory_ids"])


def lost_foundation(registry: VersionRegistry, version_id: str) -> str | None:
    """The merge under `version_id` (itself included) whose weights a forget deleted: such a
    version cannot be served, as everything built on it stood on those weights."""
    merge_id = registry.foundation_id(version_id)
    while merge_id is not None:
        manifest = registry.get(merge_id)
        if weights_deleted(registry, manifest):
            return merge_id
        merge_id = registry.foundation_id(manifest.parent) if manifest.parent else None
    return None


def servable_ancestor(registry: VersionRegistry, version_id: str) -> str:
    """The newest version in `version_id`'s lineage (itself included) that stands on no deleted
    merge and whose own weights are intact, else the base: where the active pointer goes when a
    forget deletes a merged checkpoint the active version stands on."""
    for candidate in registry.lineage(version_id):
        manifest = registry.get(candidate)
        if lost_foundation(registry, candidate) is None and not weights_deleted(registry, manifest):
            return candidate
    return BASE_VERSION


def scrub_versions(registry: VersionRegistry, memories: list[Memory]) -> list[str]:
    """Remove every trace of `memories` from every version folder; returns the versions changed."""
    ids = {m.id for m in memories}
    texts = [m.text for m in memories]

    def names_one(row: dict[str, Any], fields: list[str]) -> bool:
        return bool(ids & set(row.get("memory_ids") or ())) or any(t in f for t in texts for f in fields)

    touched = []
    for manifest in registry.list():
        folder = registry.path(manifest.id)
        changed = _drop_rows(folder / TRAINING_DATA, lambda row: names_one(
            row, [m.get("content", "") for m in row.get("prompt", [])] + [row.get("answer", "")]))
        changed |= _drop_rows(folder / TRAINED_ON, lambda row: names_one(row, [row.get("text", "")]))
        changed |= _drop_rows(folder / GATE_ANSWERS, lambda row: names_one(row, []))
        changed |= _drop_keys(folder, ids)
        learned = sorted(ids & set(manifest.trained_memory_ids))  # not the library's: its older modules answer for those
        weights = weights_folder(registry, manifest)
        if learned and weights.exists():
            _write_marker(folder, learned)
            shutil.rmtree(weights)
            changed = True
        if changed:
            touched.append(manifest.id)
    return touched


def _write_marker(folder: Path, memory_ids: list[int]) -> None:
    marker = folder / FORGOTTEN_MARKER
    earlier = json.loads(marker.read_text(encoding="utf-8"))["memory_ids"] if marker.is_file() else []
    _replace(marker, json.dumps({"memory_ids": sorted({*earlier, *memory_ids}), "at": time.time()}) + "\n")


def _drop_rows(path: Path, drop: Callable[[dict[str, Any]], bool]) -> bool:
    if not path.is_file():
        return False
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if not drop(json.loads(line))]
    if len(kept) == len(lines):
        return False
    _replace(path, "".join(line + "\n" for line in kept))
    return True


def _drop_keys(folder: Path, ids: set[int]) -> bool:
    owners_path = folder / KEY_MEMORIES_FILE
    if not owners_path.is_file():
        return False
    owners = np.load(owners_path)
    keep = ~np.isin(owners, list(ids))
    if keep.all():
        return False
    keys = np.load(folder / KEYS_FILE)
    _save_npy(folder / KEYS_FILE, keys[keep])
    _save_npy(owners_path, owners[keep])
    return True


def _replace(path: Path, text: str) -> None:
    """Write beside, fsync, rename over: a crash leaves the old file or the new one."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(path.stem + ".tmp.npy")
    np.save(temporary, array)
    os.replace(temporary, path)
