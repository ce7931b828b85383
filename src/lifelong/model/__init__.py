"""Model layer: load a causal LM (packaged default, local folder, or hub id), generate, score.

Names are resolved on first use (PEP 562), so importing the package for its registry does not
import torch: commands that never touch the model (`recall`, `learn`) start fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {"LanguageModel": "lifelong.model.language_model", "load_model": "lifelong.model.loader",
          "DEFAULT_MODEL": "lifelong.model.registry", "PACKAGED_MODELS": "lifelong.model.registry"}

__all__ = ["DEFAULT_MODEL", "PACKAGED_MODELS", "LanguageModel", "load_model"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lifelong.model' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
