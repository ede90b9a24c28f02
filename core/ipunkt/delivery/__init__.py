"""The delivery engine: moves messages after ``send``, brings statuses back, takes messages in.

- :mod:`~ipunkt.delivery.outbox`: workers that lease due messages and call the channels;
- :mod:`~ipunkt.delivery.retry`: which failures are retried, and when;
- :mod:`~ipunkt.delivery.status_polling` and :mod:`~ipunkt.delivery.inbound`: the pollers;
- :mod:`~ipunkt.delivery.sweeper`: lifetimes that run out;
- :mod:`~ipunkt.delivery.webhooks`: durable, signed pushes of every status;
- :mod:`~ipunkt.delivery.metrics`: what ``/manage/prometheus`` shows;
- :mod:`~ipunkt.delivery.engine`: all of them started and stopped together.

No HTTP server code in here; the engine talks to the store, the channels and the router.
"""
