"""Domain errors: raised by services with a message a person can act on."""


class DomainError(Exception):
    """A business rule was broken. The message says what to do about it."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, details: object = None):
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationError(DomainError):
    code = "validation_error"
    status = 422


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409
