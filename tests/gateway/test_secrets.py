"""An operator's secrets (tokens, passwords) never show: not in an error line, not in the log.

`crm-gateway` runs as a separate process, as an operator runs it, with every secret set.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.fakes.not_http import not_http_server  # noqa: F401  # fixture
from tests.processes import CLI, cli_env, free_port, run_cli

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRETS = {
    "CRM_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
    "CRM_TELEGRAM_WEBHOOK_SECRET": "webhook-secret-Qm9vb3Zt",
    "CRM_TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
    "CRM_TWILIO_AUTH_TOKEN": "twilio-auth-token-9f8e7d6c5b4a",
    "CRM_SMTP_HOST": "127.0.0.1",
    "CRM_SMTP_USER": "crm",
    "CRM_SMTP_PASSWORD": "smtp-pa55word-Zx81",
}
DB_PASSWORD = "db-pa55word-Hq3w"


def secrets_in(text: str) -> list[str]:
    """The secrets that `text` shows: none, or the bot token's secret half shown alone, either."""
    shown = [
        v for k, v in SECRETS.items() if k not in ("CRM_TWILIO_ACCOUNT_SID", "CRM_SMTP_HOST", "CRM_SMTP_USER")
    ]
    shown += [BOT_TOKEN.partition(":")[2], DB_PASSWORD]
    return [secret for secret in shown if secret in text]


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    return {**cli_env(db_url), **SECRETS}


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        (
            "CRM_DATABASE_URL",
            f"mysql://crm:{DB_PASSWORD}@db.example.com/crm",
            "(got 'mysql://crm:***@db.example.com/crm')",
        ),
        (
            "CRM_DATABASE_URL",
            f"postgresql+asyncpg://crm:{DB_PASSWORD}@db.example.com:five/crm",
            "(got 'postgresql+asyncpg://crm:***@db.example.com:five/crm')",
        ),
        ("CRM_PUBLIC_URL", f"ftp://crm:{DB_PASSWORD}@crm.example.com", "got 'ftp://crm:***@crm.example.com'"),
        (
            "CRM_TELEGRAM_BOT_TOKEN",
            "123456789:AAHdqTcvCH1v GWJxfSeofSAs0K5PALDsaw",
            "not a Telegram bot token",
        ),
        ("CRM_SMTP_PORT", "smtp-pa55word-Zx81", "CRM_SMTP_PORT"),  # a secret pasted into the wrong line
        ("CRM_PORT", "eighty", "(got 'eighty')"),
        ("CRM_TELEGRAM_MODE", "webhook", "CRM_TELEGRAM_WEBHOOK_SECRET"),
    ],
)
def test_a_bad_setting_is_named_without_printing_any_secret(
    env: dict[str, str], tmp_path: Path, variable: str, value: str, shown: str
) -> None:
    if variable == "CRM_TELEGRAM_MODE":
        del env["CRM_TELEGRAM_WEBHOOK_SECRET"]  # webhook mode without its secret is refused

    done = run_cli(["agent", "list", "--json"], {**env, variable: value}, tmp_path)

    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"configuration error: {variable}"), line
    assert shown in line
    assert secrets_in(done.stderr) == [], line


def test_a_database_url_sqlalchemy_cannot_read_is_named_with_its_password_masked(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://crm:{DB_PASSWORD}@db.example.com:5432:5433/crm"
    done = run_cli(["db", "upgrade"], {**env, "CRM_DATABASE_URL": url}, tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("configuration error: CRM_DATABASE_URL: not a URL SQLAlchemy can read")
    assert "crm:***@db.example.com" in done.stderr and DB_PASSWORD not in done.stderr


def serve_until_logged(env: dict[str, str], cwd: Path, wanted: str, timeout: float = 60) -> str:
    """Start `crm-gateway serve`, read its log until a line holds `wanted`, stop it with SIGTERM;
    everything it printed."""
    proc = subprocess.Popen(
        [*CLI, "serve"],
        env={**env, "CRM_PORT": str(free_port())},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    guard = threading.Timer(timeout, proc.kill)  # a line that never comes fails the test, not the run
    guard.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if wanted in line:
                break
    finally:
        guard.cancel()
        proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # never leave a gateway running after the test
            proc.kill()
            rest, _ = proc.communicate()
    return "".join(lines) + rest


def test_the_log_of_a_gateway_with_every_secret_set_shows_none(
    env: dict[str, str],
    tmp_path: Path,
    not_http_server: str,  # noqa: F811
) -> None:
    url = make_url(env["CRM_DATABASE_URL"])
    if url.get_backend_name() == "postgresql":  # the test server trusts local users: never asked for
        env["CRM_DATABASE_URL"] = url.set(password=DB_PASSWORD).render_as_string(hide_password=False)
    env |= {"CRM_TELEGRAM_API_URL": not_http_server, "CRM_TELEGRAM_MODE": "webhook"}

    log = serve_until_logged(env, tmp_path, "cannot reach the Telegram Bot API")

    (warning,) = [line for line in log.splitlines() if "cannot reach the Telegram Bot API" in line]
    assert f"{not_http_server}/bot***/setMyCommands" in warning  # the line that quoted the token
    assert "serving on" in log
    assert secrets_in(log) == [], log
