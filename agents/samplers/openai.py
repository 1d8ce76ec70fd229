"""Sampling from any OpenAI-compatible chat endpoint (a vLLM server, or a hosted model).

Images travel as PNG data URLs in the user turn, the conversation so far follows, and
``n`` samples come back from one request. Per-token logprobs are read when the server
offers them (``logprobs: true``); token ids are not part of the API, so samples from this
sampler serve evaluation and remote rollouts, not the learner's ratio. With
``params.constrain`` the puzzle's answer grammar is sent as vLLM's structured outputs
(``choice`` or ``regex``). Transient failures (connection errors, HTTP 429 and 5xx) are
retried with exponential backoff; a server that stays down is a clear error.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from agents.samplers.base import Request, Sample, SamplingParams
from ssl_gym.render import png_data_url

RETRYABLE = {408, 429, 500, 502, 503, 504}


class EndpointUnavailableError(RuntimeError):
    """The endpoint could not be reached or kept failing."""


def chat_messages(req: Request) -> list[dict[str, Any]]:
    """The request as OpenAI chat messages: images and prompt, then the history."""
    first = [{"type": "image_url", "image_url": {"url": png_data_url(im)}} for im in req.images]
    first.append({"type": "text", "text": req.prompt})
    return [
        {"role": "user", "content": first},
        *({"role": role, "content": text} for role, text in req.history),
    ]


class OpenAISampler:
    """Complete requests through ``POST {base_url}/chat/completions``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        max_retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 120.0,
        concurrency: int = 8,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.max_retries, self.backoff, self.timeout = max_retries, backoff, timeout
        self.concurrency = concurrency

    def load_weights(self, model: torch.nn.Module) -> None:
        """A remote server owns its weights: pushing them is not supported here."""
        raise NotImplementedError(
            "an OpenAI-compatible server cannot take the learner's "
            "weights; use the vLLM sampler for on-policy training"
        )

    def sample(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        """``params.n`` completions per request (requests run concurrently)."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda r: self._complete(r, params), requests))

    def body(self, req: Request, params: SamplingParams) -> dict[str, Any]:
        """The JSON body of one chat completion request."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(req),
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "logprobs": True,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.constrain and req.constrained:
            choices, pattern = req.grammar
            body["structured_outputs"] = (
                {"choice": list(choices)} if choices is not None else {"regex": pattern}
            )
        return body

    def _complete(self, req: Request, params: SamplingParams) -> list[Sample]:
        reply = self._post(self.body(req, params))
        return [_to_sample(choice) for choice in reply["choices"]]

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers)
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return dict(json.loads(response.read()))
            except urllib.error.HTTPError as err:
                if err.code not in RETRYABLE:
                    detail = err.read().decode(errors="replace")[:500]
                    raise EndpointUnavailableError(
                        f"{self.url} answered {err.code}: {detail}"
                    ) from err
                last = err
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                last = err
        raise EndpointUnavailableError(
            f"could not get a completion from {self.url} after {self.max_retries + 1} tries "
            f"({last}); is the server running?"
        )


def _to_sample(choice: dict[str, Any]) -> Sample:
    content = (choice.get("message") or {}).get("content") or ""
    tokens = ((choice.get("logprobs") or {}).get("content")) or []
    logprobs = [float(t["logprob"]) for t in tokens]
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    return Sample(content, [], logprobs, finish)
