"""A conversation's intake, identity and handover documents keep their stored form.

Rows written before these documents were typed must load the same, and what the console shows
from them must not change: a nurse sees the same banner and summary after an upgrade.
"""

from __future__ import annotations

import json

from server.core.documents import HandoverDocument, IdentityDocument
from server.storage.documents import (
    handover_from_json,
    handover_to_json,
    identity_from_json,
    identity_to_json,
    intake_from_json,
    intake_to_json,
)

# As the reception stored an identified client's intake before the documents were typed.
STORED_IDENTITY = json.dumps(
    {
        "record": {
            "name": "Aino Virtanen",
            "masked_code": "010190-***A",
            "protected_code": "v1.secret",
            "birth_date": "1990-01-01",
            "municipality": "091",
            "postal_code": "00530",
            "fingerprint": "fp1",
        },
        "view": {
            "name": "Aino Virtanen",
            "masked_code": "010190-***A",
            "age": 36,
            "municipality": "091",
            "postal_code": "00530",
            "verified": True,
        },
    },
    ensure_ascii=False,
)
STORED_INTAKE = json.dumps(
    {
        "topic": "respiratory",
        "answers": {"fever": "yes", "days": 3},
        "summary": {
            "level": "urgent",
            "level_label": "Kiireellinen",
            "reasons": ["Kuume yli 39 °C"],
            "topic": "respiratory",
            "title": "Hengitystieinfektio",
            "complete": True,
            "lines": [{"label": "Oireet", "answer": "Yskä, kuume"}],
        },
    },
    ensure_ascii=False,
)
STORED_HANDOVER = json.dumps(
    {"kind": "escalation", "from_id": "p1", "from_name": "Hoitaja Maija", "note": None, "at": 5},
    ensure_ascii=False,
)


def test_stored_documents_load_typed_and_are_written_back_unchanged() -> None:
    identity = identity_from_json(STORED_IDENTITY)
    intake = intake_from_json(STORED_INTAKE)
    handover = handover_from_json(STORED_HANDOVER)
    assert identity == IdentityDocument(
        "Aino Virtanen", "010190-***A", "v1.secret", "1990-01-01", "091", "00530", "fp1", 36
    )
    assert intake is not None and intake.summary.title == "Hengitystieinfektio"
    assert intake.summary.lines == (("Oireet", "Yskä, kuume"),)
    assert handover == HandoverDocument("escalation", "p1", "Hoitaja Maija", None, 5)
    assert identity_to_json(identity) == STORED_IDENTITY
    assert intake_to_json(intake) == STORED_INTAKE
    assert handover_to_json(handover) == STORED_HANDOVER


def test_the_console_sees_the_identity_without_the_code() -> None:
    identity = identity_from_json(STORED_IDENTITY)
    assert identity is not None
    view = identity.view()
    assert view == json.loads(STORED_IDENTITY)["view"]
    assert "v1.secret" not in json.dumps(view) and "fp1" not in json.dumps(view)


def test_an_older_row_with_keys_missing_still_loads() -> None:
    identity = identity_from_json(json.dumps({"view": {"name": "Aino", "masked_code": "x"}}))
    assert identity is not None and identity.name == "Aino" and identity.fingerprint is None
    assert identity.age is None and identity.verified
    older = intake_from_json(json.dumps({"summary": {"title": "T"}}))
    assert older is not None and older.topic is None and older.answers == {}
    assert older.summary.title == "T" and older.summary.lines == ()
    assert intake_from_json(None) is None and identity_from_json("") is None
