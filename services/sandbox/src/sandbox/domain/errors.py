"""Domain errors: the kit's (servicekit.domain_errors), which it answers as problem+json:
invalid input 422 naming the field, an illegal transition or a conflict of interest 409."""

from servicekit.domain_errors import (
    ConflictOfInterest,
    DomainError,
    IllegalTransition,
    InvalidInput,
)

__all__ = ["ConflictOfInterest", "DomainError", "IllegalTransition", "InvalidInput"]
