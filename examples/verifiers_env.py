"""An ssl_gym puzzle as a verifiers 0.4 environment, rolled out through verifiers itself.

Offline (the default), a stand-in OpenAI-compatible server on 127.0.0.1 plays the model:
it answers even-numbered tasks right and odd-numbered ones wrong first (on a ``-Hint`` id
it then gets the env's feedback and hint as the next user turn and answers right, so the
reward shows the hint cost). With ``--base-url`` the rollouts go to a real server, e.g.
``vllm serve`` of a multimodal model.

    python examples/verifiers_env.py --env-id SSL/Rotation-4way-Hint-v2 --num-examples 4
    python examples/verifiers_env.py --base-url http://127.0.0.1:8000/v1 --model tiny
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import verifiers.v1 as vf

from ssl_gym.adapters.verifiers import load_environment


def stand_in_server(answers: dict[str, str]) -> str:
    """Start a scripted chat-completions server; ``answers`` maps a first image URL to text."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            messages = body["messages"]
            first_image = messages[0]["content"][0]["image_url"]["url"]
            index, answer = answers[first_image].split(":", 1)
            wrong_first = int(index) % 2 == 1 and len(messages) == 1
            text = "I cannot tell." if wrong_first else answer
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
            payload = json.dumps(
                {
                    "id": "stand-in",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{**choice, "finish_reason": "stop"}],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1"


async def rollouts(env: Any, tasks: list[vf.Task], ctx: vf.ModelContext) -> list[vf.Episode]:
    """One episode per task, inside the env's serving resources."""
    async with env.serving():
        return [await env.run_episode(task, ctx) for task in tasks]


def main() -> None:
    """Roll out a few tasks and print their rewards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="SSL/Rotation-4way-Hint-v2")
    parser.add_argument("--num-examples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible /v1 URL")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    env = load_environment(
        args.env_id, num_examples=args.num_examples, seed=args.seed, size=64, answer_format="plain"
    )
    tasks = list(env.taskset)
    base_url = args.base_url
    if base_url is None:
        base_url = stand_in_server(
            {
                t.data.prompt[0].content[0].image_url.url: f"{i}:{t.data.answer}"
                for i, t in enumerate(tasks)
            }
        )
    client = vf.EvalClientConfig(base_url=base_url, api_key_var="OPENAI_API_KEY")
    ctx = vf.ModelContext(
        model=args.model, client=client, sampling=vf.Sampling(max_tokens=args.max_tokens)
    )
    for task, episode in zip(tasks, asyncio.run(rollouts(env, tasks, ctx)), strict=True):
        if not episode.ok:
            errors = episode.errors or [t.errors for t in episode.traces]
            raise RuntimeError(f"{task.data.name}: the rollout failed: {errors}")
        (trace,) = episode.traces
        replies = [m.content for m in trace.assistant_messages]
        print(
            f"{task.data.name}: answer {task.data.answer!r}, replies {replies}, "
            f"reward {trace.reward:.2f}, metrics {trace.metrics}"
        )


if __name__ == "__main__":
    main()
