"""Domain errors: the kit's (servicekit.domain_errors), which it answers as problem+json:
invalid input 422 naming the field, an illegal transition or a conflict of interest 409;
and ipshare's own."""

from servicekit.domain_errors import (
    ConflictOfInterest,
    DomainError,
    IllegalTransition,
    InvalidInput,
)

__all__ = ["ConflictOfInterest", "DomainError", "DuplicateReference", "IllegalTransition",
           "InvalidInput"]


class DuplicateReference(DomainError):
    """The reference already stands on the agreement (one standing posting each)."""

    status = 409
    kind = "duplicate-reference"
