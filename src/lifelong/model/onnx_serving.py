"""Which ONNX Runtime model answers a mind's active version, and the export that makes one.

`Mind.ask` answers greedily on ONNX Runtime whenever the served weights are the mind's own
base model (packaged or a local folder) with no module, one module or a routed library of
plain LoRA modules: the same decision the torch model is built from
(`versions.serving.served_weights`), so both engines serve the same module on the same
question. A merged checkpoint, another architecture or an adapter the graph cannot express
answers on torch, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifelong.learn.router import ModuleKeys, Router
from lifelong.memory.backends import Store
from lifelong.memory.embedder import Embedder
from lifelong.model.onnx_decoding import plain_lora
from lifelong.model.onnx_model import WEIGHTS, OnnxLanguageModel, graph_ready, model_folder
from lifelong.paths import cache_dir
from lifelong.versions.layout import ADAPTER
from lifelong.versions.registry import BASE_VERSION, VersionRegistry
from lifelong.versions.serving import served_weights


def answer_graph(reference: str) -> Path | None:
    """Where the graph of the model `reference` names is, or would be, exported (None: this
    model's files are not where the ONNX path can read them)."""
    folder = model_folder(reference)
    return folder.graph(cache_dir()) if folder is not None else None


def onnx_version_model(versions: VersionRegistry, store: Store, embedder: Embedder, reference: str) -> OnnxLanguageModel | None:
    """The active version's model on ONNX Runtime, or None where only torch can serve it."""
    import jinja2

    try:
        return _onnx_version_model(versions, store, embedder, reference)
    except jinja2.TemplateError:  # a chat template only transformers renders
        return None


def _onnx_version_model(versions: VersionRegistry, store: Store, embedder: Embedder, reference: str) -> OnnxLanguageModel | None:
    folder = model_folder(reference)
    if folder is None:
        return None
    graph = folder.graph(cache_dir())
    if not graph_ready(graph):
        return None
    version_id = versions.active_id()
    existing = store.get_many(versions.get(version_id).memory_ids) if version_id != BASE_VERSION else {}
    served = served_weights(versions, version_id, existing)
    if served.merge_id is not None:
        return None
    if served.adapter is not None:
        model = OnnxLanguageModel(folder, graph, adapter=served.adapter) if plain_lora(served.adapter) else None
    elif not served.library:
        model = OnnxLanguageModel(folder, graph)
    else:
        modules = {origin: versions.path(origin) / ADAPTER for origin in served.library}
        if not all(plain_lora(path) for path in modules.values()):
            return None
        router = Router(embedder, [ModuleKeys.load(origin, versions.path(origin)) for origin in served.library], served.radius)
        model = OnnxLanguageModel(folder, graph, router=router, modules=modules)
    return model if model is not None and model.has_chat_template else None  # a plain Q/A layout answers on torch


def export_answer_graph(model: Any, reference: str) -> bool:
    """Export `model` (the base loaded from `reference`) for ONNX Runtime answers, once;
    False where it cannot be (another architecture, files the ONNX path cannot read)."""
    from lifelong.model.onnx_export import export_decoder, exportable, remove_stale_graphs
    from lifelong.progress import quiet_libraries, status

    folder = model_folder(reference)
    if folder is None or not exportable(model):
        return False
    graph = folder.graph(cache_dir())
    if not graph_ready(graph):
        with status("Exporting the model for fast answers (once per model; later answers start without torch)"), quiet_libraries():
            export_decoder(model, graph, source=folder.weights / WEIGHTS)
            remove_stale_graphs(graph.parent)  # earlier exports of weights since removed or rewritten
    return True
