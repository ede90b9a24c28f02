"""What the message services need from routing: receiver in, service and record out.

:class:`ipunkt.lookup.routing.Router` is the implementation; this protocol keeps the message
services testable and independent of how a route is found.
"""

from __future__ import annotations

from typing import Any, Protocol

from ipunkt.plugin import ChannelInfo


class RouteLike(Protocol):
    @property
    def service(self) -> str: ...

    @property
    def record(self) -> Any: ...

    @property
    def channel(self) -> ChannelInfo: ...


class Resolver(Protocol):
    async def route(
        self,
        *,
        receiver: str | None,
        process: str | None,
        document_type: str | None = None,
        message_type: str | None = None,
        security_level: int | None = None,
        conversation_id: str | None = None,
    ) -> RouteLike:
        """The route of one message; raises the API's routing errors when there is none."""
        ...


class ChannelLimits(Protocol):
    """The declared size limit and lifetime of each registered channel."""

    def info(self, service: str) -> ChannelInfo | None: ...
