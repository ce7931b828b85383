"""Answering on ONNX Runtime: what `ask` runs once the served weights' graph is exported.

The same operations `ask` needs from a LanguageModel (format a chat, encode, check the
context window, generate greedily) read from the model's folder with `tokenizers`, Jinja and
ONNX Runtime: no torch, no transformers, so a new process answers in seconds (README,
"Command-line start-up"). A routed library answers by the same plan as the torch model
(model/route_plan.py): each conversation on its module, a module that stepped aside for the
notes asked again closed-book, the answers settled alike. Anything this path cannot do
exactly (sampling, another architecture, a module PEFT saved in another form, a model without
a chat template) stays on the torch model: `onnx_serving.onnx_version_model` returns None and
the caller uses that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from lifelong.errors import MindError
from lifelong.learn.router import Router
from lifelong.model.onnx_decoding import LoraMatrices, OnnxDecoder, read_lora
from lifelong.model.onnx_export import FORMAT_VERSION, weights_file
from lifelong.model.route_plan import BASE_ROWS, Message, route_plan, settle
from lifelong.model.token_rules import answer_stop_ids, check_fits, with_bos

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class ModelFolder:
    """A model's files: `weights` holds config.json and the safetensors the graph is exported
    from, `tokenizer` the tokenizer, chat template and generation config (the same folder for
    a packaged model and a local one)."""

    name: str
    weights: Path
    tokenizer: Path
    needs_bos: bool

    def graph(self, cache: Path) -> Path:
        """The exported graph of these weights: keyed by the weights file's path, size and
        time, so rewritten weights are exported again."""
        stat = (self.weights / WEIGHTS).stat()
        key = hashlib.sha256(f"{(self.weights / WEIGHTS).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        # a local model's name is its path: only the folder's own name goes into the file name
        # (the key tells same-named folders apart), or the export would land beside the model
        return cache / "decoders" / f"{Path(self.name).name}-{key}-v{FORMAT_VERSION}.onnx"


@lru_cache(maxsize=4)
def compiled_template(template: str) -> Any:
    """A chat template compiled as transformers compiles it (its `_compile_jinja_template`:
    a sandboxed Jinja environment with trim_blocks, lstrip_blocks and loop controls, its
    tojson, raise_exception and strftime_now), without importing transformers (0.9 s). A
    template using transformers' own `generation` tag fails to compile here: such a model
    answers on torch."""
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return environment.from_string(template)


def render_chat(template: str, messages: Sequence[Message], special_tokens: Mapping[str, str] | None = None) -> str:
    """The conversation rendered with the generation prompt, as `apply_chat_template` renders
    it (the tokenizer's special tokens are template variables there too)."""
    return compiled_template(template).render(messages=[dict(m) for m in messages], tools=None, documents=None,
                                              add_generation_prompt=True, **dict(special_tokens or {}))


class OnnxLanguageModel:
    """A model's `ask` operations over an exported graph (see module docstring). `modules`:
    the saved adapter folder of every module `router` may pick (a routed library)."""

    def __init__(self, folder: ModelFolder, graph: Path, router: Router | None = None,
                 modules: Mapping[str, Path] | None = None, adapter: Path | None = None) -> None:
        from tokenizers import Tokenizer

        self.name = folder.name
        self.needs_bos = folder.needs_bos
        self.router = router
        self.modules = dict(modules or {})
        self.adapter = adapter  # one unrouted module on every input
        self.tokenizer = Tokenizer.from_file(str(folder.tokenizer / "tokenizer.json"))
        settings = json.loads((folder.tokenizer / "tokenizer_config.json").read_text())
        template_file = folder.tokenizer / "chat_template.jinja"
        self.chat_template = template_file.read_text() if template_file.is_file() else settings.get("chat_template")
        self.special_tokens = {name: token.get("content") if isinstance(token, dict) else token
                               for name in ("bos_token", "eos_token", "unk_token", "pad_token")
                               if isinstance(token := settings.get(name), (str, dict))}
        if self.chat_template:
            compiled_template(self.chat_template)  # a template this renderer cannot compile fails here, before any answer
        config = json.loads((folder.weights / "config.json").read_text())
        self.context_window = int(config.get("max_position_embeddings", 2048))
        self._stop_ids = self._read_stop_ids(folder, settings, config)
        self.bos_id = self._token_id(settings.get("bos_token"))
        self.decoder = OnnxDecoder(graph)
        self._lora: dict[str, LoraMatrices] = {}

    def _token_id(self, token: Any) -> int | None:
        if isinstance(token, dict):
            token = token.get("content")
        return self.tokenizer.token_to_id(token) if isinstance(token, str) else None

    def _read_stop_ids(self, folder: ModelFolder, settings: dict, config: dict) -> list[int]:
        """As LanguageModel.stop_ids: the tokenizer's and the generation config's end of
        sequence and the chat templates' end-of-turn markers."""
        generation = folder.tokenizer / "generation_config.json"
        configured = json.loads(generation.read_text()).get("eos_token_id") if generation.is_file() else config.get("eos_token_id")
        return answer_stop_ids(self._token_id(settings.get("eos_token")), configured, self.tokenizer.token_to_id,
                               self._token_id(settings.get("unk_token")))

    def stop_ids(self) -> list[int]:
        return list(self._stop_ids)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    def format_chat(self, messages: Sequence[Message]) -> str:
        if not self.has_chat_template:
            raise MindError("this model has no chat template; the ONNX path only serves chat models")
        return render_chat(self.chat_template, messages, self.special_tokens)

    def encode(self, text: str) -> list[int]:
        return with_bos(self.tokenizer.encode(text, add_special_tokens=False).ids, self.bos_id, self.needs_bos)

    def check_fits(self, n_prompt_tokens: int, max_new_tokens: int, what: str = "prompt") -> None:
        check_fits(self.name, self.context_window, n_prompt_tokens, max_new_tokens, what)

    def generate(self, messages: Sequence[Message], max_new_tokens: int = 64, temperature: float = 0.0,
                 seed: int = 0) -> str:
        return self.generate_batch([messages], max_new_tokens, temperature, seed)[0]

    def generate_batch(self, conversations: Sequence[Sequence[Message]], max_new_tokens: int = 64,
                       temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Greedy answers, each on its route (a routed library) or on the one adapter."""
        if temperature > 0:
            raise ValueError("the ONNX path decodes greedily; sampled answers run on the torch model")
        if self.router is None:
            adapter = BASE_ROWS if self.adapter is None else str(self.adapter)
            return self.generate_on(conversations, [adapter] * len(conversations), max_new_tokens)
        plan = route_plan(self.router, conversations)
        answers = self.generate_on(conversations, plan.served, max_new_tokens)
        closed = self.generate_on(plan.aside_prompts, plan.aside_adapters, max_new_tokens) if plan.aside else []
        return settle(plan, answers, closed)

    def generate_on(self, conversations: Sequence[Sequence[Message]], adapters: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy answers, each conversation on the adapter named beside it (BASE_ROWS: none)."""
        texts = []
        for messages, adapter in zip(conversations, adapters, strict=True):
            ids = self.encode(self.format_chat(messages))
            self.check_fits(len(ids), max_new_tokens)
            tokens = self.decoder.greedy(ids, max_new_tokens, self._stop_ids, self._module(adapter))
            texts.append(self.tokenizer.decode(tokens, skip_special_tokens=True).strip())
        return texts

    def _module(self, adapter: str) -> LoraMatrices | None:
        if adapter == BASE_ROWS:
            return None
        if adapter not in self._lora:
            folder = Path(adapter) if self.adapter is not None and adapter == str(self.adapter) else self.modules.get(adapter)
            if folder is None or not folder.is_dir():
                raise MindError(f"module {adapter} was forgotten or pruned after this library was opened; ask again")
            matrices = read_lora(folder)
            if matrices is None:
                raise MindError(f"module {adapter} is not a plain LoRA module; answer with the torch model")
            self._lora[adapter] = matrices
        return self._lora[adapter]


def model_folder(reference: str) -> ModelFolder | None:
    """The files of a model reference without loading it: a packaged model once converted
    (its cache folder), or a local folder of config, safetensors weights and tokenizer.json.
    None for anything else (a hub id, a GGUF file, a packaged model not yet converted)."""
    from lifelong.model.registry import PACKAGED_MODELS, converted_folder

    entry = PACKAGED_MODELS.get(reference)
    if entry is not None:
        folder = converted_folder(entry)
        return ModelFolder(entry.name, folder, folder, entry.needs_bos) if folder is not None else None
    path = Path(reference).expanduser()
    if all((path / name).is_file() for name in ("config.json", WEIGHTS, "tokenizer.json", "tokenizer_config.json")):
        settings = json.loads((path / "tokenizer_config.json").read_text())
        return ModelFolder(str(reference), path, path, bool(settings.get("add_bos_token", False)))
    return None


def graph_ready(graph: Path) -> bool:
    """Whether an export is complete: the graph and its description are both in place."""
    return graph.is_file() and graph.with_suffix(".json").is_file() and weights_file(graph).is_file()
