"""What ``/manage/prometheus`` shows: queue depth per channel, sends, retries, failures,
latencies, incoming messages, statuses and webhook pushes.

Each gateway has its own registry (no process-wide globals), so that two gateways in one
process (the sandbox, tests) keep their figures apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _QueueDepth(Collector):
    """Reads the outbox's depth when scraped; the scrape handler refreshes it first."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ipunkt_outbox_depth", "Outgoing messages queued for delivery", labels=["channel"]
        )
        for channel, depth in sorted(self.depth.items()):
            family.add_metric([channel], depth)
        yield family


class Metrics:
    def __init__(self, depth: Callable[[], Awaitable[dict[str, int]]]) -> None:
        self.registry = CollectorRegistry()
        self._depth_source = depth
        self._depth = _QueueDepth()
        self.registry.register(self._depth)
        self.sends = Counter(
            "ipunkt_sends", "Send attempts by outcome (sent, retry, failed, expired)",
            ["channel", "outcome"], registry=self.registry,
        )
        self.send_seconds = Histogram(
            "ipunkt_send_seconds", "Time a channel's send took", ["channel"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
            registry=self.registry,
        )
        self.incoming = Counter(
            "ipunkt_incoming", "Incoming messages by outcome (stored, duplicate, receipt)",
            ["channel", "outcome"], registry=self.registry,
        )
        self.statuses = Counter(
            "ipunkt_statuses", "Statuses learned from channels", ["channel", "status"],
            registry=self.registry,
        )
        self.replies = Counter(
            "ipunkt_status_replies", "Status replies to senders by outcome (sent, retry, refused)",
            ["channel", "outcome"], registry=self.registry,
        )
        self.poll_errors = Counter(
            "ipunkt_poll_errors", "Failed polls of a channel (incoming or status)",
            ["channel", "poll"], registry=self.registry,
        )
        self.webhooks = Counter(
            "ipunkt_webhook_pushes", "Webhook pushes by outcome (delivered, failed, dropped)",
            ["outcome"], registry=self.registry,
        )

    async def exposition(self) -> bytes:
        self._depth.depth = await self._depth_source()
        return generate_latest(self.registry)
