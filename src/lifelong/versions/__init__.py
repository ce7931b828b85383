"""Versions of a mind's model: lineage, manifests, the atomic active pointer, rollback."""

from lifelong.versions.manifest import Manifest, Verdict
from lifelong.versions.registry import BASE_VERSION, VersionRegistry

__all__ = ["BASE_VERSION", "Manifest", "Verdict", "VersionRegistry"]
