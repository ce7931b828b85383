"""Where lifelong keeps things: the model cache and the mind directory.

Both are overridable by environment so tests and CI never touch a user's home.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DEFAULT_MIND_DIR = ".lifelong"


def cache_dir() -> Path:
    """Converted models live here; shared by every mind on the machine."""
    env = os.environ.get("LIFELONG_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("lifelong"))


def mind_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--mind beats LIFELONG_MIND beats ./.lifelong."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("LIFELONG_MIND")
    return Path(env).expanduser() if env else Path(DEFAULT_MIND_DIR)
