"""Recording media: the silent WAV and MP3 files a ``RecordingUrl`` serves, and serving them as Twilio
does (WAV by default, MP3 with ``.mp3`` appended, the recording's JSON with ``.json``)."""

from __future__ import annotations

import io
import wave

from aiohttp import web

from tests.fakes.twilio.model import API_VERSION
from tests.fakes.twilio.rest_core import RestCore, _twilio_error


def silent_wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A short, valid mono 16-bit PCM WAV file of silence (what a ``RecordingUrl`` serves by default)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(rate * seconds))
    return buffer.getvalue()


# One silent MPEG-1 Layer III frame: 128 kbit/s, 44.1 kHz, mono, no CRC; 144 * 128000 / 44100 = 417 bytes.
_MP3_FRAME = bytes([0xFF, 0xFB, 0x90, 0xC0]) + bytes(417 - 4)


def silent_mp3(frames: int = 8) -> bytes:
    """A few silent MP3 frames (what ``{RecordingUrl}.mp3`` serves)."""
    return _MP3_FRAME * frames


class RecordingMedia(RestCore):
    """The ``Recordings/{sid}`` media of the REST stand-in."""

    def recording_url(self, recording_sid: str) -> str:
        return f"{self.url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    def add_recording(self, recording_sid: str, data: bytes, *, content_type: str = "audio/mpeg") -> str:
        """Serve ``data`` at the recording's URL (plain, ``.mp3``, ``.wav``); returns the ``RecordingUrl``."""
        extension = ".wav" if "wav" in content_type else ".mp3"
        return self._store_recording(recording_sid, {extension: (data, content_type)})

    def _store_recording(self, recording_sid: str, media: dict[str, tuple[bytes, str]]) -> str:
        self._recordings[recording_sid] = dict(media)
        return self.recording_url(recording_sid)

    def _recording(self, request: web.Request, name: str) -> web.StreamResponse:
        sid, dot, extension = name.partition(".")
        media = self._recordings.get(sid)
        if media is None or (dot and extension not in ("mp3", "wav", "json")):
            return web.json_response(
                _twilio_error(404, 20404, f"The requested resource {request.path} was not found"), status=404
            )
        if extension == "json":
            return web.json_response(
                {
                    "sid": sid,
                    "account_sid": self.account_sid,
                    "api_version": API_VERSION,
                    "status": "completed",
                }
            )
        wanted = f".{extension}" if dot else ".wav"  # "binary WAV audio format by default"
        data, content_type = media.get(wanted) or next(iter(media.values()))
        self.recording_fetches.append(str(request.url))
        return web.Response(body=data, content_type=content_type)
