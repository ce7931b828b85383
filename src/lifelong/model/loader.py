"""Resolve a model reference (packaged name, local folder or file, hub id) to a LanguageModel.

Packaged GGUF models are dequantised once into a safetensors folder under the cache, because
GGUF dequantisation takes ~20 s while a safetensors reload takes well under a second.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from lifelong.errors import InputError, ModelNotFoundError
from lifelong.model.language_model import LanguageModel
from lifelong.model.registry import CONVERTED_MARKER, DEFAULT_MODEL, PACKAGED_MODELS, PackagedModel, conversion_stamp, converted_dir
from lifelong.progress import quiet_libraries, status

# What a Hugging Face hub id looks like: owner/name, letters, digits, '.', '-', '_'.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def where_models_go(placeholder: str = "NAME") -> str:
    """Where a user passes another model; true for every command (sleep and merge take no --model)."""
    return f"--model {placeholder} for ask and chat, or `lifelong config --model {placeholder}` to change this mind's own"


def check_model_reference(reference: str) -> str:
    """The reference as it should be stored (an existing path made absolute), or InputError.

    Called when a model is chosen (init, config), so a name that can never load is refused at
    once instead of failing later in ask or sleep. A hub id is accepted by its shape alone: it
    may be downloadable, and checking would need the network.
    """
    if reference in PACKAGED_MODELS:
        return reference
    path = Path(reference).expanduser()
    if path.exists():
        if (path.is_file() and path.suffix == ".gguf") or (path.is_dir() and _is_model_folder(path)):
            return str(path.resolve())
        raise InputError(f"'{reference}' is not a model folder (config.json and weights, or a .gguf file inside) "
                         f"nor a .gguf file; pass one of those, or a packaged name ({_names()})")
    if _HUB_ID.fullmatch(reference) and not reference.startswith((".", "~")) and not reference.endswith(".gguf"):
        return reference
    raise InputError(f"model '{reference}' is not a packaged model ({_names()}), an existing folder or .gguf file, "
                     f"or a Hugging Face hub id (owner/name); pass one of those to --model")


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() or any(path.glob("*.gguf"))


def ensure_converted(entry: PackagedModel) -> Path:
    """Return the cached safetensors folder of a packaged model, converting it on first use.

    The conversion writes to a temporary sibling and renames it into place, so an
    interrupted conversion never leaves a folder that looks complete.
    """
    target = converted_dir(entry)
    gguf = entry.locate_gguf()
    stamp = conversion_stamp(gguf)
    marker = target / CONVERTED_MARKER
    if marker.is_file() and marker.read_text().strip() == stamp:
        return target

    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=target.parent))
    try:
        with status(f"Converting {entry.name} from GGUF to safetensors (once; later loads take ~1 s)"), quiet_libraries():
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            # The dequantised weights are plain fp32; drop the quantizer so the model can be
            # saved and trained like any other checkpoint.
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / CONVERTED_MARKER).write_text(stamp + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _from_pretrained(path_or_id: str, gguf_file: str | None = None):  # noqa: ANN202 - HF types
    """The real from_pretrained, without transformers' per-tensor bar: our own status line
    already says what is loading and how long it took."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    with quiet_libraries():
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path_or_id, **kwargs)
    return model, tokenizer


def load_model(reference: str | None = None) -> LanguageModel:
    """Load a model by packaged name (`smollm2-135m`, `gemma3-270m`), local path, or hub id."""
    reference = reference or DEFAULT_MODEL
    entry = PACKAGED_MODELS.get(reference)
    if entry is not None:
        folder = ensure_converted(entry)
        with status(f"Loading {entry.name}"):
            model, tokenizer = _from_pretrained(str(folder))
        return LanguageModel(model, tokenizer, name=entry.name, needs_bos=entry.needs_bos)

    path = Path(reference).expanduser()
    if path.exists():
        return _load_local(path, reference)
    if reference.startswith((".", "/", "~")) or reference.endswith(".gguf"):
        raise ModelNotFoundError(f"model path '{reference}' does not exist; use an existing folder or a packaged name "
                                 f"({_names()}) ({where_models_go()})")
    return _load_hub(reference)


def _load_local(path: Path, reference: str) -> LanguageModel:
    gguf_file = None
    folder = path
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelNotFoundError(f"model file '{reference}' is not a .gguf file; pass a model folder (config.json + weights) "
                                     f"or a .gguf file ({where_models_go('PATH')})")
        folder, gguf_file = path.parent, path.name
    elif not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if not ggufs:
            raise ModelNotFoundError(f"'{reference}' has no config.json and no .gguf file; pass a Hugging Face model folder "
                                     f"({where_models_go('PATH')})")
        gguf_file = ggufs[0].name
    try:
        with status(f"Loading {reference}"):
            model, tokenizer = _from_pretrained(str(folder), gguf_file)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"could not load the model at '{reference}': {exc}".splitlines()[0]) from exc
    return LanguageModel(model, tokenizer, name=str(reference))


def _load_hub(reference: str) -> LanguageModel:
    try:
        with status(f"Loading {reference} from the Hugging Face Hub"):
            model, tokenizer = _from_pretrained(reference)
    except Exception as exc:  # noqa: BLE001 - any hub failure gets the same actionable message
        raise ModelNotFoundError(
            f"could not load '{reference}': it is not a packaged model ({_names()}), not a local path, "
            f"and the Hugging Face Hub could not provide it (offline or unknown id: {type(exc).__name__}); "
            f"download it elsewhere and pass its folder ({where_models_go('PATH')}), or use the default '{DEFAULT_MODEL}'"
        ) from exc
    return LanguageModel(model, tokenizer, name=reference)


def _names() -> str:
    return ", ".join(PACKAGED_MODELS)
