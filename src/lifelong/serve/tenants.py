"""Each tenant's own mind (memories, quarantine, versions, modules) under the server root,
all sharing one loaded base model and one embedder.

`<root>` is a mind directory (its config names the model every tenant uses); tenant minds live
in `<root>/tenants/<tenant>/` and are made on first use. A lock per tenant serialises what
changes one mind; different tenants never share a lock, a store or a version folder.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from lifelong.mind import Mind
from lifelong.mind_config import read_config
from lifelong.model.language_model import LanguageModel
from lifelong.serve.keys import check_tenant_name

TENANTS_DIR = "tenants"


class TenantMinds:
    def __init__(self, root: Path, language_model: LanguageModel | None = None, embedder: Any = None) -> None:
        self.root = root
        self.model_name = read_config(root).model
        self._language_model = language_model
        self._embedder = embedder
        self._minds: dict[str, Mind] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from lifelong.memory.embedder import MiniLMEmbedder

            self._embedder = MiniLMEmbedder()
        return self._embedder

    @property
    def language_model(self) -> LanguageModel:
        """The base model, loaded once for every tenant (each tenant's modules go on copies)."""
        if self._language_model is None:
            from lifelong.model.loader import load_model
            from lifelong.progress import quiet_libraries

            with quiet_libraries():
                self._language_model = load_model(self.model_name)
        return self._language_model

    def path(self, tenant: str) -> Path:
        return self.root / TENANTS_DIR / check_tenant_name(tenant)

    def lock(self, tenant: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(tenant, threading.RLock())

    def mind(self, tenant: str) -> Mind:
        """The tenant's mind, made the first time the tenant is served."""
        with self._guard:
            if tenant not in self._minds:
                self._minds[tenant] = Mind.init(self.path(tenant), model=self.model_name, embedder=self.embedder,
                                                language_model=self.language_model)
            return self._minds[tenant]

    def close(self) -> None:
        with self._guard:
            for mind in self._minds.values():
                mind.close()
            self._minds.clear()
