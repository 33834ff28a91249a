"""Domain errors. The API maps them to problem+json: invalid → 422, illegal → 409."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """The request breaks a rule about its own content (names the field)."""


class IllegalTransition(DomainError):
    """The aggregate's current state does not allow the action."""
