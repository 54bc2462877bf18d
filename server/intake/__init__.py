"""From "I want to chat" to a place in the right queue: the questionnaires and triage, the
pure decisions of the intake (:mod:`~server.intake.flow`), service hours and areas, strong
identification (OpenID Connect, :mod:`~server.intake.oidc`; personal identity codes), the
reception that runs each client's intake, and its HTTP side (:mod:`~server.intake.web`)."""
