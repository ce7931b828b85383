"""A causal LM with the three operations lifelong needs: format a chat, generate, score answers.

Wraps a Hugging Face model and tokenizer without hiding them (`.model`, `.tokenizer`), so
training code (LoRA, merges) works on the same objects that answer questions.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from lifelong.model.greedy_decoding import greedy_decode, plain_greedy
from lifelong.model.route_plan import Message
from lifelong.model.token_rules import answer_stop_ids, check_fits, with_bos

T = TypeVar("T")

_PLAIN_ROLES = {"system": "", "user": "Question: ", "assistant": "Answer:"}
# A base model without a chat template keeps writing the next "Question:"; cut it there.
_PLAIN_STOPS = ("\nQuestion:", "\n\n")


# A generation batch holds at most this many prompts, and at most this many prompt tokens
# (rows times the padded width): decoding a token reads every weight once, so a batch shares
# that cost, until long prompts make attention and the cache dominate. On 2 CPU cores 64
# closed-book TOFU questions (34-51 tokens) answered in 0.265 s each at 64 rows against 0.519
# at 16, and with three notes in the prompt (152-256 tokens) 16 rows was best (0.733 s; 64:
# 0.860), with identical answers at every size (benchmarks/decode_batching.py).
GENERATION_BATCH_ROWS = 64
GENERATION_BATCH_TOKENS = 4096
# Scoring replies holds each row's logits over the whole vocabulary at every reply position, twice
# (the logits and their log-softmax): scoring 40 TOFU answers after their questions in one batch
# raised resident memory by 1,373 MiB on SmolLM2's 49,152 words, by 204 MiB in batches under this
# budget, 0.87x the time, the same scores (scratch measurement under tcmalloc); the gate scores a
# topic's probes so, and it set a 100-fact sleep's peak (README, "Peak memory in bf16"). A
# scoring batch takes as many rows as keep these two tensors under this many bytes.
SCORING_LOGITS_BYTES = 128 * 2**20
# Greedy batches decode with finished rows leaving the batch (model/greedy_decoding.py) rather
# than through `generate`, which computes every row until the last stops; the same tokens.
FINISHED_ROWS_LEAVE = True


def generation_batches(lengths: Sequence[int], rows: int = GENERATION_BATCH_ROWS, tokens: int | None = None) -> list[list[int]]:
    """Indices of prompts of these token lengths, grouped shortest first (similar lengths pad
    less) into batches of at most `rows` prompts and `tokens` (default GENERATION_BATCH_TOKENS,
    read at call time) padded prompt tokens; a prompt longer than that alone is a batch."""
    tokens = GENERATION_BATCH_TOKENS if tokens is None else tokens
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        batch = batches[-1] if batches else None
        if batch is not None and len(batch) < rows and (len(batch) + 1) * lengths[index] <= tokens:
            batch.append(index)
        else:
            batches.append([index])
    return batches


def left_padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows of different lengths as one batch padded on the left, and its attention mask:
    every row's last token in the last column, where generation and next-token reads look."""
    width = max(len(r) for r in rows)
    return (torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows]),
            torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows]))


# Below this a temperature is greedy in effect, and dividing logits by it overflows to inf
# probabilities (the server's schema fuzz found 1.65e-165 crashing generation).
MIN_TEMPERATURE = 1e-2


def sampling_settings(temperature: float) -> dict[str, Any]:
    if temperature >= MIN_TEMPERATURE:
        return {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
    return {"do_sample": False}


FINGERPRINT_SAMPLES = 4096  # values read from each parameter tensor


@torch.inference_mode()
def weights_fingerprint(model: Any, tokenizer: Any) -> str:
    """See LanguageModel.fingerprint."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{type(model).__name__} {len(tokenizer)} {tokenizer.eos_token!r}".encode())
    for name, parameter in model.named_parameters():
        flat = parameter.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // FINGERPRINT_SAMPLES)].float().contiguous()
        digest.update(f"{name} {tuple(parameter.shape)} {parameter.dtype}".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()


def weight_sharing_copy(model: Any) -> Any:
    """A copy of `model`'s module tree that reads the same weight storage: what LoRA (which
    wraps layers and never writes the frozen weights) needs, without a second 540 MB copy of
    the default model per candidate or served library. Each parameter is a new Parameter
    object on the same tensor, so PEFT freezing the copy's weights leaves the original's flags
    alone; tied weights stay tied. Never merge an adapter into the result (merging writes the
    shared storage): merges and exports take `LanguageModel.with_own_weights()` instead."""
    memo: dict[int, Any] = {}
    for parameter in model.parameters():
        if id(parameter) not in memo:
            memo[id(parameter)] = torch.nn.Parameter(parameter.detach(), requires_grad=parameter.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = buffer
    return copy.deepcopy(model, memo)


class LanguageModel:
    def __init__(self, model: Any, tokenizer: Any, name: str, needs_bos: bool | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.needs_bos = bool(getattr(tokenizer, "add_bos_token", False)) if needs_bos is None else needs_bos
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """A value derived from these frozen weights (a base model's anchor continuations, its
        rehearsal answers), computed once: every sleep of a long-running process needs the
        same ones. Only for models nobody trains: sleep and merge train adapters on copies of
        the base, never the base itself. `key` must name everything the value depends on."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def with_own_weights(self) -> LanguageModel:
        """The same model on its own copy of every weight: what a merge or a naive fine-tune
        writes into. LoRA candidates use `weight_sharing_copy` instead, which costs no memory
        but must never be written."""
        return LanguageModel(copy.deepcopy(self.model), self.tokenizer, self.name, self.needs_bos)

    def fingerprint(self) -> str:
        """A digest of these weights and this tokenizer: each parameter's name, shape, dtype and
        an evenly strided sample of its values (a LoRA merge or any fine-tune moves every
        sampled matrix), so a value derived from the weights can be cached on disk and found
        again by any mind on the same model. Milliseconds, against hashing 540 MB."""
        return self.memo("fingerprint", lambda: weights_fingerprint(self.model, self.tokenizer))

    def routes(self, texts: Sequence[str]) -> list[tuple[list[int], contextlib.AbstractContextManager[Any]]]:
        """Which weights serve each input, as (indices, context that selects those weights).
        One set of weights here; a routed model (model/routed.py) sends each input to one of
        its modules or to the exact base weights. Code that calls `.model` directly (perplexity,
        KL) goes through this, so every measurement sees what serving would run."""
        return [(list(range(len(texts))), contextlib.nullcontext())]

    @property
    def context_window(self) -> int:
        config = self.model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return int(getattr(text_config, "max_position_embeddings", 2048))

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def format_chat(self, messages: Sequence[Message]) -> str:
        """Render messages with the tokenizer's chat template, or a plain Q/A layout for base models."""
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        parts = [f"{_PLAIN_ROLES.get(m['role'], '')}{m['content']}" for m in messages]
        return "\n\n".join(parts) + "\n" + _PLAIN_ROLES["assistant"]

    def encode(self, text: str) -> list[int]:
        """Token ids, with BOS prepended exactly once where the model needs it."""
        return with_bos(self.tokenizer(text, add_special_tokens=False)["input_ids"], self.tokenizer.bos_token_id, self.needs_bos)

    def check_fits(self, n_prompt_tokens: int, max_new_tokens: int, what: str = "prompt") -> None:
        check_fits(self.name, self.context_window, n_prompt_tokens, max_new_tokens, what)

    def stop_ids(self) -> list[int]:
        """The tokens that end an answer: the tokenizer's and the config's end of sequence and the
        chat templates' end-of-turn markers (a decoding loop outside generate needs them too)."""
        return answer_stop_ids(self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None),
                               self.tokenizer.convert_tokens_to_ids, self.tokenizer.unk_token_id)

    def generate(
        self,
        messages: Sequence[Message],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> str:
        """Greedy by default; with temperature >= MIN_TEMPERATURE, sampled with a fixed seed so runs repeat."""
        return self.generate_batch([messages], max_new_tokens, temperature, seed)[0]

    @torch.inference_mode()
    def generate_batch(
        self,
        conversations: Sequence[Sequence[Message]],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
        batch_size: int = GENERATION_BATCH_ROWS,
        adapters: Sequence[str] | None = None,
    ) -> list[str]:
        """Answers to many prompts, left-padded into batches (`generation_batches`): on a CPU a
        batch of dozens of short prompts costs little more than one prompt, which is what makes
        evaluation and distillation affordable. `adapters` (a PeftModel holding several) names
        the adapter each prompt runs with, BASE_ROWS for the base weights: rows of different
        adapters then share a batch (PEFT's mixed-batch inference)."""
        encoded = [self.encode(self.format_chat(m)) for m in conversations]
        return [self._clean(t) for t in self._generate_ids(encoded, max_new_tokens, temperature, seed, batch_size, adapters)]

    def generation_weights(self, messages: Sequence[Message]) -> contextlib.AbstractContextManager[Any]:
        """The weights a conversation is answered with (a routed model picks a module)."""
        return contextlib.nullcontext()

    def stream(self, messages: Sequence[Message], max_new_tokens: int = 64, temperature: float = 0.0,
               seed: int = 0) -> Iterator[str]:
        """The answer piece by piece as it is generated (a server streams them): the same
        tokens `generate` returns, the first piece arriving after one forward pass, not all."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()  # set when the reader goes away (a client disconnects): generation ends at the next token

        class ReaderGone(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        ids = self.encode(self.format_chat(messages))
        self.check_fits(len(ids), max_new_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = sampling_settings(temperature)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode(), self.generation_weights(messages):
                    torch.manual_seed(seed)
                    self.model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                        max_new_tokens=max_new_tokens, eos_token_id=self.stop_ids(),
                                        pad_token_id=self.tokenizer.pad_token_id, streamer=streamer,
                                        stopping_criteria=StoppingCriteriaList([ReaderGone()]), **sampling)
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="lifelong-stream", daemon=True)
        worker.start()
        first = True
        try:
            for piece in streamer:
                piece = piece.lstrip() if first else piece
                if piece:
                    first = False
                    yield piece
        finally:  # also when the caller stops reading: the model is free again when this returns
            stop.set()
            worker.join()
        if failure:
            raise failure[0]

    @torch.inference_mode()
    def complete_batch(self, texts: Sequence[str], max_new_tokens: int = 8, batch_size: int = GENERATION_BATCH_ROWS,
                       adapters: Sequence[str] | None = None) -> list[str]:
        """Greedy plain-text continuations (no chat template): cloze probes of what the model
        knows. `adapters`: as in `generate_batch`."""
        encoded = [self.encode(t) for t in texts]
        return [t.strip() for t in self._generate_ids(encoded, max_new_tokens, 0.0, 0, batch_size, adapters)]

    def _generate_ids(self, encoded: list[list[int]], max_new_tokens: int, temperature: float, seed: int,
                      batch_size: int, adapters: Sequence[str] | None = None) -> list[str]:
        for ids in encoded:
            self.check_fits(len(ids), max_new_tokens)
        if adapters is not None and len(adapters) != len(encoded):
            raise ValueError(f"{len(adapters)} adapter names for {len(encoded)} prompts; give one per prompt")
        texts: list[str] = [""] * len(encoded)
        pad = self.tokenizer.pad_token_id
        sampling = sampling_settings(temperature)
        for chunk in generation_batches([len(ids) for ids in encoded], batch_size):
            input_ids, attention = left_padded([encoded[i] for i in chunk], pad)
            width = input_ids.shape[1]
            names = [adapters[i] for i in chunk] if adapters is not None else None
            if not sampling["do_sample"] and FINISHED_ROWS_LEAVE and plain_greedy(self.model):
                new_tokens = greedy_decode(self.model, input_ids, attention, max_new_tokens, self.stop_ids(), names)
            else:
                torch.manual_seed(seed)
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=self.stop_ids(),
                    pad_token_id=pad,
                    **sampling,
                    **({"adapter_names": names} if names is not None else {}),
                )
                new_tokens = output[:, width:].tolist()
            for row, index in enumerate(chunk):
                texts[index] = self.tokenizer.decode(new_tokens[row], skip_special_tokens=True)
        return texts

    def _clean(self, text: str) -> str:
        if not self.has_chat_template:
            for stop in _PLAIN_STOPS:
                text = text.split(stop, 1)[0]
        return text.strip()

    def score(self, messages: Sequence[Message], candidates: Sequence[str], normalize: bool = False) -> list[float]:
        """Log-likelihood of each candidate answer after the prompt (see `score_replies`); with
        `normalize`, the sum is divided by the candidate's token count (length-fair multiple choice)."""
        return self.score_replies([messages] * len(candidates), candidates, normalize)

    @torch.inference_mode()
    def score_replies(self, conversations: Sequence[Sequence[Message]], replies: Sequence[str],
                      normalize: bool = False) -> list[float]:
        """Log-likelihood of each reply after its own conversation, many pairs in shared
        left-padded batches (the gate scores a topic's probes this way: one forward per batch
        instead of one per probe). Only the replies' positions go through the vocabulary
        projection (`logits_to_keep`), not every prompt position."""
        if len(conversations) != len(replies):
            raise ValueError(f"{len(replies)} replies for {len(conversations)} conversations; give one each")
        prompts = [self.encode(self.format_chat(m)) for m in conversations]
        answers = [self.tokenizer(r, add_special_tokens=False)["input_ids"] for r in replies]
        rows = [p + a for p, a in zip(prompts, answers, strict=True)]
        for row in rows:
            self.check_fits(len(row), 0)
        scores = [0.0] * len(rows)
        pad = self.tokenizer.pad_token_id
        per_row = 2 * 4 * (max((len(a) for a in answers), default=0) + 1) * int(self.model.config.vocab_size)
        for chunk in generation_batches([len(r) for r in rows], rows=max(1, min(GENERATION_BATCH_ROWS, SCORING_LOGITS_BYTES // per_row))):
            keep = max(len(answers[i]) for i in chunk) + 1  # the last prompt position predicts the first answer token
            input_ids, attention = left_padded([rows[i] for i in chunk], pad)
            width = input_ids.shape[1]
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                logits_to_keep=keep).logits.float()
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            token_lp = log_probs.gather(-1, input_ids[:, width - keep + 1 :].unsqueeze(-1)).squeeze(-1)
            for row, index in enumerate(chunk):
                count = len(answers[index])
                total = float(token_lp[row, token_lp.shape[1] - count :].sum()) if count else 0.0
                scores[index] = total / max(1, count) if normalize else total
        return scores
