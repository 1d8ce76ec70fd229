"""Sampling from any OpenAI-compatible chat endpoint (a vLLM server, or a hosted model).

Images travel as PNG data URLs in the user turn, the conversation so far follows, and
``n`` samples come back from one request. Per-token logprobs are read when the server
offers them (``logprobs: true``); token ids are not part of the API, so samples from this
sampler serve evaluation and remote rollouts, not the learner's ratio. With
``params.constrain`` the puzzle's answer grammar is sent as vLLM's structured outputs
(``choice`` or ``regex``).

Every attempt has a deadline for the whole exchange (connect, headers, body), enforced
even against a server that trickles its reply: a socket timeout restarts with every
byte, so a watchdog shuts the connection down when the deadline passes. Every reply is
checked before it becomes samples: a body that is not JSON (an HTML error page), not an
object, cut short, without exactly ``n`` choices, or with a choice lacking its content is
a failed attempt. Failed attempts, like connection errors, missed deadlines and HTTP 429
and 5xx, are retried with exponential backoff; an endpoint that keeps failing is one
clear error that names it, says what went wrong last and how many tries were made.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import torch

from agents.samplers.base import Request, Sample, SamplingParams
from ssl_gym.render import png_data_url

RETRYABLE = {408, 429, 500, 502, 503, 504}
EXCERPT_CHARS = 80
"""How much of a bad reply an error message quotes."""


class EndpointUnavailableError(RuntimeError):
    """The endpoint could not be reached, kept failing or kept missing its deadline."""


class MalformedReplyError(EndpointUnavailableError):
    """The endpoint answered, but its last reply was no usable chat completion."""


class _AttemptError(Exception):
    """One attempt that went wrong in a way a retry may fix; the message says how."""


class _BadReplyError(_AttemptError):
    """A reply that arrived but is not a usable chat completion."""


def chat_messages(req: Request) -> list[dict[str, Any]]:
    """The request as OpenAI chat messages: images and prompt, then the history."""
    first = [{"type": "image_url", "image_url": {"url": png_data_url(im)}} for im in req.images]
    first.append({"type": "text", "text": req.prompt})
    return [
        {"role": "user", "content": first},
        *({"role": role, "content": text} for role, text in req.history),
    ]


class OpenAISampler:
    """Complete requests through ``POST {base_url}/chat/completions``.

    Args:
        base_url: The endpoint's base URL, e.g. ``http://localhost:8000/v1``.
        model: The model name the endpoint serves.
        api_key: Sent as the bearer token.
        max_retries: Attempts after the first one before giving up.
        backoff: Seconds before the first retry; each further retry waits twice as long.
        timeout: Seconds any one socket operation (connect, a read) may wait.
        concurrency: Requests in flight at once.
        deadline: Seconds one attempt may take in all, however the server paces its
            bytes; ``None`` means ``timeout``. A request ends within about
            ``(max_retries + 1) * deadline`` seconds plus the backoff.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        max_retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 120.0,
        concurrency: int = 8,
        deadline: float | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.max_retries, self.backoff, self.timeout = max_retries, backoff, timeout
        self.concurrency = concurrency
        self.deadline = timeout if deadline is None else deadline
        if self.deadline <= 0 or timeout <= 0:
            raise ValueError(f"timeout and deadline must be > 0, got {timeout}, {self.deadline}")

    def load_weights(self, model: torch.nn.Module) -> None:
        """A remote server owns its weights: pushing them is not supported here."""
        raise NotImplementedError(
            "an OpenAI-compatible server cannot take the learner's "
            "weights; use the vLLM sampler for on-policy training"
        )

    def sample(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        """``params.n`` completions per request (requests run concurrently).

        Raises:
            MalformedReplyError: The endpoint's replies stayed unusable (not JSON, not
                ``n`` choices, ...) through every retry.
            EndpointUnavailableError: The endpoint stayed unreachable, failing or too slow,
                or refused the request (an HTTP 4xx other than 408 and 429).
        """
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
        data = json.dumps(self.body(req, params)).encode()
        last = _AttemptError("no attempt made")
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return _parse_reply(self._exchange(data), params.n)
            except _AttemptError as err:
                last = err
        error = (
            MalformedReplyError if isinstance(last, _BadReplyError) else EndpointUnavailableError
        )
        tries = self.max_retries + 1
        message = f"could not get a completion from {self.url} after {tries} tries: {last}"
        raise error(message) from last

    def _exchange(self, data: bytes) -> bytes:
        """One POST within the deadline: the body of a 200 reply.

        Raises:
            _AttemptError: Something a retry may fix went wrong.
            EndpointUnavailableError: The endpoint refused the request.
        """
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
        request = urllib.request.Request(self.url, data=data, headers=headers)
        late = _AttemptError(f"no complete reply within the {self.deadline:g} s deadline")
        with _Watchdog(self.deadline) as watchdog:
            opener = urllib.request.build_opener(_WatchedHandler(watchdog))
            try:
                with opener.open(request, timeout=min(self.timeout, self.deadline)) as response:
                    raw: bytes = response.read()
            except urllib.error.HTTPError as err:
                if err.code not in RETRYABLE:
                    detail = _error_detail(err)
                    raise EndpointUnavailableError(
                        f"{self.url} answered {err.code}: {detail}"
                    ) from err
                raise _AttemptError(f"HTTP {err.code} {err.reason}") from err
            except http.client.IncompleteRead as err:
                got, missing = len(err.partial), err.expected
                cut = _BadReplyError(f"reply was cut short after {got} bytes ({missing} more due)")
                raise (late if watchdog.expired else cut) from err
            except (OSError, http.client.HTTPException) as err:
                down = _AttemptError(f"{str(err) or repr(err)}; is the server running?")
                raise (late if watchdog.expired else down) from err
            if watchdog.expired:  # the shutdown may have ended a body without a length
                raise late
            return raw


def _parse_reply(raw: bytes, n: int) -> list[Sample]:
    """The ``n`` samples in a chat completion reply's body.

    Raises:
        _BadReplyError: The body is not JSON, not an object, has no ``choices`` or not ``n``
            of them, or a choice lacks its message content or has malformed logprobs.
    """
    try:
        reply = json.loads(raw)
    except json.JSONDecodeError as err:
        where = f"{err.msg} at char {err.pos} of {len(err.doc)}"
        raise _BadReplyError(f"reply is not JSON ({where}): {_excerpt(raw)}") from None
    except ValueError:  # bytes that are no text in any JSON encoding
        raise _BadReplyError(f"reply is not JSON: {_excerpt(raw)}") from None
    if not isinstance(reply, dict):
        kind = "list" if isinstance(reply, list) else "scalar"
        raise _BadReplyError(f"reply is a JSON {kind}, not an object: {_excerpt(raw)}")
    choices = reply.get("choices")
    if not isinstance(choices, list):
        raise _BadReplyError(f"reply has no 'choices': {_excerpt(raw)}")
    if len(choices) != n:
        raise _BadReplyError(f"reply has {len(choices)} choices, asked for n={n}")
    return [_to_sample(choice, i) for i, choice in enumerate(choices)]


def _to_sample(choice: Any, index: int) -> Sample:
    """One choice of a reply as a sample."""
    text = _content(choice, index)
    try:
        tokens = (choice.get("logprobs") or {}).get("content") or []
        logprobs = [float(t["logprob"]) for t in tokens]
    except (AttributeError, KeyError, TypeError, ValueError):
        logprobs_json = json.dumps(choice.get("logprobs"))
        raise _BadReplyError(
            f"choice {index} has malformed logprobs: {_excerpt(logprobs_json)}"
        ) from None
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    return Sample(text, [], logprobs, finish)


def _content(choice: Any, index: int) -> str:
    """A choice's ``message.content``; a ``null`` one (the API allows it) is empty text."""
    message = choice.get("message") if isinstance(choice, dict) else None
    if isinstance(message, dict) and "content" in message:
        content = message["content"]
        if content is None or isinstance(content, str):
            return content or ""
    raise _BadReplyError(f"choice {index} has no message content: {_excerpt(json.dumps(choice))}")


def _excerpt(raw: bytes | str) -> str:
    """The start of a reply, whitespace collapsed, quoted and escaped for a message."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return repr(text[:EXCERPT_CHARS] + "..." if len(text) > EXCERPT_CHARS else text)


def _error_detail(err: urllib.error.HTTPError) -> str:
    """The start of an HTTP error's body, or nothing when it cannot be read."""
    try:
        return err.read().decode(errors="replace")[:500]
    except (OSError, http.client.HTTPException):
        return ""


# --- the deadline: a watchdog that shuts a stalled connection down


class _Watchdog:
    """Shuts the watched socket down once ``seconds`` have passed, waking a blocked read.

    Use it as a context manager around one exchange; the connection registers its socket
    with :meth:`watch` as soon as it has one. After a shutdown the exchange fails (or
    ends early) and :attr:`expired` tells why.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        with self._lock:
            self._sock = None

    def watch(self, sock: socket.socket) -> None:
        """Watch ``sock`` (shut it down at once if the deadline has already passed)."""
        with self._lock:
            self._sock = sock
            if self.expired:
                _shut_down(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shut_down(self._sock)


def _shut_down(sock: socket.socket) -> None:
    """End ``sock`` both ways, so a read blocked on it returns.

    The plain socket's method, also for a TLS socket: ``SSLSocket.shutdown`` would drop
    the TLS state under a read running in another thread.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class _WatchedConnection(http.client.HTTPConnection):
    """An HTTP connection that hands its socket to a watchdog once connected."""

    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watchdog = watchdog

    def connect(self) -> None:
        """Connect, then let the watchdog watch the socket."""
        super().connect()
        self.watchdog.watch(self.sock)


class _WatchedHTTPSConnection(_WatchedConnection, http.client.HTTPSConnection):
    """The HTTPS flavour (the watchdog gets the TLS socket)."""


class _WatchedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens ``http`` and ``https`` URLs over connections a watchdog watches."""

    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """Open ``req`` over a watched HTTP connection."""
        return self.do_open(functools.partial(_WatchedConnection, watchdog=self.watchdog), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """Open ``req`` over a watched HTTPS connection (default TLS context)."""
        connection = functools.partial(_WatchedHTTPSConnection, watchdog=self.watchdog)
        return self.do_open(connection, req)
