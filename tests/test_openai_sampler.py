"""The OpenAI-compatible sampler against a local stand-in server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from http_stub import JSONHandler, chat_choices, serve
from PIL import Image

import ssl_gym  # noqa: F401
from agents.samplers.base import Request, SamplingParams
from agents.samplers.openai import EndpointUnavailableError, MalformedReplyError, OpenAISampler

Reply = Callable[[BaseHTTPRequestHandler], None]


class Stub(JSONHandler):
    """Answers chat completions with canned text; fails the first ``fail_first`` calls.

    While ``script`` holds raw replies, each request gets the next of them instead.
    """

    bodies: list[dict[str, Any]] = []  # noqa: RUF012
    fail_first = 0
    script: list[Reply] = []  # noqa: RUF012

    def do_POST(self) -> None:  # noqa: N802
        if not type(self).script:
            super().do_POST()
            return
        type(self).bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        type(self).script.pop(0)(self)

    def respond(self, body: dict[str, Any]) -> dict[str, Any] | None:
        type(self).bodies.append(body)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            return None
        logprobs = {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -0.25}]}
        texts = [f"answer {i}" for i in range(body["n"])]
        return {"choices": chat_choices(texts, logprobs=logprobs)}


@pytest.fixture
def server() -> Iterator[str]:
    Stub.bodies, Stub.fail_first, Stub.script = [], 0, []
    with serve(Stub, threaded=True) as url:
        yield url


def _request(env_id: str = "SSL/Rotation-4way-Ref-v1") -> Request:
    obs, info = gym.make(env_id, size=32).reset(seed=0)
    return Request(
        obs["prompt"],
        obs["images"],
        (("assistant", "90"), ("user", "again")),
        info["choices"],
        info["pattern"],
    )


def test_images_travel_as_data_urls_and_samples_come_back(server: str) -> None:
    req = _request()
    sampler = OpenAISampler(server, "tiny")
    out = sampler.sample([req, req], SamplingParams(n=3, temperature=0.7, seed=5))
    assert [len(group) for group in out] == [3, 3]
    assert out[0][2].text == "answer 2" and out[0][0].logprobs == [-0.5, -0.25]
    body = Stub.bodies[0]
    assert (body["n"], body["temperature"], body["seed"], body["logprobs"]) == (3, 0.7, 5, True)
    parts = body["messages"][0]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 2 and parts[-1]["text"] == req.prompt
    png = base64.b64decode(urls[1].split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), req.images[1])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_answer_grammar_is_sent_as_structured_output(server: str) -> None:
    sampler = OpenAISampler(server, "tiny")
    sampler.sample([_request()], SamplingParams(constrain=True))
    assert Stub.bodies[-1]["structured_outputs"] == {"choice": ["0", "90", "180", "270"]}
    sampler.sample([_request("SSL/Jigsaw-2x2-v2")], SamplingParams(constrain=True))
    assert "regex" in Stub.bodies[-1]["structured_outputs"]


def test_transient_failures_are_retried(server: str) -> None:
    Stub.fail_first = 2
    sampler = OpenAISampler(server, "tiny", backoff=0.01)
    assert sampler.sample([_request()], SamplingParams())[0][0].text == "answer 0"
    assert len(Stub.bodies) == 3


def test_a_server_that_is_down_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    sampler = OpenAISampler(f"http://127.0.0.1:{port}/v1", "tiny", max_retries=2, backoff=0.01)
    with pytest.raises(EndpointUnavailableError, match=r"after 3 tries.*is the server running"):
        sampler.sample([_request()], SamplingParams())


def raw(payload: bytes, length: int | None = None, content_type: str = "application/json") -> Reply:
    """A 200 reply with ``payload`` as its body, announcing ``length`` bytes (its size)."""

    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload) if length is None else length))
        handler.end_headers()
        handler.wfile.write(payload)

    return send


def as_json(value: Any) -> Reply:
    return raw(json.dumps(value).encode())


def trickle(status_line_too: bool) -> Reply:
    """A valid reply sent one byte every half second, until the client hangs up."""
    payload = json.dumps({"choices": chat_choices(["late"])}).encode()
    head = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload)

    def send(handler: BaseHTTPRequestHandler) -> None:
        if not status_line_too:
            handler.wfile.write(head)
        for byte in (head if status_line_too else b"") + payload:
            time.sleep(0.5)
            try:
                handler.wfile.write(bytes([byte]))
            except OSError:  # the client gave up
                return

    return send


HTML = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body></body></html>"
ONE_CHOICE = {"choices": chat_choices(["only one"])}
MALFORMED = {
    "html": (raw(HTML, content_type="text/html"), r"reply is not JSON.*'<!DOCTYPE html> <html>"),
    "list": (as_json([{"choices": []}]), r"reply is a JSON list, not an object"),
    "no-choices": (as_json({"object": "error"}), r"reply has no 'choices'"),
    "empty-choices": (as_json({"choices": []}), r"reply has 0 choices, asked for n=2"),
    "fewer-choices": (as_json(ONE_CHOICE), r"reply has 1 choices, asked for n=2"),
    "no-content": (as_json({"choices": [{"index": 0}] * 2}), r"choice 0 has no message content"),
    "bad-logprobs": (
        as_json({"choices": chat_choices(["a", "b"], logprobs={"content": [{"token": "a"}]})}),
        r"choice 0 has malformed logprobs",
    ),
    "cut-short": (raw(b'{"choices": [{"message"', length=4096), r"reply was cut short"),
    "truncated-json": (raw(b'{"choices": [{"message": {"content": "ans'), r"reply is not JSON"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_reply_is_retried_then_a_clear_error(server: str, case: str) -> None:
    reply, reason = MALFORMED[case]
    Stub.script = [reply] * 3
    sampler = OpenAISampler(server, "tiny", max_retries=2, backoff=0.01)
    with pytest.raises(MalformedReplyError, match=reason) as caught:
        sampler.sample([_request()], SamplingParams(n=2))
    assert f"{server}/chat/completions" in str(caught.value)
    assert "after 3 tries" in str(caught.value)
    assert len(Stub.bodies) == 3
    assert isinstance(caught.value, EndpointUnavailableError)  # what callers caught before


def test_a_malformed_reply_then_a_good_one_is_a_success(server: str) -> None:
    Stub.script = [raw(HTML, content_type="text/html"), as_json(ONE_CHOICE)]
    sampler = OpenAISampler(server, "tiny", backoff=0.01)
    out = sampler.sample([_request()], SamplingParams(n=2))
    assert [s.text for s in out[0]] == ["answer 0", "answer 1"]
    assert len(Stub.bodies) == 3


@pytest.mark.parametrize("status_line_too", [False, True], ids=["body", "status-line"])
def test_a_trickling_server_misses_the_deadline(server: str, status_line_too: bool) -> None:
    Stub.script = [trickle(status_line_too)] * 2
    sampler = OpenAISampler(server, "tiny", max_retries=1, backoff=0.01, deadline=1.5)
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError, match=r"after 2 tries") as caught:
        sampler.sample([_request()], SamplingParams())
    assert time.monotonic() - start < 20  # each try stops at 1.5 s, not after the trickle
    assert f"{server}/chat/completions" in str(caught.value)
    assert "1.5 s deadline" in str(caught.value)
    assert len(Stub.bodies) == 2


def test_the_deadline_defaults_to_the_timeout_and_must_be_positive() -> None:
    assert OpenAISampler("http://localhost/v1", "tiny", timeout=7.0).deadline == 7.0
    with pytest.raises(ValueError, match="deadline"):
        OpenAISampler("http://localhost/v1", "tiny", deadline=0)


def test_a_null_content_is_an_empty_completion(server: str) -> None:
    Stub.script = [as_json({"choices": [{"message": {"role": "assistant", "content": None}}]})]
    out = OpenAISampler(server, "tiny").sample([_request()], SamplingParams())
    assert out[0][0].text == "" and len(Stub.bodies) == 1
