"""The websocket side: the endpoints and their handshake checks (:mod:`server.ws.endpoint`)
and one connection's reading, dispatch and delivery (:mod:`server.ws.connection`)."""
