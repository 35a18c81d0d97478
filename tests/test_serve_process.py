"""`domainlm serve` as a real process on a free loopback port: it answers over HTTP and, on SIGTERM,
finishes the request in flight, then exits with code 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.tiny_models import clf_dir, labelled  # noqa: F401  (fixtures)

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()[1][-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("server did not become healthy in time")


@pytest.mark.slow  # starts a Python process that imports torch: ~20 s on a busy 2-core machine
def test_cli_server_answers_and_stops_gracefully_on_sigterm(clf_dir, tmp_path):  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key = tmp_path / "key"
    key.write_text("process-test-key-0123")
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # batch_wait_ms=1500 holds each /predict in the batcher for 1.5 s: a request certainly in flight
    cmd = [
        sys.executable,
        "-m",
        "domainlm.cli",
        "serve",
        str(clf_dir),
        "--port",
        str(port),
        "--api-key-file",
        str(key),
        "--set",
        "serve.batch_wait_ms=1500",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(url, proc)
        auth = {"Authorization": "Bearer process-test-key-0123"}
        assert httpx.post(url + "/predict", json={"inputs": "x"}, timeout=10).status_code == 401
        assert httpx.get(url + "/info", headers=auth, timeout=10).json()["task"] == "classify"
        result: dict = {}

        def in_flight():
            try:
                r = httpx.post(
                    url + "/predict", json={"inputs": "Parliament may regulate"}, headers=auth, timeout=30
                )
                result["status"], result["body"] = r.status_code, r.json()
            except httpx.HTTPError as e:
                result["error"] = repr(e)

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.5)  # the request is now waiting in the batcher
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=30)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert result.get("status") == 200, (result, err[-2000:])
    assert {d["label"] for d in result["body"]} == {"other", "parliament"}
    assert proc.returncode == 0, err[-2000:]
    assert "stopped (SIGTERM)" in err
    try:
        httpx.get(url + "/health", timeout=1)
        raise AssertionError("the server still answers after SIGTERM")
    except httpx.HTTPError:
        pass
