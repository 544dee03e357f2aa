"""The whole gateway (Twilio, Telegram) for stories about agents joining and leaving."""

from tests.bots.conftest import bot_api, bot_settings, clock  # noqa: F401  # fixtures
from tests.gateway.conftest import settings  # noqa: F401  # fixture
from tests.telephony.conftest import call_settings, phones, twilio_rest  # noqa: F401  # fixtures
