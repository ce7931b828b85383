"""Model layer: load a causal LM (packaged default, local folder, or hub id), generate, score."""

from lifelong.model.language_model import LanguageModel
from lifelong.model.loader import load_model
from lifelong.model.registry import DEFAULT_MODEL, PACKAGED_MODELS

__all__ = ["DEFAULT_MODEL", "PACKAGED_MODELS", "LanguageModel", "load_model"]
