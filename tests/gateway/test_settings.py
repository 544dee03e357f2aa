"""Settings: defaults as CONTRACT.md gives them, derived values, and refusals that name the variable."""

from __future__ import annotations

import pytest

from gateway.settings import RateLimit, SettingsError, load_settings, redact


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CRM_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def test_defaults_follow_the_contract() -> None:
    s = load_settings()
    assert s.database_url == "sqlite+aiosqlite:///./crm.db"
    assert (s.host, s.port, s.public_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert s.default_region == "US"
    assert s.telegram_mode == "polling"
    assert (s.smtp_port, s.mail_from, s.missed_call_timeout) == (587, "crm@localhost", 120)
    assert s.rate_limit.count == 10 and s.rate_limit.per_seconds == 60
    assert s.allowed_origins == frozenset()
    assert len(s.disabled_channels()) == 4


def test_public_url_follows_host_and_port_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_PORT", "9000")
    assert load_settings().public_url == "http://127.0.0.1:9000"
    monkeypatch.setenv("CRM_PUBLIC_URL", "https://crm.example.com/")
    assert load_settings().public_url == "https://crm.example.com"


def test_webhook_mode_without_a_secret_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("CRM_TELEGRAM_MODE", "webhook")
    with pytest.raises(SettingsError, match="CRM_TELEGRAM_WEBHOOK_SECRET"):
        load_settings()
    monkeypatch.setenv("CRM_TELEGRAM_WEBHOOK_SECRET", "s3cret")
    assert load_settings().telegram_mode == "webhook"


def test_region_is_read_in_any_case_and_unknown_ones_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DEFAULT_REGION", "gb")
    assert load_settings().default_region == "GB"
    monkeypatch.setenv("CRM_DEFAULT_REGION", "Narnia")
    with pytest.raises(SettingsError, match=r"^CRM_DEFAULT_REGION: "):
        load_settings()


def test_a_missing_routing_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_ROUTING_FILE", "/nonexistent/routing.toml")
    with pytest.raises(SettingsError, match=r"^CRM_ROUTING_FILE: no such file"):
        load_settings()


def test_blank_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SMTP_HOST", "  ")
    monkeypatch.setenv("CRM_TELEGRAM_BOT_TOKEN", "")
    s = load_settings()
    assert s.smtp_host is None and s.telegram_bot_token is None


def test_a_typo_in_a_dotenv_file_is_named(tmp_path: object) -> None:
    from pathlib import Path

    Path(".env").write_text("CRM_SMTP_HOSTNAME=mail.example.com\nUNRELATED=1\n")
    with pytest.raises(SettingsError, match=r"^CRM_SMTP_HOSTNAME: unknown variable"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "count", "seconds"), [("10/minute", 10, 60), ("1/second", 1, 1), (" 500 / hour", 500, 3600)]
)
def test_rate_limits_read(text: str, count: int, seconds: int) -> None:
    rate = RateLimit(text)
    assert (rate.count, rate.per_seconds) == (count, seconds)


@pytest.mark.parametrize("text", ["10", "0/minute", "ten/minute", "5/day", ""])
def test_bad_rate_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="N/second"):
        RateLimit(text)


def test_a_password_in_a_database_url_shows_as_stars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", "postgresql+asyncpg://crm:s3cr%40t/x@db.example.com:port/crm")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == (
        "CRM_DATABASE_URL: not a URL SQLAlchemy can read: postgresql+asyncpg://user:password@host:5432/db "
        "(a password with / @ : or % in it is written %-encoded) "
        "(got 'postgresql+asyncpg://crm:***@db.example.com:port/crm')"
    )


def test_a_secret_setting_is_named_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TELEGRAM_BOT_TOKEN", "123456789:AAH dqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
    with pytest.raises(SettingsError, match=r"^CRM_TELEGRAM_BOT_TOKEN: not a Telegram bot token") as refused:
        load_settings()
    assert "dqTcv" not in str(refused.value)


def test_secrets_stay_out_of_the_settings_repr_and_are_listed_for_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_TELEGRAM_BOT_TOKEN", " 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw ")
    monkeypatch.setenv("CRM_TWILIO_AUTH_TOKEN", "twilio-auth-token")
    monkeypatch.setenv("CRM_SMTP_PASSWORD", "smtp-password")
    monkeypatch.setenv("CRM_DATABASE_URL", "postgresql+asyncpg://crm:db-password@db.example.com/crm")
    s = load_settings()
    assert s.telegram_bot_token == "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # pasted with spaces
    shown = repr(s)
    assert "AAHdq" not in shown and "twilio-auth-token" not in shown and "smtp-password" not in shown
    assert set(s.secrets()) >= {
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "twilio-auth-token",
        "smtp-password",
        "db-password",
    }


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "url='https://api.telegram.org/bot123:SECRET-TAIL/getMe'",
            "url='https://api.telegram.org/bot***/getMe'",
        ),
        ("POST /botSECRET-TAIL/sendMessage", "POST /bot***/sendMessage"),
        ("postgresql+asyncpg://crm:pa/ss@db/crm failed", "postgresql+asyncpg://crm:***@db/crm failed"),
        (
            "tcp://admin:amp@pbx:5038 and http://host:8080/path",
            "tcp://admin:***@pbx:5038 and http://host:8080/path",
        ),
        ("an abc is not a secret", "an abc is not a secret"),
    ],
)
def test_redact_masks_secrets_and_url_passwords(text: str, masked: str) -> None:
    assert redact(text, ["123:SECRET-TAIL", "SECRET-TAIL", "abc"]) == masked
