"""The professional console's HTTP side: accounts, passwords and cookies
(:mod:`~server.console.auth`), sign-in and the console's endpoints (:mod:`~server.console.web`),
record entries (text and HL7 FHIR), and canned responses."""
