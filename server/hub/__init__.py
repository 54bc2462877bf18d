"""Decide, persist, publish: the hub owns the open conversations, the queues and who is
connected, and is the only place that changes them (:mod:`server.hub.hub`). What the waiting
hear about their queue is sent by :mod:`server.hub.queues`; the grace period and the close of
abandoned chats are decided in :mod:`server.hub.grace`."""
