"""Rules on a prompt's tokens that every engine answering it applies alike (the torch model in
model/language_model.py, ONNX Runtime in model/onnx_model.py): BOS exactly once where the model
needs it, room in the context window for the answer, and the tokens that end an answer."""

from __future__ import annotations

from collections.abc import Callable

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


END_OF_TURN_MARKERS = ("<end_of_turn>", "<|im_end|>")  # Gemma's and ChatML's (SmolLM2's) chat templates


def answer_stop_ids(eos_id: int | None, configured: int | list[int] | None, token_id: Callable[[str], int | None],
             unk_id: int | None) -> list[int]:
    """The tokens that end an answer: the tokenizer's end of sequence, the generation config's
    (`configured`), and each chat template's end-of-turn marker the vocabulary has (`token_id`
    looks one up; an id equal to `unk_id` means it does not)."""
    ids = {eos_id, *(configured if isinstance(configured, list) else [configured])}
    for marker in END_OF_TURN_MARKERS:
        found = token_id(marker)
        if isinstance(found, int) and found != unk_id:
            ids.add(found)
    return sorted(i for i in ids if i is not None)
