"""`crm-gateway serve` with a routing file it cannot use stops at once, with one line that names
CRM_ROUTING_FILE, and a good one lets it serve."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.processes import cli_env, run_cli, serve_until_healthy


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    return cli_env(db_url)


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env, cwd)


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
    body, out, returncode = serve_until_healthy({**env, "CRM_ROUTING_FILE": str(rules)}, tmp_path)
    assert body == {"status": "ok"}
    assert returncode == 0, out
