"""What can be wrong with a key, a certificate or a package, each with a message for people.

Every error here is a :class:`PackageError`, so a caller that only needs "sound or not" catches
one class; the subclasses let a channel decide what to tell the sender (a package signed by an
untrusted certificate is a different receipt from a truncated upload).
"""

from __future__ import annotations


class PackageError(Exception):
    """A key, certificate, signature or package is not sound; ``str()`` says what is wrong."""


class KeyProblem(PackageError):
    """Our own key or certificate cannot be loaded or must not be used (expired, wrong usage)."""


class CertificateProblem(PackageError):
    """Someone else's certificate is not valid or does not chain to a trust anchor."""


class UnsafeArchive(PackageError):
    """The ZIP is malformed or hostile: a zip bomb, a path-traversal name, a duplicate entry."""


class IntegrityError(PackageError):
    """A file's digest does not match, or a file is missing from or extra to what was signed."""


class SignatureInvalid(PackageError):
    """A signature is missing, malformed or does not verify."""


class DecryptionFailed(PackageError):
    """A CMS envelope is malformed, is not addressed to our key, or does not decrypt."""
