"""Typed keys for what the app shares with its handlers (aiohttp's `AppKey`)."""

from __future__ import annotations

from aiohttp import web

from bots.telegram import TelegramBot
from crm.service import Crm
from crm.services.telephony import Telephony
from crm.storage.store import Store
from gateway.metrics import Metrics
from gateway.ratelimit import SlidingWindow
from gateway.settings import Settings
from gateway.workers import CallSweeper, Reminders
from mail.sender import MailSender
from telephony.twilio.rest import TwilioRest

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
CRM = web.AppKey("crm", Crm)
METRICS = web.AppKey("metrics", Metrics)
TELEGRAM = web.AppKey("telegram", TelegramBot)
REMINDERS = web.AppKey("reminders", Reminders)
SWEEPER = web.AppKey("sweeper", CallSweeper)
TWILIO = web.AppKey("twilio", TwilioRest)
MAIL = web.AppKey("mail", MailSender)
LEAD_LIMIT = web.AppKey("lead_limit", SlidingWindow)
# The telephony providers' door to the domain (first rings written in group commits).
TELEPHONY = web.AppKey("telephony", Telephony)
