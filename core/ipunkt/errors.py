"""The API's errors, rendered in the integrasjonspunkt's error body.

The body is Spring's: ``{timestamp, status, error, exception, message, path[, description]
[, errors]}``, where ``exception`` is the Java class name that the original reports, so that
clients that switch on it keep working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")
JAVA_PACKAGE = "no.difi.meldingsutveksling.exceptions"


class ApiError(Exception):
    """An error the API answers with; subclasses name the original's exception class."""

    status: ClassVar[int] = 400
    exception: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        description: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.description = description
        self.errors = errors

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "exception" not in cls.__dict__:
            cls.exception = f"{JAVA_PACKAGE}.{cls.__name__}Exception"

    def body(self, path: str) -> dict[str, Any]:
        return error_body(
            self.status, path, self.message, self.exception, self.description, self.errors
        )


def error_body(
    status: int,
    path: str,
    message: str | None = None,
    exception: str | None = None,
    description: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The error body, with the fields the original omits when it has nothing for them."""
    body: dict[str, Any] = {
        "timestamp": datetime.now(OSLO).isoformat(timespec="seconds"),
        "status": status,
        "error": HTTPStatus(status).phrase,
    }
    if exception:
        body["exception"] = exception
    if message is not None:
        body["message"] = message
    body["path"] = path
    if description:
        body["description"] = description
    if errors:
        body["errors"] = list(errors)
    return body


class ServiceNotEnabled(ApiError):
    """The receiver's channel is not enabled here, or its plugin has no transport."""


class NoContent(ApiError):
    status = 204


class IdentifierNotFound(ApiError):
    """No lookup source knows the receiver (the capabilities endpoint's 404)."""

    status = 404


class ReceiverDoesNotAcceptProcess(ApiError):
    """The receiver has no record of the message's process that carries its document type."""


class IdentifierNotValid(ApiError):
    """Not an organisation number or fødselsnummer; the original rejects it in validation."""

    exception = "jakarta.validation.ConstraintViolationException"


class ServiceRegistryUnavailable(ApiError):
    """No lookup source could answer now (network, 5xx, bad signature); worth retrying."""

    status = 503
    exception = "no.difi.meldingsutveksling.serviceregistry.ServiceRegistryLookupException"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
