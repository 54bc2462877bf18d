"""Chat messages: queued for the writer, their ``seq`` and their idempotency.

A chat message is the one write that does not go through ``_execute``: it is queued as it
is, and the writer (:mod:`server.storage.sqlite.writer`) gives it its ``seq`` when it forms a
batch. What happens before (a retry answered from the conversation's log, the log loaded
from its rows) and the reads of stored messages are here.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterable
from typing import Any

from protocol.messages import ChatMessage
from server.storage.base import Appended, StorageClosed
from server.storage.sqlite.writer import WriterStore, _copy_outcome, _Log, _MessageOp


class MessagesStore(WriterStore):
    """Messages with ``seq`` and idempotency, by conversation."""

    _loading: dict[str, asyncio.Future[_Log]]
    _loop: asyncio.AbstractEventLoop | None  # the loop the storage was opened in

    def submit_message(
        self,
        conversation_id: str,
        sender_role: str,
        sender_id: str,
        sender_name: str,
        msg_id: str,
        text: str,
        extra: dict[str, Any] | None = None,
    ) -> tuple[asyncio.Future[ChatMessage], bool]:
        """Queue a chat message for the next commit, without waiting.

        Returns a future of the stored message (with its seq, once committed) and whether this
        is a retry of a message already sent by the same sender with the same ``msg_id``; then
        nothing new is stored and the future gives the original seq. The conversation's log
        must be loaded (:meth:`load_logs`, or created by :meth:`save_changes`).
        """
        if self._closing:
            raise StorageClosed("storage is closing")
        seq_log = self._logs[conversation_id]
        key = (sender_role, sender_id, msg_id)
        known = seq_log.ids.get(key)
        loop = self._loop
        assert loop is not None, "storage not open"
        if known is not None:
            future: asyncio.Future[ChatMessage] = loop.create_future()
            if isinstance(known, tuple):
                future.set_result(
                    ChatMessage(
                        conversation_id,
                        known[0],
                        msg_id,
                        sender_role,
                        sender_name,
                        text,
                        known[1],
                        sender_id,
                    )
                )
            else:
                known.add_done_callback(functools.partial(_copy_outcome, future))
            return future, True
        future = loop.create_future()
        seq_log.ids[key] = future
        self._pending.append(
            _MessageOp(conversation_id, key, sender_name, text, future, extra=extra)
        )
        self._wake()
        return future, False

    async def append_message(
        self,
        conversation_id: str,
        sender_role: str,
        sender_id: str,
        sender_name: str,
        msg_id: str,
        text: str,
    ) -> Appended:
        """Store a chat message and wait until it is durably committed."""
        if conversation_id not in self._logs:
            await self._load_log(conversation_id)
        future, duplicate = self.submit_message(
            conversation_id, sender_role, sender_id, sender_name, msg_id, text
        )
        return Appended(await asyncio.shield(future), duplicate)

    async def load_logs(self, conversation_ids: Iterable[str]) -> None:
        """Load what the writer needs to know about these conversations' messages."""
        for cid in conversation_ids:
            if cid not in self._logs:
                await self._load_log(cid)

    async def find_message(
        self, conversation_id: str, sender_role: str, sender_id: str, msg_id: str
    ) -> tuple[int, int] | None:
        """``(seq, sent_at)`` of a sender's stored message with this ``msg_id``, or None."""
        seq_log = self._logs.get(conversation_id)
        if seq_log is not None:
            known = seq_log.ids.get((sender_role, sender_id, msg_id))
            if isinstance(known, tuple):
                return known
            if known is not None:
                try:
                    stored = await asyncio.shield(known)
                except Exception:
                    return None
                return stored.seq, stored.sent_at
        rows = await self._read(
            "SELECT seq, sent_at FROM messages WHERE conversation_id = ? AND sender_role = ? "
            "AND sender_id = ? AND msg_id = ?",
            (conversation_id, sender_role, sender_id, msg_id),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def _load_log(self, conversation_id: str) -> _Log:
        loading = self._loading.get(conversation_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[_Log] = asyncio.get_running_loop().create_future()
        self._loading[conversation_id] = future
        try:
            rows = await self._read(
                "SELECT sender_role, sender_id, msg_id, seq, sent_at FROM messages "
                "WHERE conversation_id = ?",
                (conversation_id,),
            )
            # A write may have created the log while we read; keep the newer one.
            seq_log = self._logs.get(conversation_id)
            if seq_log is None:
                ids: dict[tuple[str, str, str], tuple[int, int] | asyncio.Future[ChatMessage]]
                ids = {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}
                next_seq = max((r[3] for r in rows), default=0) + 1
                seq_log = self._logs[conversation_id] = _Log(next_seq, ids)
            future.set_result(seq_log)
            return seq_log
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[conversation_id]

    def forget_log(self, conversation_id: str) -> None:
        """Drop the idempotency memory of a conversation that takes no more messages."""
        seq_log = self._logs.get(conversation_id)
        if seq_log is not None and not any(
            isinstance(v, asyncio.Future) for v in seq_log.ids.values()
        ):
            del self._logs[conversation_id]

    async def history(self, conversation_id: str, after_seq: int, limit: int) -> list[ChatMessage]:
        rows = await self._read(
            "SELECT seq, msg_id, sender_role, sender_name, text, sent_at, sender_id, extra "
            "FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (conversation_id, after_seq, limit),
        )
        result = []
        for seq, msg_id, role, name, text, sent_at, sender_id, extra_json in rows:
            extra = json.loads(extra_json) if extra_json else {}  # a bot's buttons and links
            result.append(
                ChatMessage(
                    conversation_id,
                    seq,
                    msg_id,
                    role,
                    name,
                    text,
                    sent_at,
                    sender_id,
                    extra.get("quick_replies"),
                    extra.get("actions"),
                )
            )
        return result

    async def count_messages(self, conversation_id: str | None = None) -> int:
        if conversation_id is None:
            rows = await self._read("SELECT COUNT(*) FROM messages")
        else:
            rows = await self._read(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (conversation_id,)
            )
        return int(rows[0][0])
