"""The advice bot: its knowledge base and retrieval (:mod:`~server.bot.knowledge`) and the
participant that answers in the hub like a professional (:mod:`~server.bot.responder`)."""
