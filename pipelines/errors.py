"""One exception root for the whole pipeline.

::

    ArgosError
    ├── PoisonEventError          the event itself is bad: dead-letter it with the reason, go on
    │   ├── InvalidEventError     not UTF-8, not JSON, wrong fields or ranges
    │   └── SchemaVersionUnsupported
    ├── RejectedError             refused by policy (HTTP status; dead-lettered at ingest)
    │   ├── UnauthenticatedError  401: no token, or not a valid one
    │   ├── ForbiddenError        403: a valid token, not allowed for that namespace/agent
    │   └── RateLimitedError      429: over a per-agent or per-namespace limit
    ├── RetryableError            the world is briefly broken: back off and try again
    │   └── StoreUnavailableError Milvus did not answer
    ├── ConfigurationError        the operator must change something: fail fast with what to do
    │   └── EmbedderUnavailableError
    └── DecryptionError           ciphertext that no known key opens (wrong key, tampered)
"""

from __future__ import annotations


class ArgosError(Exception):
    """Root of every error this project raises on purpose."""


class PoisonEventError(ArgosError):
    """An event that can never be processed; it goes to ``argos.deadletter`` with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidEventError(PoisonEventError):
    """Bad bytes, bad JSON or bad fields."""


class SchemaVersionUnsupported(PoisonEventError):
    """The event names a schema version this build does not read."""


class RejectedError(ArgosError):
    """A request or event refused by policy; ``reason`` says why, ``http_status`` how."""

    http_status = 400

    def __init__(self, reason: str, actor: str = "anonymous") -> None:
        super().__init__(reason)
        self.reason = reason
        self.actor = actor  # who was refused, for the audit (a token's subject once known)


class UnauthenticatedError(RejectedError):
    """No token, or a token that is not valid."""

    http_status = 401


class ForbiddenError(RejectedError):
    """A valid token that is not allowed for this namespace or agent."""

    http_status = 403


class RateLimitedError(RejectedError):
    """Over a per-agent or per-namespace rate limit."""

    http_status = 429


class RetryableError(ArgosError):
    """A transient failure: the caller backs off and retries."""


class StoreUnavailableError(RetryableError):
    """The vector store did not answer."""


class ConfigurationError(ArgosError):
    """A setting or an install step is wrong; the message says what to do."""


class EmbedderUnavailableError(ConfigurationError):
    """The chosen embedding backend is not installed or its model files are missing."""


class DecryptionError(ArgosError):
    """Ciphertext that no configured key opens: an unknown key id, a wrong key, or tampering."""
