"""Anti-forgetting strategies as small plug-ins: each may add examples or a loss term.

A strategy string combines names with '+', e.g. "kl+replay". Each strategy is tested by
showing less forgetting than `naive` (tests/test_training.py), not by exercising itself.
"""

from __future__ import annotations

from dataclasses import dataclass

KNOWN = ("naive", "replay", "kl", "ewc")


@dataclass(frozen=True)
class Strategy:
    replay: bool = False  # mix in examples of memories consolidated by earlier sleeps
    kl: bool = False  # KL to the frozen model on general anchor prompts
    ewc: bool = False  # Fisher-weighted penalty on the module's weight change

    @property
    def name(self) -> str:
        parts = [n for n, on in (("ewc", self.ewc), ("kl", self.kl), ("replay", self.replay)) if on]
        return "+".join(parts) or "naive"


def parse_strategy(text: str) -> Strategy:
    from lifelong.errors import InputError

    names = {part.strip() for part in text.split("+") if part.strip()}
    unknown = names - set(KNOWN)
    if unknown or not names:
        raise InputError(f"strategy '{text}' is not known; combine {', '.join(KNOWN)} with '+', e.g. kl+replay")
    return Strategy(replay="replay" in names, kl="kl" in names, ewc="ewc" in names)
