"""Rules on a prompt's tokens that every engine answering it applies alike (the torch model in
model/language_model.py, ONNX Runtime in model/onnx_model.py): BOS exactly once where the model
needs it, and room in the context window for the answer."""

from __future__ import annotations

from lifelong.errors import InputError


def with_bos(ids: list[int], bos_id: int | None, needs_bos: bool) -> list[int]:
    """`ids` with BOS prepended exactly once where the model needs it."""
    if needs_bos and bos_id is not None and (not ids or ids[0] != bos_id):
        return [bos_id, *ids]
    return ids


def check_fits(model_name: str, context_window: int, n_prompt_tokens: int, max_new_tokens: int, what: str = "prompt") -> None:
    """InputError, naming the fix, when the prompt leaves no room for a `max_new_tokens` answer."""
    limit = context_window - max_new_tokens
    if n_prompt_tokens > limit:
        raise InputError(
            f"the {what} is {n_prompt_tokens} tokens, more than the {limit} that fit in "
            f"{model_name}'s context window of {context_window} with room for a {max_new_tokens}-token answer; shorten it"
        )
