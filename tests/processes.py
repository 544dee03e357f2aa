"""`crm-gateway` as an operator runs it: a separate process with a clean CRM_* environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "gateway.cli"]
ROOT = Path(__file__).parents[1]
START_DEADLINE_S = 90


def cli_env(db_url: str) -> dict[str, str]:
    """This process's environment without any CRM_* variable, pointed at `db_url`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return {**clean, "CRM_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, check: bool = False
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_until_healthy(env: dict[str, str], cwd: Path) -> tuple[Any, str, int]:
    """Start `crm-gateway serve`, ask `/healthz` until it answers, stop it with SIGTERM.
    Returns the health answer (None if it never came), everything the process printed, and its
    exit code."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve"],
        env={**env, "CRM_PORT": str(port)},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    body = None
    # Asked until it answers or the process ends; the deadline only bounds a hang (a loaded
    # machine can take several seconds to import the gateway).
    deadline = time.monotonic() + START_DEADLINE_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    return body, out, proc.returncode
