"""The conversation's documents in storage's format: JSON, the same in every store.

The hub and the console hold a conversation's intake, identity and handover as the typed values
of :mod:`server.core.documents`; this module is the one place that turns them into the JSON a
store keeps and back. Loading is forgiving of older rows (a missing key gives None), never of a
row that is not JSON at all.

The identity keeps its two halves apart as it always has: ``record`` (what a patient-record
entry needs, with the identity code only encrypted) and ``view`` (what the console shows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from server.core.documents import HandoverDocument, IdentityDocument, IntakeDocument, IntakeSummary

__all__ = [
    "handover_from_json",
    "handover_to_json",
    "identity_from_json",
    "identity_to_json",
    "intake_from_json",
    "intake_to_json",
]


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False)


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def intake_to_json(doc: IntakeDocument | None) -> str | None:
    if doc is None:
        return None
    return _dumps({"topic": doc.topic, "answers": dict(doc.answers), "summary": doc.view()})


def intake_from_json(text: str | None) -> IntakeDocument | None:
    if not text:
        return None
    raw = _object(json.loads(text))
    return IntakeDocument(
        topic=_text(raw.get("topic")),
        answers=dict(_object(raw.get("answers"))),
        summary=_summary(_object(raw.get("summary"))),
    )


def _summary(raw: Mapping[str, Any]) -> IntakeSummary:
    reasons, lines = _list(raw.get("reasons")), _list(raw.get("lines"))
    return IntakeSummary(
        topic=_text(raw.get("topic")) or "",
        title=_text(raw.get("title")) or "",
        level=_text(raw.get("level")) or "routine",
        level_label=_text(raw.get("level_label")) or "",
        reasons=tuple(r for r in reasons if isinstance(r, str))
        if isinstance(reasons, list)
        else (),
        lines=tuple(
            (_text(line.get("label")) or "", _text(line.get("answer")) or "")
            for line in lines
            if isinstance(line, Mapping)
        ),
        complete=raw.get("complete") is True,
    )


def identity_to_json(doc: IdentityDocument | None) -> str | None:
    if doc is None:
        return None
    record = {
        "name": doc.name,
        "masked_code": doc.masked_code,
        "protected_code": doc.protected_code,
        "birth_date": doc.birth_date,
        "municipality": doc.municipality,
        "postal_code": doc.postal_code,
        "fingerprint": doc.fingerprint,
    }
    return _dumps({"record": record, "view": doc.view()})


def identity_from_json(text: str | None) -> IdentityDocument | None:
    if not text:
        return None
    raw = _object(json.loads(text))
    record, view = _object(raw.get("record")), _object(raw.get("view"))
    age = view.get("age")
    return IdentityDocument(
        name=_text(record.get("name")) or _text(view.get("name")) or "",
        masked_code=_text(record.get("masked_code")) or _text(view.get("masked_code")) or "",
        protected_code=_text(record.get("protected_code")) or "",
        birth_date=_text(record.get("birth_date")) or "",
        municipality=_text(record.get("municipality")) or _text(view.get("municipality")),
        postal_code=_text(record.get("postal_code")) or _text(view.get("postal_code")),
        fingerprint=_text(record.get("fingerprint")),
        age=age if isinstance(age, int) and not isinstance(age, bool) else None,
        verified=view.get("verified", True) is not False,
    )


def handover_to_json(doc: HandoverDocument | None) -> str | None:
    return None if doc is None else _dumps(doc.view())


def handover_from_json(text: str | None) -> HandoverDocument | None:
    if not text:
        return None
    raw = _object(json.loads(text))
    at = raw.get("at")
    return HandoverDocument(
        kind=_text(raw.get("kind")) or "transfer",
        from_id=_text(raw.get("from_id")) or "",
        from_name=_text(raw.get("from_name")) or "",
        note=_text(raw.get("note")),
        at=at if isinstance(at, int) else 0,
    )
