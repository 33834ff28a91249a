"""The errors a service's domain raises, and the answer each one gets.

Pure Python, no framework: a ``domain/`` package imports them (or subclasses them) and
stays free of FastAPI. The kit answers every uncaught one as problem+json
(``problems.install``): route code never catches them itself.

- :class:`InvalidInput` (and a bare :class:`DomainError`): 422, naming the field.
- :class:`IllegalTransition`: 409, the aggregate's state does not allow the action.
- :class:`ConflictOfInterest`: 409 with the reason (contract: conflict-of-interest
  refusals are 409).
"""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the request; ``field`` names the input it is about."""

    status = 422
    kind = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """The request breaks a rule about its own content (names the field)."""


class IllegalTransition(DomainError):
    """The aggregate's current state does not allow the action."""

    status = 409
    kind = "illegal-transition"


class ConflictOfInterest(IllegalTransition):
    """The actor may not act on this object: their own organisation, team or work."""

    kind = "conflict-of-interest"
