"""`lifelong serve --upstream URL`: memory here, generation on another OpenAI-compatible server.

A larger model served by vLLM (or any OpenAI-compatible endpoint) answers; lifelong keeps
what it is for: each tenant's memories, retrieval into the prompt, the poisoning and privacy
checks, remembered turns, citations. The prompt sent upstream is exactly the one the local
model would have been given. Sleep still trains the local model's modules: weights cannot be
trained through an HTTP API.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from lifelong.errors import LifelongError

UPSTREAM_KEY_VARIABLE = "LIFELONG_UPSTREAM_KEY"  # the upstream's API key, if it needs one


class UpstreamError(LifelongError):
    """The upstream server failed or answered something that is not a chat completion."""

    exit_code = 7


@dataclass(frozen=True)
class Upstream:
    url: str  # base URL ending in /v1
    model: str | None = None  # the upstream's model name (default: the request's `model`)
    timeout: float = 600.0

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(UPSTREAM_KEY_VARIABLE)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, messages: Sequence[dict[str, str]], model: str, max_tokens: int, temperature: float,
              stream: bool) -> dict[str, Any]:
        return {"model": self.model or model, "messages": list(messages), "max_tokens": max_tokens,
                "temperature": temperature, "stream": stream}

    async def complete(self, messages: Sequence[dict[str, str]], model: str, max_tokens: int,
                       temperature: float) -> tuple[str, dict[str, Any] | None, str]:
        """The upstream's answer, its usage block (if it sent one) and finish reason."""
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                response = await client.post(f"{self.url.rstrip('/')}/chat/completions", headers=self._headers(),
                                             json=self._body(messages, model, max_tokens, temperature, False))
            except httpx.HTTPError as exc:
                raise UpstreamError(f"the upstream {self.url} could not be reached ({exc!r}); check --upstream") from exc
        if response.status_code != 200:
            raise UpstreamError(f"the upstream {self.url} answered {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
            choice = body["choices"][0]
            return choice["message"]["content"] or "", body.get("usage"), choice.get("finish_reason") or "stop"
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(f"the upstream {self.url} did not send a chat completion: {response.text[:300]}") from exc

    async def stream(self, messages: Sequence[dict[str, str]], model: str, max_tokens: int,
                     temperature: float) -> AsyncIterator[str]:
        """The upstream's answer piece by piece, as it streams it."""
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            async with client.stream("POST", f"{self.url.rstrip('/')}/chat/completions", headers=self._headers(),
                                     json=self._body(messages, model, max_tokens, temperature, True)) as response:
                if response.status_code != 200:
                    raise UpstreamError(f"the upstream {self.url} answered {response.status_code}: {(await response.aread())[:300]!r}")
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[len("data: "):])
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
