"""The SQLite schema, as numbered migrations; ``PRAGMA user_version`` says which have run.

Each migration runs in its own transaction with the version bump, so a crash mid-way leaves
the previous version intact. Never edit a migration that has shipped: add the next one.
Times are integers, microseconds since the epoch (UTC), so that they sort and compare exactly.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: messages, files, conversations, statuses, the status queue and the outbox
    """
    CREATE TABLE message (
        id INTEGER PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('OUTGOING', 'INCOMING')),
        message_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        process TEXT NOT NULL,
        message_type TEXT NOT NULL,
        sender_identifier TEXT,
        receiver_identifier TEXT,
        service TEXT NOT NULL,
        sbd TEXT NOT NULL,
        created INTEGER NOT NULL,
        last_updated INTEGER NOT NULL,
        expiry INTEGER NOT NULL,
        lock_until INTEGER,
        queued INTEGER NOT NULL DEFAULT 0,
        asic_blob TEXT,
        asic_size INTEGER,
        UNIQUE (direction, message_id)
    );
    CREATE INDEX message_by_age ON message (direction, last_updated, id);

    CREATE TABLE message_file (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        dokumentnummer INTEGER NOT NULL,
        blob TEXT NOT NULL,
        filename TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        title TEXT,
        primary_document INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        refs TEXT NOT NULL DEFAULT '[]',
        UNIQUE (message, filename)
    );
    CREATE UNIQUE INDEX message_file_one_primary ON message_file (message)
        WHERE primary_document = 1;

    CREATE TABLE conversation (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('OUTGOING', 'INCOMING')),
        sender TEXT,
        sender_identifier TEXT,
        receiver TEXT,
        receiver_identifier TEXT,
        process TEXT NOT NULL,
        document_identifier TEXT NOT NULL,
        message_reference TEXT,
        message_title TEXT,
        service_code TEXT,
        service_edition_code TEXT,
        service TEXT NOT NULL,
        external_reference TEXT,
        last_update INTEGER NOT NULL,
        finished INTEGER NOT NULL DEFAULT 0,
        pollable INTEGER NOT NULL DEFAULT 0,
        expiry INTEGER NOT NULL,
        UNIQUE (direction, message_id)
    );
    CREATE INDEX conversation_by_message ON conversation (message_id);
    CREATE INDEX conversation_by_conversation ON conversation (conversation_id);
    CREATE INDEX conversation_by_update ON conversation (last_update);

    CREATE TABLE message_status (
        id INTEGER PRIMARY KEY,
        conversation INTEGER NOT NULL REFERENCES conversation (id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        description TEXT,
        raw_receipt TEXT,
        last_update INTEGER NOT NULL,
        UNIQUE (conversation, status)
    );
    CREATE INDEX message_status_by_update ON message_status (last_update);

    CREATE TABLE status_queue (
        status INTEGER PRIMARY KEY REFERENCES message_status (id) ON DELETE CASCADE
    );

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL UNIQUE REFERENCES message (id) ON DELETE CASCADE,
        service TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until INTEGER,
        last_error TEXT,
        created INTEGER NOT NULL
    );
    CREATE INDEX outbox_by_due ON outbox (due_at, id);
    """,
    # 2: status-polling schedule, lifetime sweeps, webhook subscriptions and their deliveries
    """
    ALTER TABLE conversation ADD COLUMN next_poll INTEGER;
    CREATE INDEX conversation_poll_due ON conversation (service, next_poll) WHERE pollable = 1;
    CREATE INDEX conversation_unfinished ON conversation (expiry) WHERE finished = 0;

    CREATE TABLE webhook_subscription (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        push_endpoint TEXT NOT NULL,
        resource TEXT NOT NULL,
        event TEXT NOT NULL,
        filter TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        UNIQUE (name, push_endpoint)
    );

    CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY,
        subscription INTEGER NOT NULL REFERENCES webhook_subscription (id) ON DELETE CASCADE,
        status INTEGER NOT NULL REFERENCES message_status (id) ON DELETE CASCADE,
        due_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until INTEGER
    );
    CREATE INDEX webhook_outbox_by_due ON webhook_outbox (due_at, id);
    """,
    # 3: status replies a channel owes the sender (DPO's MOTTATT and LEVERT), kept until sent
    """
    CREATE TABLE reply_outbox (
        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        sbd TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until INTEGER,
        last_error TEXT,
        UNIQUE (service, message_id, status)
    );
    CREATE INDEX reply_outbox_by_due ON reply_outbox (due_at, id);
    """,
    # 4: a conversation is found by its message id through UNIQUE (direction, message_id),
    # each query naming both directions; a second index on message_id cost every new
    # conversation another page written at random
    """
    DROP INDEX conversation_by_message;
    """,
    # 5: what each subscription lets through, so that registering a status queues a webhook
    # delivery only where it will be pushed (a subscription from before, not prefiltered, is
    # queued every status as it was)
    """
    ALTER TABLE webhook_subscription ADD COLUMN prefiltered INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE webhook_subscription ADD COLUMN wants_status TEXT;
    ALTER TABLE webhook_subscription ADD COLUMN wants_service TEXT;
    ALTER TABLE webhook_subscription ADD COLUMN wants_direction TEXT;
    """,
)
