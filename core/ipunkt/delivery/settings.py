"""The ``[delivery]`` and ``[webhooks]`` config sections."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class DeliverySettings(_Section):
    concurrency: int = Field(10, ge=1, le=1000)
    """Sends in flight at once, per channel (so one slow channel never starves another)."""
    lease_seconds: float = Field(120, gt=0)
    """How long a worker's claim on a message lasts; a crashed worker's claim comes back then.
    A running send renews it."""
    send_timeout_seconds: float = Field(1800, gt=0)
    """A send that takes longer is abandoned and retried."""
    outbox_poll_seconds: float = Field(1.0, gt=0)
    """How often idle workers look for due messages (sends on this gateway wake them at once)."""
    retry_initial_seconds: float = Field(20, gt=0)
    """Delay before the first retry of a transient failure."""
    retry_multiplier: float = Field(3, ge=1)
    """Each further retry waits this many times longer ..."""
    retry_max_seconds: float = Field(3600, gt=0)
    """... but never longer than this."""
    retry_jitter: float = Field(0.1, ge=0, le=1)
    """Delays vary by up to this fraction, so retries after an outage do not all come at once."""
    status_poll_batch: int = Field(2000, ge=1)
    """Conversations whose status one poll fetches at most."""
    status_poll_backoff_days: float = Field(30, gt=0)
    """A conversation idle this long is polled only every status_poll_max_minutes ..."""
    status_poll_max_minutes: float = Field(60, gt=0)
    """... and one idle for less, proportionally more often."""
    sweep_seconds: float = Field(30, gt=0)
    """How often expired conversations are marked LEVETID_UTLOPT."""
    shutdown_grace_seconds: float = Field(20, ge=0)
    """On SIGTERM, sends in flight get this long to finish; then their claims are released."""


class WebhookSettings(_Section):
    secret: SecretStr | None = None
    """Key of the HMAC-SHA256 signature in each push's X-Ipunkt-Signature header.
    Unset: one is generated once into <store.path>/webhook.key."""
    timeout_seconds: float = Field(10, gt=0)
    """Connect and read timeout of each push."""
    retry_initial_seconds: float = Field(5, gt=0)
    """Delay before a failed push is tried again; it grows threefold up to an hour."""
    give_up_hours: float = Field(24, gt=0)
    """A push still failing this long after its status is dropped."""
    failing_after: int = Field(5, ge=1)
    """Failures in a row after which /manage/health shows the subscription as failing."""
