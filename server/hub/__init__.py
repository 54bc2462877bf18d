"""Decide, persist, publish: the hub owns the open conversations, the queues and who is
connected, and is the only place that changes them (:mod:`server.hub.hub`)."""
