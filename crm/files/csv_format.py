"""What a clients CSV file looks like, both ways: its columns, and its cells that hold several values
or that a spreadsheet would run as a formula. The export writes it (`crm.files.csv_export`), the
import reads it (`crm.files.rows`), so an export imports back to the same data.

Several phones, e-mails or tags share a cell, joined with `SEPARATOR` (the import splits on `;`
and `,`: `crm.domain.text.split_list`).

A spreadsheet program reads a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return
as a formula, so a client who calls themselves `=HYPERLINK(...)` in a web form would run code in
the office's spreadsheet. Such cells are written with a leading `'` (`escape_cell`), which the
spreadsheet shows as text and the import takes off again (`unescape_cell`). Phone numbers are left
as they are: digits, spaces, dashes and brackets after the `+` make no formula that can do harm.
"""

from __future__ import annotations

import re

# The known columns, in the order the export writes them; any other column is a custom field.
COLUMNS = ("name", "phone", "email", "company", "tags", "notes", "owner")
# Other titles the import reads as a known column.
ALIASES = {"phones": "phone", "emails": "email", "e-mail": "email", "e-mails": "email", "tag": "tags"}
SEPARATOR = "; "
# The delimiters the import tells apart (spreadsheets in some locales save "CSV" with `;` or tabs).
DELIMITERS = ",;\t"
# What a spreadsheet reads as the start of a formula (OWASP's "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPE = "'"
_RISKY_FIRST = frozenset((*FORMULA_START, _ESCAPE))
# A cell of phone numbers: one, or several as the export joins them. (Several are still a cell a
# spreadsheet cannot run anything from: no letters, no `|`.)
_PHONES = re.compile(r"\+[\d ()-]+(?:; \+[\d ()-]+)*")


def escape_cell(cell: str) -> str:
    """`cell` as a spreadsheet must show it, as text, never as a formula: a leading `'` where it
    begins like one. A cell that begins with `'` before such a character gets one more `'`, so
    that `unescape_cell` gives back any cell exactly."""
    if not cell or cell[0] not in _RISKY_FIRST:
        return cell
    if cell[0] == _ESCAPE:
        return _ESCAPE + cell if cell.lstrip(_ESCAPE).startswith(FORMULA_START) else cell
    if cell[0] == "+" and _PHONES.fullmatch(cell):
        return cell
    return _ESCAPE + cell


def unescape_cell(cell: str) -> str:
    """A cell as it was before `escape_cell`: the one `'` it added goes. A `'` before anything
    else (`'Tis`) is the cell's own and stays."""
    if cell.startswith(_ESCAPE) and cell.lstrip(_ESCAPE).startswith(FORMULA_START):
        return cell[1:]
    return cell
