"""The ``[messages]`` config section: how the Next Move API treats messages."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MessagesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    lock_timeout_minutes: float = Field(
        5, gt=0, description="How long a peek locks an incoming message for its client."
    )
    default_ttl_hours: float = Field(
        24, gt=0, description="Lifetime of a message whose channel declares none."
    )
    status_queue_includes: list[str] = Field(
        default_factory=list,
        description='Services whose statuses feed GET /api/statuses/peek, e.g. ["DPO", "DPV"].',
    )
