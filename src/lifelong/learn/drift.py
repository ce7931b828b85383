"""How far an adapted model has moved from a reference model, on what the reference says.

Both the `kl` training penalty and the gate's drift metric compare next-token distributions
along the *reference model's own greedy continuations* of anchor prompts: every position of
what the model would have said counts, not only the token after the prompt (where a module
trained on short answers shifts the opening word of every reply without changing its
content). The penalty uses the training anchors, the gate the held-out ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lifelong.model.language_model import LanguageModel
from lifelong.prompt import closed_book

Row = tuple[list[int], int]  # token ids, index of the first continuation token


def continuation_rows_with_text(lm: LanguageModel, chat_prompts: Sequence[str], raw_texts: Sequence[str],
                                continuation: int = 16) -> list[tuple[Row, str]]:
    """Anchor prompts (chat ones in the closed-book serving format) followed by the reference
    model's greedy continuation of each, with the anchor's text (what a router reads)."""
    chats = [closed_book(p) for p in chat_prompts]
    chat_ids = [lm.encode(lm.format_chat(c)) for c in chats]
    raw_ids = [lm.encode(text) for text in raw_texts]
    replies = lm.generate_batch(chats, max_new_tokens=continuation) if chats else []
    completions = lm.complete_batch(list(raw_texts), max_new_tokens=continuation) if raw_texts else []
    tokenize = lambda text: lm.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    triples = [(p, tokenize(r), t) for p, r, t in zip(chat_ids, replies, chat_prompts, strict=True)]
    triples += [(p, tokenize(" " + c), t) for p, c, t in zip(raw_ids, completions, raw_texts, strict=True)]
    return [((prompt + cont, len(prompt)), text) for prompt, cont, text in triples if cont]


def continuation_rows(lm: LanguageModel, chat_prompts: Sequence[str], raw_texts: Sequence[str],
                      continuation: int = 16) -> list[Row]:
    """The rows of `continuation_rows_with_text`, without their texts."""
    return [row for row, _ in continuation_rows_with_text(lm, chat_prompts, raw_texts, continuation)]


def continuation_log_probs(causal_lm: Any, rows: Sequence[Row], pad_id: int) -> torch.Tensor:
    """Log-probs at the positions that predict each continuation token, concatenated over rows
    (right-padded, so positions are those of the rows on their own)."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in rows])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    hidden = causal_lm.model(input_ids=input_ids, attention_mask=attention, use_cache=False).last_hidden_state
    picked = torch.cat([hidden[r, start - 1 : len(ids) - 1] for r, (ids, start) in enumerate(rows)])
    return F.log_softmax(causal_lm.lm_head(picked).float(), dim=-1)


def _causal_lm(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def kl_per_token(reference: torch.Tensor, adapted: torch.Tensor) -> torch.Tensor:
    """Mean KL(reference || adapted) per continuation token, from log-probs."""
    return F.kl_div(adapted, reference, log_target=True, reduction="batchmean")


@torch.inference_mode()
def continuation_kl(reference: LanguageModel, model: LanguageModel, rows: Sequence[Row], batch_size: int = 8,
                    texts: Sequence[str] | None = None) -> float:
    """Mean KL(reference || model) per token of the reference's continuations. With `texts`
    (each row's anchor text), each row runs on the weights `model` routes it to."""
    groups = model.routes(texts) if texts is not None else [(list(range(len(rows))), contextlib.nullcontext())]
    pad = reference.tokenizer.pad_token_id
    total, count = 0.0, 0
    for indices, weights in groups:
        for start in range(0, len(indices), batch_size):
            chunk = [rows[i] for i in indices[start : start + batch_size]]
            ref = continuation_log_probs(_causal_lm(reference.model), chunk, pad)
            with weights:
                new = continuation_log_probs(_causal_lm(model.model), chunk, pad)
            total += float(kl_per_token(ref, new)) * ref.shape[0]
            count += ref.shape[0]
    return total / count if count else 0.0
