"""`crm-gateway serve` with a routing file it cannot use stops at once, with one line that names
CRM_ROUTING_FILE, and a good one lets it serve."""

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

import pytest

CLI = [sys.executable, "-m", "gateway.cli"]


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return {**clean, "CRM_DATABASE_URL": db_url, "PYTHONPATH": str(Path(__file__).parents[2])}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[rule]]\nsource = "landing"\nagents = ["+1 415 555 0001"\n', "not valid TOML"),
        ('[[rule]]\nsource = "landing"\nagents = ["+1 415 555 0099"]\n', "names +14155550099"),
    ],
)
def test_serve_stops_with_one_line_naming_the_routing_file(
    env: dict[str, str], tmp_path: Path, text: str, says: str
) -> None:
    assert run(["agent", "add", "Alice", "--phone", "+1 415 555 0001"], env, tmp_path).returncode == 0
    rules = tmp_path / "routing.toml"
    rules.write_text(text, encoding="utf-8")
    done = run(["serve"], {**env, "CRM_ROUTING_FILE": str(rules)}, tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "CRM_ROUTING_FILE" in lines[0] and says in lines[0]
    assert done.stdout == ""


def test_a_missing_routing_file_is_a_configuration_error(env: dict[str, str], tmp_path: Path) -> None:
    done = run(["serve"], {**env, "CRM_ROUTING_FILE": str(tmp_path / "nope.toml")}, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CRM_ROUTING_FILE" in lines[0]


def test_serve_starts_with_a_good_routing_file(env: dict[str, str], tmp_path: Path) -> None:
    assert run(["agent", "add", "Alice", "--phone", "+1 415 555 0001"], env, tmp_path).returncode == 0
    rules = tmp_path / "routing.toml"
    rules.write_text('[[rule]]\ncountry = "US"\nagents = ["(415) 555-0001"]\n', encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [*CLI, "serve"],
        env={**env, "CRM_ROUTING_FILE": str(rules), "CRM_PORT": str(port)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert body == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
