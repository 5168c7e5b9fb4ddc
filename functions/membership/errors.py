"""Domain errors: a stable machine `code` and a human message.

Storage translates `ClientError` into these; handlers translate these into HTTP
responses in one place (`membership.handlers.http`). Nothing else maps errors.
"""


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str | None = None, **details: object) -> None:
        super().__init__(message or self.code.replace("_", " "))
        self.message = message or self.code.replace("_", " ")
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class MemberNotFound(NotFound):
    code = "member_not_found"


class Conflict(DomainError):
    code = "conflict"


class PhoneTaken(Conflict):
    code = "phone_taken"


class InvalidRequest(DomainError):
    code = "invalid_request"


class InvalidPhone(InvalidRequest):
    code = "invalid_phone"


class Unauthenticated(DomainError):
    """401: the caller could not be authenticated (e.g. a provider's notification signature)."""

    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class Unavailable(DomainError):
    """The store stayed contended or throttled past the retry budget."""

    code = "temporarily_unavailable"


class PreconditionRequired(DomainError):
    """A write that must name the version it read (If-Match) did not."""

    code = "precondition_required"


class PreconditionFailed(DomainError):
    """The version a write named is no longer the current one."""

    code = "precondition_failed"
