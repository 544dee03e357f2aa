"""What an import reports as wrong: one row (`LineError`), or the whole file (`CsvFormatError`).

Apart from the import's flow (`crm.files.csv_import`, which offers both) because every step of it
raises or reports them: telling the encoding, reading rows, matching them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LineError:
    """Something wrong with one row; `line` is the physical line in the file, the header is 1."""

    line: int
    reason: str


class CsvFormatError(Exception):
    """The file as a whole cannot be imported (no header, no usable column, unknown encoding)."""
