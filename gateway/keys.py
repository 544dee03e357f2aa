"""Typed keys for what the app shares with its handlers (aiohttp's `AppKey`)."""

from __future__ import annotations

from aiohttp import web

from crm.service import Crm
from crm.store import Store
from gateway.metrics import Metrics
from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
CRM = web.AppKey("crm", Crm)
METRICS = web.AppKey("metrics", Metrics)
