"""Fan-out between connections: the contract (:mod:`server.bus.base`) and the bus of one
process (:mod:`server.bus.local`)."""
