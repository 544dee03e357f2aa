"""The gateway's configuration: every CRM_* variable of CONTRACT.md, read once into one object.

Values come from the environment and from a `.env` file in the working directory. A bad or
unknown value stops start-up with one line that names the variable (`SettingsError`).

Secrets (tokens, passwords, the password in a URL) never appear in such a line, nor in the log:
`Settings.secrets()` names them, and `redact` writes them as `***`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import phonenumbers
from dotenv import dotenv_values
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "CRM_"
TELEGRAM_API_DEFAULT = "https://api.telegram.org"
TWILIO_API_DEFAULT = "https://api.twilio.com"

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$")
_RATE_SECONDS = {"second": 1, "minute": 60, "hour": 3600}

# The settings whose values are secrets: never shown, in an error line or in the log.
SECRET_FIELDS = frozenset(
    {"telegram_bot_token", "telegram_webhook_secret", "twilio_auth_token", "smtp_password"}
)
MASK = "***"
# Shorter secrets are not masked in the log: every "ab" of every line would go, and a secret that
# short protects nothing anyway.
_SHORTEST_MASKED = 4
# `scheme://user:password@`: the password ends at the `@` (SQLAlchemy's URLs may hold `/` in it).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]*:)[^\s@'\"]*@")


class SettingsError(Exception):
    """A configuration problem, phrased as the one line an operator needs to fix it."""


class RateLimit:
    """`N/second`, `N/minute` or `N/hour`: how many events one key may have per window."""

    __slots__ = ("count", "per_seconds", "text")

    def __init__(self, text: str) -> None:
        match = _RATE.match(text)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"expected N/second, N/minute or N/hour with N ≥ 1, got {text!r}")
        self.count = int(match.group(1))
        self.per_seconds = _RATE_SECONDS[match.group(2)]
        self.text = text.strip()

    def __repr__(self) -> str:
        return f"RateLimit({self.text!r})"


class Settings(BaseSettings):
    """Typed view of the environment; build it with `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str = "sqlite+aiosqlite:///./crm.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str = ""
    default_region: str = "US"

    # Secrets stay out of `repr(settings)` too.
    telegram_bot_token: str | None = Field(default=None, repr=False)
    telegram_api_url: str = TELEGRAM_API_DEFAULT
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: str | None = Field(default=None, repr=False)
    telegram_paid_broadcast: bool = False

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = Field(default=None, repr=False)
    twilio_api_url: str = TWILIO_API_DEFAULT
    twilio_caller_id: str | None = None

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = True
    mail_from: str = "crm@localhost"
    leads_notify_email: str | None = None

    form_allowed_origins: str = ""
    leads_rate_limit: str = "10/minute"
    routing_file: Path | None = None
    missed_call_timeout: int = Field(default=120, ge=1)
    access_log: bool = True

    @field_validator(
        "telegram_bot_token",
        "telegram_webhook_secret",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_caller_id",
        "smtp_host",
        "smtp_user",
        "smtp_password",
        "leads_notify_email",
        "routing_file",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "expected an async SQLAlchemy URL: sqlite+aiosqlite:///path "
                "or postgresql+asyncpg://user:password@host/db"
            )
        try:
            make_url(value)
        except (ArgumentError, ValueError):  # SQLAlchemy's own message repeats the URL, password and all
            raise ValueError(
                "not a URL SQLAlchemy can read: postgresql+asyncpg://user:password@host:5432/db "
                "(a password with / @ : or % in it is written %-encoded)"
            ) from None
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _bot_token(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from aiogram.utils.token import TokenValidationError, validate_token

        try:
            validate_token(value.strip())
        except TokenValidationError:
            raise ValueError(
                "not a Telegram bot token: expected the bot's id, a colon and its secret, "
                "as @BotFather gives it (123456789:AA...)"
            ) from None
        return value.strip()

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 country code phonenumbers knows")
        return region

    @field_validator("public_url", "telegram_api_url", "twilio_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("leads_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        RateLimit(value)
        return value

    @field_validator("routing_file")
    @classmethod
    def _routing_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        if self.telegram_mode == "webhook" and self.telegram_bot_token and not self.telegram_webhook_secret:
            raise ValueError(
                "CRM_TELEGRAM_MODE=webhook needs CRM_TELEGRAM_WEBHOOK_SECRET, "
                "so that nobody else can post updates"
            )
        return self

    def secrets(self) -> list[str]:
        """Every secret these settings hold: what the log must never show (`redact`)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return _secrets_in(values)

    @property
    def rate_limit(self) -> RateLimit:
        return RateLimit(self.leads_rate_limit)

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.form_allowed_origins.split(",") if o.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def disabled_channels(self) -> list[str]:
        """One phrase per channel that is off, naming the variable that turns it on."""
        off = []
        if not self.telegram_bot_token:
            off.append("Telegram bot off (set CRM_TELEGRAM_BOT_TOKEN)")
        if not (self.twilio_account_sid and self.twilio_auth_token):
            off.append("Twilio webhooks off (set CRM_TWILIO_ACCOUNT_SID and CRM_TWILIO_AUTH_TOKEN)")
        if not self.twilio_caller_id:
            off.append("click-to-call off (set CRM_TWILIO_CALLER_ID)")
        if not self.smtp_host:
            off.append("mail off (set CRM_SMTP_HOST)")
        elif not self.leads_notify_email:
            off.append("lead mail off (set CRM_LEADS_NOTIFY_EMAIL)")
        return off


def redact(text: str, secrets: Iterable[str] = (), *, urls: bool = True) -> str:
    """`text` with each of `secrets`, and (`urls`) the password of any URL in it, written as `***`."""
    if urls:
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    for secret in sorted(secrets, key=len, reverse=True):  # a token before its own tail
        if len(secret) >= _SHORTEST_MASKED:
            text = text.replace(secret, MASK)
    return text


def _secrets_in(values: Mapping[str, object]) -> list[str]:
    """The secrets among settings' values (keyed by field name): the secret fields, the secret
    half of the bot token (`123:SECRET`, what a Bot API URL shows), the passwords in URLs."""
    found: list[str] = []
    for name, value in values.items():
        if not isinstance(value, str) or not value.strip():
            continue
        if name in SECRET_FIELDS:
            found += [value, value.strip()]
            if name == "telegram_bot_token" and ":" in value:
                found.append(value.strip().partition(":")[2])
        elif "://" in value and "@" in value:
            try:
                password = make_url(value).password
            except (ArgumentError, ValueError):
                password = None
            if password:
                found.append(str(password))
    return [s for s in dict.fromkeys(found) if s]


def _unknown_variables(environ: dict[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise `SettingsError` with one line naming the culprit.

    A `CRM_*` variable we do not know is refused too: it is nearly always a typo that would
    otherwise silently leave a channel off.
    """
    names = dict(os.environ)
    env_file = Path(".env")
    if env_file.is_file():
        names.update({k: v or "" for k, v in dotenv_values(env_file).items()})
    unknown = _unknown_variables(names)
    if unknown:
        raise SettingsError(f"{unknown[0]}: unknown variable (see CONTRACT.md for the list)")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic fills in the rest
    except ValidationError as exc:
        prefix = len(ENV_PREFIX)
        given = {k[prefix:].lower(): v for k, v in names.items() if k.upper().startswith(ENV_PREFIX)}
        raise SettingsError(_one_line(exc, _secrets_in({**given, **overrides}))) from None


def _one_line(exc: ValidationError, secrets: list[str]) -> str:
    """The first error as `CRM_NAME: what is wrong (got 'value')`; a secret's value is not shown,
    and no secret is (pydantic's own `str(exc)` would print every `input_value`)."""
    error = exc.errors()[0]
    location = error.get("loc") or ()
    field = str(location[0]) if location else ""
    variable = ENV_PREFIX + field.upper()
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    value = error.get("input")
    # The message's own example (`user:password@host`) stays; a value's password goes.
    message = redact(message, secrets, urls=False)
    if not field:  # an error of the settings together names its variables itself
        return message
    shown = ""
    if field not in SECRET_FIELDS and isinstance(value, str | int):
        shown = f" (got {redact(repr(value), secrets)})"
    return f"{variable}: {message}{shown}"
