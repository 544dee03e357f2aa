"""Twilio, played by the tests: a Programmable Voice simulator and a local stand-in for api.twilio.com.

:class:`TwilioSimulator` acts as Twilio towards the gateway over real HTTP. It signs every request with
``X-Twilio-Signature`` (``RequestValidator(auth_token).compute_signature(url, params)`` over the exact URL it
requests, query string included) and follows the TwiML the gateway answers, one step at a time, as the test
drives the call: ``call = await twilio.inbound(from_=...)`` only fetches the voice URL; ``await
call.answer(by=...)``, ``no_answer()``, ``busy()``, ``fail()``, ``caller_hangs_up()`` and
``leave_voicemail()`` then produce the callbacks Twilio would send, in the order Twilio fires them.

What it follows (Twilio's TwiML and webhook reference):

* ``<Dial>`` rings every ``<Number>``/``<Sip>``/``<Client>`` at once ("The first call to pick up is
  connected to the current call and the rest are hung up"). Each child leg has its own ``CallSid``,
  ``ParentCallSid`` = the caller's call and ``Direction=outbound-dial``; its ``statusCallback`` receives
  the events listed in ``statusCallbackEvent`` (``initiated ringing answered completed``; only
  ``completed`` when a callback is given without events), each with ``Timestamp`` (RFC 2822),
  ``CallbackSource=call-progress-events`` and a per-call ``SequenceNumber`` starting at 0. ``answered`` is
  reported with ``CallStatus=in-progress``; ``completed`` carries the final status (``completed``, ``busy``,
  ``failed``, ``no-answer``, ``canceled``), ``CallDuration`` (seconds), ``Duration`` (minutes, rounded up)
  and, when ``<Dial record>`` recorded, ``RecordingUrl``/``RecordingSid``/``RecordingDuration``.
* A noun's ``url`` is requested on the answering leg "after they answer, but before the parties are
  connected"; ``<Say>``, ``<Play>`` and ``<Pause>`` there are heard by the callee only, ``<Hangup>``
  declines the call.
* The ``<Dial action>`` is requested when the dialed call ends with ``DialCallStatus``, ``DialCallSid``,
  ``DialCallDuration``, ``DialBridged`` and the recording parameters; the TwiML it answers takes over the
  call. Without ``action`` Twilio goes on with the verbs after ``<Dial>``; at the end of a document it
  hangs up.
* ``<Record>`` posts its ``action`` (default: the current document's URL) with ``RecordingUrl``,
  ``RecordingSid``, ``RecordingDuration`` and ``Digits`` (``hangup`` when the caller hung up); its
  ``recordingStatusCallback`` gets ``RecordingStatus=completed`` and ``RecordingSource=RecordVerb`` when the
  file is ready. A ``RecordingUrl`` serves WAV, and MP3 with ``.mp3`` appended, with HTTP basic auth.
* When the call ends, the number's "call status changes" webhook (or the REST call's ``StatusCallback``)
  gets ``CallStatus=completed`` with ``CallDuration``.

Every request also carries ``I-Twilio-Idempotency-Token`` (kept on a retry, see :meth:`replay_last`).

Where Twilio's documentation is silent the simulator picks one behaviour and says so: losing legs of a
simultaneous ring end ``canceled`` (the ``<Client>`` reference says the other attempts "are canceled"); a
callee who declines in the screening TwiML ends the dial as ``no-answer`` with ``DialBridged=false``; a caller
who hangs up while the agents ring cancels the legs and the ``<Dial action>`` is still requested (its
TwiML is not run) with ``DialCallStatus=canceled``. Each is a parameter tests can change.

:class:`TwilioRestServer` serves the REST API parts the gateway uses: ``POST .../Calls.json`` (basic auth,
Twilio's JSON errors), ``GET .../Calls.json`` (the Calls list with its filters, see
:meth:`TwilioRestServer.list_calls`) and recording media. A call the simulator drives
(:meth:`TwilioSimulator.outbound_from_rest`) moves its resource on as Twilio would: ``status``,
``start_time`` (set once the call is dialled), ``end_time`` and ``duration``.

The package, by concern: ``model`` (constants, SIDs, timestamps and the records it keeps), ``signing``
(posting as Twilio: signatures, the request log, held and replayed callbacks), ``following`` (a call's
state and the TwiML steps Twilio takes by itself), ``calls`` (what the people on the line do),
``simulator`` (placing calls), ``rest_core``, ``rest_calls`` and ``recordings`` (the REST stand-in's
state, Calls resource and media) and ``rest_server`` (its lifecycle and routing).
"""

from tests.fakes.twilio.calls import InboundCall, OutboundCall, SimulatedCall
from tests.fakes.twilio.model import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DialTarget,
    HttpAnswer,
    PendingRequest,
    Recording,
    SentRequest,
    new_sid,
    rfc2822,
)
from tests.fakes.twilio.recordings import silent_mp3, silent_wav
from tests.fakes.twilio.rest_server import TwilioRestServer, running_rest_server
from tests.fakes.twilio.simulator import TwilioSimulator

__all__ = [
    "API_VERSION",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DialTarget",
    "HttpAnswer",
    "InboundCall",
    "OutboundCall",
    "PendingRequest",
    "Recording",
    "SentRequest",
    "SimulatedCall",
    "TwilioRestServer",
    "TwilioSimulator",
    "new_sid",
    "rfc2822",
    "running_rest_server",
    "silent_mp3",
    "silent_wav",
]
