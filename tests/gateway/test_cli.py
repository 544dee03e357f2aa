"""Operators script `crm-gateway`: one JSON object on stdout with --json, errors on stderr."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.processes import cli_env, run_cli, serve_until_healthy


def run(
    args: list[str], env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env, cwd, check=check)


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    return cli_env(db_url)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def test_agents_are_added_and_listed(env: dict[str, str], tmp_path: Path) -> None:
    alice = as_json(run(["agent", "add", "Alice", "--phone", "(415) 555-0001", "--json"], env, tmp_path))
    assert set(alice) == {"id", "name", "phone", "role", "invite_code"}
    assert (alice["name"], alice["phone"], alice["role"]) == ("Alice", "+14155550001", "agent")
    assert len(alice["invite_code"]) >= 12
    run(
        [
            "agent",
            "add",
            "Bob",
            "--phone",
            "+1 415 555 0002",
            "--role",
            "admin",
            "--sip",
            "sip:bob@pbx.example",
            "--json",
        ],
        env,
        tmp_path,
    )
    listed = as_json(run(["agent", "list", "--json"], env, tmp_path))
    assert listed == {
        "agents": [
            {
                "id": alice["id"],
                "name": "Alice",
                "phone": "+14155550001",
                "role": "agent",
                "on_duty": True,
                "telegram_bound": False,
            },
            {
                "id": alice["id"] + 1,
                "name": "Bob",
                "phone": "+14155550002",
                "role": "admin",
                "on_duty": True,
                "telegram_bound": False,
            },
        ]
    }
    human = run(["agent", "list"], env, tmp_path).stdout
    assert "Alice" in human and "Bob" in human


def test_bad_agent_input_is_one_line_on_stderr(env: dict[str, str], tmp_path: Path) -> None:
    done = run(["agent", "add", "Alice", "--phone", "12", "--json"], env, tmp_path, check=False)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "phone" in done.stderr and "too short" in done.stderr
    run(["agent", "add", "Alice", "--phone", "+14155550001"], env, tmp_path)
    again = run(["agent", "add", "Alicia", "--phone", "415-555-0001"], env, tmp_path, check=False)
    assert again.returncode != 0 and "already" in again.stderr


def test_an_agent_whose_chat_is_lost_gets_a_new_invite(env: dict[str, str], tmp_path: Path) -> None:
    alice = as_json(run(["agent", "add", "Alice", "--phone", "+14155550001", "--json"], env, tmp_path))
    bob = as_json(run(["agent", "add", "Bob", "--phone", "+14155550002", "--json"], env, tmp_path))

    invited = as_json(run(["agent", "invite", str(alice["id"]), "--json"], env, tmp_path))

    assert set(invited) == {"id", "invite_code"} and invited["id"] == alice["id"]
    assert invited["invite_code"] != alice["invite_code"] and len(invited["invite_code"]) >= 12
    human = run(["agent", "invite", str(alice["id"])], env, tmp_path).stdout
    assert "/start " in human and "within 7 days" in human and invited["invite_code"] not in human
    run(["agent", "remove", str(alice["id"]), "--reassign-to", str(bob["id"])], env, tmp_path)
    for gone in (str(alice["id"]), "999"):
        done = run(["agent", "invite", gone, "--json"], env, tmp_path, check=False)
        assert done.returncode != 0 and done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1
    left = run(["agent", "invite", str(alice["id"])], env, tmp_path, check=False)
    assert "has left" in left.stderr


def test_a_token_opens_the_api(env: dict[str, str], tmp_path: Path) -> None:
    made = as_json(run(["token", "create", "pbx", "--json"], env, tmp_path))
    assert made["name"] == "pbx" and made["token"].startswith("crm_")
    other = as_json(run(["token", "create", "pbx", "--json"], env, tmp_path))
    assert other["token"] != made["token"]


async def test_a_revoked_token_stops_working_at_once_in_a_running_gateway(
    env: dict[str, str], tmp_path: Path, gateway: TestClient[Any, Any]
) -> None:
    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run_cli, list(args), env, tmp_path)

    made = as_json(await cli("token", "create", "pbx", "--json"))
    other = as_json(await cli("token", "create", "reports", "--json"))
    pbx = {"Authorization": f"Bearer {made['token']}"}
    assert (await gateway.get("/api/v1/clients", headers=pbx)).status == 200

    revoked = await cli("token", "revoke", "pbx", "--json")

    assert revoked.returncode == 0 and as_json(revoked) == {"name": "pbx", "revoked": True}
    refused = await gateway.get("/api/v1/clients", headers=pbx)
    assert refused.status == 401
    assert "revoked" in (await refused.json())["detail"]
    still = await gateway.get("/api/v1/clients", headers={"Authorization": f"Bearer {other['token']}"})
    assert still.status == 200
    listed = await cli("token", "list", "--json")
    assert [t["name"] for t in as_json(listed)["tokens"]] == ["reports"]
    assert made["token"] not in listed.stdout and other["token"] not in listed.stdout


def test_revoking_a_name_nobody_has_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    run(["token", "create", "pbx"], env, tmp_path)
    unknown = run(["token", "revoke", "pxb", "--json"], env, tmp_path, check=False)
    assert unknown.returncode != 0 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        "error: no live token named 'pxb': see `crm-gateway token list`"
    ]
    run(["token", "revoke", "pbx"], env, tmp_path)
    again = run(["token", "revoke", "pbx"], env, tmp_path, check=False)
    assert again.returncode != 0 and "revoked already" in again.stderr


def test_tokens_are_listed_by_name_and_date_never_shown(env: dict[str, str], tmp_path: Path) -> None:
    assert as_json(run(["token", "list", "--json"], env, tmp_path)) == {"tokens": []}
    first = as_json(run(["token", "create", "pbx", "--json"], env, tmp_path))["token"]
    second = as_json(run(["token", "create", "pbx", "--json"], env, tmp_path))["token"]
    listed = run(["token", "list", "--json"], env, tmp_path)
    tokens = as_json(listed)["tokens"]
    assert [set(t) for t in tokens] == [{"name", "created_at"}] * 2
    assert [t["name"] for t in tokens] == ["pbx", "pbx"]
    assert datetime.fromisoformat(tokens[0]["created_at"]).tzinfo is not None
    human = run(["token", "list"], env, tmp_path).stdout
    assert "pbx" in human
    for token in (first, second):
        assert token not in listed.stdout and token not in human
    assert "2 tokens named 'pbx' revoked" in run(["token", "revoke", "pbx"], env, tmp_path).stdout


def test_db_upgrade_is_repeatable(env: dict[str, str], tmp_path: Path) -> None:
    assert as_json(run(["db", "upgrade", "--json"], env, tmp_path)) == {"upgraded": True}
    assert as_json(run(["db", "upgrade", "--json"], env, tmp_path)) == {"upgraded": True}


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CRM_PORT", "eighty", "CRM_PORT"),
        ("CRM_TELEGRAM_MODE", "carrier-pigeon", "CRM_TELEGRAM_MODE"),
        ("CRM_DEFAULT_REGION", "XX", "CRM_DEFAULT_REGION"),
        ("CRM_DATABASE_URL", "mysql://x", "CRM_DATABASE_URL"),
        ("CRM_LEADS_RATE_LIMIT", "lots", "CRM_LEADS_RATE_LIMIT"),
        ("CRM_TELEGRAM_TOKEN", "123:abc", "CRM_TELEGRAM_TOKEN: unknown variable"),
    ],
)
def test_a_bad_setting_stops_with_one_line_naming_it(
    env: dict[str, str], tmp_path: Path, variable: str, value: str, says: str
) -> None:
    done = run(["agent", "list"], {**env, variable: value}, tmp_path, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0]


def test_settings_are_read_from_a_dotenv_file(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CRM_PORT=not-a-port\nOTHER_TOOL_SETTING=1\n")
    done = run(["agent", "list"], env, tmp_path, check=False)
    assert done.returncode == 2 and "CRM_PORT" in done.stderr


def test_serve_answers_health_and_stops_cleanly_on_sigterm(env: dict[str, str], tmp_path: Path) -> None:
    body, out, returncode = serve_until_healthy(env, tmp_path)
    assert body == {"status": "ok"}
    assert returncode == 0, out
    off_lines = [line for line in out.splitlines() if "channels off" in line]
    assert len(off_lines) == 1
    assert "CRM_TELEGRAM_BOT_TOKEN" in off_lines[0] and "CRM_TWILIO_ACCOUNT_SID" in off_lines[0]


@pytest.mark.parametrize("access_log", ["true", "false"])
def test_the_access_log_can_be_left_to_the_proxy(
    env: dict[str, str], tmp_path: Path, access_log: str
) -> None:
    body, out, _ = serve_until_healthy({**env, "CRM_ACCESS_LOG": access_log}, tmp_path)
    assert body == {"status": "ok"}
    logged = [line for line in out.splitlines() if '"GET /healthz HTTP/1.1" 200' in line]
    assert len(logged) == (1 if access_log == "true" else 0), out


def test_import_and_export_from_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    run(["agent", "add", "Alice", "--phone", "+14155550001"], env, tmp_path)
    source = tmp_path / "clients.csv"
    source.write_text(
        "Name,Phone,Email,Company,Tags,Owner,Plan\n"
        "Ada Lovelace,(415) 555-0100,ada@example.com,Engines Ltd,vip;math,Alice,gold\n"
        "Ada again,+1 415 555 0100,ada@work.example,,,,\n"
        "Bad Number,12,,,,,\n"
        ",,,,,,\n"
        "Nobody,,,,,Zed,\n",
        encoding="utf-8-sig",
    )
    report = as_json(run(["import", str(source), "--json"], env, tmp_path))
    assert (report["created"], report["updated"], report["skipped"]) == (2, 1, 1)
    assert [e["line"] for e in report["errors"]] == [4, 6]
    human = run(["import", str(source)], env, tmp_path)
    assert "updated 0" in human.stdout and "line 6" in human.stdout
    target = tmp_path / "out.csv"
    exported = as_json(run(["export", str(target), "--json"], env, tmp_path))
    assert exported["exported"] >= 2
    text = target.read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("name,phone,email,company,tags,notes,owner")
    ada = "Ada Lovelace,+1 415-555-0100,ada@example.com; ada@work.example,Engines Ltd,vip; math,,Alice,gold"
    assert ada in text


def test_import_of_a_missing_file_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    done = run(["import", str(tmp_path / "nope.csv"), "--json"], env, tmp_path, check=False)
    assert done.returncode == 1 and "no such file" in done.stderr and done.stdout == ""


def test_an_export_shows_formulas_as_text_and_imports_back_unchanged(
    env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "clients.csv"
    source.write_text(
        "name,phone,email,tags,Plan\n"
        '"=HYPERLINK(""http://evil"",""x"")",+1 (415) 555-0100,,"=cmd|\' /C calc\'!A0",@SUM(1)\n'
        "-2+3,,minus@example.com,vip,\n",
        encoding="utf-8",
    )
    assert as_json(run(["import", str(source), "--json"], env, tmp_path))["created"] == 2
    target = tmp_path / "out.csv"
    run(["export", str(target)], env, tmp_path)
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[1:] == [
        '"\'=HYPERLINK(""http://evil"",""x"")",+1 415-555-0100,,,\'=cmd|\' /C calc\'!A0,,,\'@SUM(1)',
        "'-2+3,,minus@example.com,,vip,,,",
    ]
    again = as_json(run(["import", str(target), "--json"], env, tmp_path))
    assert again == {"created": 0, "updated": 0, "skipped": 2, "errors": []}
