"""Shared fixtures: tiny random models for unit tests, the real embedder, isolated minds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# huggingface_hub reads this once at import: set it before anything imports it, so a hub id
# fails at once instead of after network retries (the machine has no hub access anyway).
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from lifelong import Mind  # noqa: E402
from lifelong.memory.embedder import MiniLMEmbedder  # noqa: E402
from lifelong.model.tiny import build_tiny_model  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may touch ./.lifelong or reach for the hub."""
    monkeypatch.setenv("LIFELONG_MIND", str(tmp_path / "default-mind"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL 16 server with pgvector, started for this test session from the
    `pgserver` wheel (PyPI), so the PostgreSQL store is tested against the engine it targets."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("run")))  # pgserver keeps its lock file there
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def postgres_schema() -> str:
    """A schema of its own per test: tests share one server, never each other's rows."""
    import uuid

    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def tiny_lm():
    return build_tiny_model()


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
def mind(tmp_path: Path, tiny_lm, embedder) -> Mind:
    opened = Mind.init(tmp_path / "mind", embedder=embedder, language_model=tiny_lm)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_lm) -> Path:
    """The tiny model saved as a normal HF folder, for CLI tests that pass --model PATH."""
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_lm.model.save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run `lifelong ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from lifelong.cli import main

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["lifelong", *args])
        if stdin is not None:
            import io

            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"benchmark data {path} not present")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LIFELONG_SKIP_REAL_MODEL") == "1":
        skip = pytest.mark.skip(reason="LIFELONG_SKIP_REAL_MODEL=1")
        for item in items:
            if "real_model" in item.keywords:
                item.add_marker(skip)
