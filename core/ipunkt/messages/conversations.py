"""Reading and deleting conversations (one per message and direction)."""

from __future__ import annotations

from ipunkt.messages import errors
from ipunkt.messages.parties import part_or_primary, primary
from ipunkt.store.base import (
    ConversationFilter,
    ConversationRecord,
    MessageStore,
    Page,
    PageRequest,
)


class Conversations:
    def __init__(self, store: MessageStore) -> None:
        self.store = store

    async def find(self, where: ConversationFilter, page: PageRequest,
                   *, queued_only: bool = False) -> Page[ConversationRecord]:
        where = ConversationFilter(
            **{**where.__dict__,
               "receiver_identifier": primary(where.receiver_identifier),
               "sender_identifier": part_or_primary(where.sender_identifier),
               "service": where.service.upper() if where.service else None,
               "pollable": True if queued_only else where.pollable},
        )
        return await self.store.find_conversations(where, page)

    async def by_id(self, conv_id: int) -> ConversationRecord:
        found = await self.store.conversation(conv_id)
        if found is None:
            raise errors.ConversationNotFound(conv_id)
        return found

    async def by_message_id(self, message_id: str) -> ConversationRecord:
        """The outgoing conversation of the message, else its incoming one."""
        found = await self.store.conversation_by_message_id(message_id)
        if found is None:
            raise errors.ConversationNotFound(message_id, "messageId")
        return found

    async def delete(self, conv_id: int | None = None, message_id: str | None = None) -> None:
        await self.store.delete_conversation(conv_id, message_id)
