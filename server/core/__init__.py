"""The domain, free of I/O: the model (teams, professionals, conversations), routing (queues,
the choice of professional, wait estimates), identifiers and tokens, the clock, the errors the
hub raises, and reading the shipped configuration files."""
