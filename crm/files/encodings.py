"""Which encoding a CSV file is in: by its BOM, else UTF-8 if all of it decodes so, else the code
page a spreadsheet program most likely saved it in.

Spreadsheets save "CSV" in the Windows ANSI code page of the office's locale (or KOI8-R), with
nothing in the file to say which; a wrong guess imports every name garbled, so the whole file is
checked to decode before it is read.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import charset_normalizer

from crm.files.import_errors import CsvFormatError

# Code pages spreadsheet programs save "CSV" in (Windows ANSI code pages, KOI8-R), most common first.
LEGACY_ENCODINGS = (
    "cp1252",
    "cp1250",
    "cp1251",
    "cp1253",
    "cp1254",
    "cp1257",
    "cp1255",
    "cp1256",
    "cp1258",
    "cp874",
    "cp932",
    "gb18030",
    "big5",
    "cp949",
    "koi8_r",
)
_SAMPLE = 1 << 20  # bytes read at a time, and at most given to charset_normalizer
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def encoding_of(path: Path) -> str:
    """The file's encoding: by its BOM, else UTF-8 if all of it decodes so, else a good guess.

    All of the file is checked, streaming: a non-ASCII byte may first appear on line 900,000.
    """
    with path.open("rb") as f:
        head = f.read(_SAMPLE)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if b"\x00" in head:  # valid UTF-8, but text with NULs is UTF-16 or UTF-32 without a BOM
        best = charset_normalizer.from_bytes(head).best()
        guess = str(best.encoding) if best is not None else None
    elif _first_undecodable(path, "utf-8") is None:
        return "utf-8"
    else:
        guess = _guess_legacy(_non_ascii_lines(path))
    if guess is None:
        raise CsvFormatError("cannot tell the file's encoding; save it as UTF-8 and import again")
    bad = _first_undecodable(path, guess)
    if bad is not None:
        raise CsvFormatError(
            f"the file is neither UTF-8 nor {guess} (byte {bad} does not decode); "
            "save it as UTF-8 and import again"
        )
    return guess


def _guess_legacy(sample: bytes) -> str | None:
    """The code page a spreadsheet program most likely saved `sample` in.

    Only the code pages Excel writes "CSV" in are considered (left free, charset_normalizer
    reads a German line as mac_iceland). Encodings that read the sample equally well are told
    apart by how many of its non-ASCII characters come out as letters (Polish in cp1252 comes
    out as `£ukasz`), then by how common they are: cp1252 first.
    """
    matches = list(charset_normalizer.from_bytes(sample, cp_isolation=list(LEGACY_ENCODINGS)))
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    candidates = {
        str(e) for m in matches if m.chaos == least for e in m.could_be_from_charset if e in LEGACY_ENCODINGS
    }
    if not candidates:
        return None
    return max(candidates, key=lambda e: (_letter_share(sample, e), -LEGACY_ENCODINGS.index(e)))


def _letter_share(sample: bytes, encoding: str) -> float:
    other = [c for c in sample.decode(encoding, errors="replace") if not c.isascii()]
    return sum(c.isalpha() for c in other) / len(other) if other else 0.0


def _non_ascii_lines(path: Path) -> bytes:
    """Up to a sample's worth of the lines that tell one encoding from another."""
    found = bytearray()
    with path.open("rb") as f:
        for line in f:
            if not line.isascii():
                found += line
                if len(found) >= _SAMPLE:
                    break
    return bytes(found)


def _first_undecodable(path: Path, encoding: str) -> int | None:
    """The offset of the first byte that does not decode, streaming the file; None if all do."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(_SAMPLE):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return offset + max(exc.start, 0)
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset
    return None
