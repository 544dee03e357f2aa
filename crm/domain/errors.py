"""Errors the domain raises: values a user can act on, mapped to HTTP or bot answers at the edge."""

from __future__ import annotations


class CrmError(Exception):
    """Base of every expected failure; `code` is the machine-readable `error` field."""

    code = "crm_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def sentence(self) -> str:
        """What to tell a person (in a chat, say), without field names."""
        return self.detail


class NotFound(CrmError):
    code = "not_found"


class Conflict(CrmError):
    code = "conflict"


class Forbidden(CrmError):
    """The person asking may not do this (another agent's call, say)."""

    code = "forbidden"


class InvalidInput(CrmError):
    """One or more fields are wrong; `fields` maps each field to what is wrong with it."""

    code = "invalid"

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields

    def sentence(self) -> str:
        return "; ".join(self.fields.values())


class InvalidPhone(ValueError):
    """A phone number that cannot be read: `InvalidPhone("12: too short for US")`."""
