"""The Next Move API's refusals, each named and worded as the integrasjonspunkt's exception.

Messages follow the original's ``messages.properties`` so that clients that show or parse them
keep working; ``exception`` is the original's Java class name.
"""

from __future__ import annotations

from collections.abc import Sequence

from ipunkt.errors import ApiError
from ipunkt.sbd.violations import Violation, summary


class ConstraintViolation(ApiError):
    """One or more fields break a rule; ``errors[]`` names each field and rejected value."""

    exception = "javax.validation.ConstraintViolationException"

    def __init__(self, violations: Sequence[Violation]) -> None:
        super().__init__(summary(violations), errors=[v.as_json() for v in violations])
        self.violations = tuple(violations)


class MessageNotReadable(ApiError):
    """The body is not the JSON it must be."""

    exception = "org.springframework.http.converter.HttpMessageNotReadableException"


class BodyStalled(ApiError):
    """The client stopped sending its body half-way (Tomcat's read timeout in the original)."""

    status = 408
    exception = "java.net.SocketTimeoutException"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request body stalled: no bytes came for {seconds:g} seconds")


class UnsupportedMediaType(ApiError):
    """A body sent as something other than what the operation reads (JSON, or multipart)."""

    status = 415
    exception = "org.springframework.web.HttpMediaTypeNotSupportedException"

    def __init__(self, content_type: str) -> None:
        super().__init__(f"Content-Type '{content_type}' is not supported")


class BadParameter(ApiError):
    """A query parameter that cannot be understood."""

    exception = "org.springframework.web.method.annotation.MethodArgumentTypeMismatchException"


class MessageNotFound(ApiError):
    status = 404

    def __init__(self, message_id: str, name: str = "messageId") -> None:
        super().__init__(f"Message with {name} = {message_id} was not found")


class ConversationNotFound(ApiError):
    status = 404

    def __init__(self, value: object, name: str = "id") -> None:
        super().__init__(f"Conversation with {name} = {value} was not found")


class MessageStatusNotFound(ApiError):
    status = 404

    def __init__(self, value: object, name: str = "id") -> None:
        super().__init__(f"Message status not found for {name} = {value}")


class MessageAlreadyExists(ApiError):
    def __init__(self, message_id: str) -> None:
        super().__init__(f"Message with messageId = {message_id} already exists")


class MessageAlreadySent(ApiError):
    def __init__(self, message_id: str) -> None:
        super().__init__(
            f"Message with messageId = {message_id} has been sent; its files cannot change"
        )


class MessageNotLocked(ApiError):
    def __init__(self, message_id: str) -> None:
        super().__init__(f"Message with messageId = {message_id} was not locked")


class UnknownMessageType(ApiError):
    def __init__(self, value: str, known: Sequence[str]) -> None:
        super().__init__(
            f"Unknown NextMove document type {value}. Expected one of the following values: "
            + ", ".join(known)
        )


class MessageTypeDoesNotFitDocumentType(ApiError):
    def __init__(self, message_type: str, document_type: str) -> None:
        super().__init__(
            f"Message type {message_type} does not match the document type {document_type}"
        )


class TimeToLive(ApiError):
    def __init__(self, expected: str) -> None:
        super().__init__(
            f"ExpectedResponseDateTime {expected} has been exceeded. Please resend the message"
        )


class MissingFile(ApiError):
    def __init__(self) -> None:
        super().__init__("There must always be at least one attachment")


class MissingArkivmelding(ApiError):
    def __init__(self) -> None:
        super().__init__("DPO message type requires arkivmelding.xml attachment")


class MissingArkivmeldingFile(ApiError):
    def __init__(self, files: Sequence[str]) -> None:
        super().__init__(
            "File(s) defined in arkivmelding, but not found in message: " + ",".join(files)
        )


class UnmarshalArkivmelding(ApiError):
    def __init__(self, reason: str) -> None:
        super().__init__("Unable to unmarshal arkivmelding", description=reason)


class FileNotFound(ApiError):
    status = 404

    def __init__(self, files: Sequence[str]) -> None:
        super().__init__(f"File(s) named {', '.join(files)} was not found")


class MissingPrimaryDocument(ApiError):
    def __init__(self) -> None:
        super().__init__(
            "Missing a primary document. Please specify the hoveddokument property in the "
            "business message and verify that is equal to one of the filenames."
        )


class MultiplePrimaryDocumentsNotAllowed(ApiError):
    def __init__(self) -> None:
        super().__init__("Messages can only contain one primary document")


class DuplicateFilename(ApiError):
    def __init__(self, filenames: str) -> None:
        super().__init__(f"Filename already exists in message: {filenames}.")


class InvalidFilename(ApiError):
    """A file name that the ASiC-E, or the receiver's file system, cannot take safely."""

    def __init__(self, filename: str, problem: str) -> None:
        shown = filename if len(filename) <= 100 else filename[:100] + "..."
        super().__init__(f"The file name '{shown}' cannot be used: {problem}")


class MaxFileSizeExceeded(ApiError):
    def __init__(self, total: int, service: str, limit: int) -> None:
        if total < 1024 * 1024:
            size, cap = f"{total}b", f"{limit}b"
        else:
            size, cap = f"{total // (1024 * 1024)}MB", f"{limit // (1024 * 1024)}MB"
        super().__init__(
            f"The combined file size for all attachments ({size}) exceeds the maximum allowed "
            f"upload size for the target service ({service}, {cap})"
        )


class MultipartFileToLarge(ApiError):
    def __init__(self, filename: str, limit: int) -> None:
        super().__init__(
            f"The attachment named '{filename}' is too large. The maximum size for multipart "
            f"requests is {limit} bytes. Please use the non-multipart API to avoid such problems."
        )


class MissingFileTitle(ApiError):
    def __init__(self, service: str) -> None:
        super().__init__(f"Title is required for the following capabilities: {service}")


class MissingHttpHeader(ApiError):
    def __init__(self, name: str, detail: str | None = None) -> None:
        super().__init__(f"Expected a HTTP header named '{name}'", description=detail)


class StoreKeyMissing(ApiError):
    """The payload is sealed with a store key this integration point does not have."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(f"The message's payload cannot be read: it is {detail}")


class MessagePersist(ApiError):
    status = 500

    def __init__(self, filename: str) -> None:
        super().__init__(f"Could not persist file named '{filename}'")
