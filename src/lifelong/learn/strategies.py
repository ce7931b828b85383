"""Anti-forgetting strategies as small plug-ins: each may add examples or a loss term.

A strategy string combines names with '+', e.g. "kl+replay". Each strategy is tested by
showing less forgetting than `naive` (tests/test_sleep.py), not by exercising itself.
"""

from __future__ import annotations

from dataclasses import dataclass

KNOWN = ("naive", "replay", "kl")


@dataclass(frozen=True)
class Strategy:
    replay: bool = False
    kl: bool = False

    @property
    def name(self) -> str:
        parts = [n for n, on in (("kl", self.kl), ("replay", self.replay)) if on]
        return "+".join(parts) or "naive"


def parse_strategy(text: str) -> Strategy:
    from lifelong.errors import InputError

    names = {part.strip() for part in text.split("+") if part.strip()}
    unknown = names - set(KNOWN)
    if unknown or not names:
        raise InputError(f"strategy '{text}' is not known; combine {', '.join(KNOWN)} with '+', e.g. kl+replay")
    return Strategy(replay="replay" in names, kl="kl" in names)
