"""Durable storage of messages, payloads, conversations, statuses and the delivery outbox.

:class:`~ipunkt.store.base.MessageStore` is the interface; SQLite implements it today. No HTTP
in here: the API and the delivery workers both build on it.
"""
