"""lifelong: a language model that keeps learning after deployment.

Public API: `Mind` (open a mind directory; learn, recall, ask, forget), the records it
returns (`Answer`, `Memory`, `RecallHit`), and `LifelongError`, the base of every error
a user can act on.
"""

from lifelong.errors import LifelongError
from lifelong.memory.records import Memory, RecallHit
from lifelong.mind import Answer, LearnReport, Mind

__all__ = ["Answer", "LearnReport", "LifelongError", "Memory", "Mind", "RecallHit"]
__version__ = "0.1.0"
