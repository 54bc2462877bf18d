"""Patient-record entries made from a chat: the draft, the check, and the two downloads.

When a professional closes a chat, the console offers an entry for the client's patient record.
:func:`draft_record` prepares it from the pre-chat questionnaire and the transcript; the
professional edits it, and :func:`validate_entry` checks what the console sends back before it
is stored. A saved entry downloads as plain text (:func:`record_text`) and as an HL7 FHIR R4
(4.0.1) document Bundle (:func:`record_fhir`) that an electronic health record system can take.

The draft only rearranges what was said in the questionnaire and the chat: it adds no finding,
no diagnosis and no advice, because whatever it adds could be saved unread into a health record.
Everything here is pure; the caller reads the conversation and stores the entry.
"""

from __future__ import annotations

import html
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from protocol import ChatOutcome
from protocol.schema import without_bidi_controls
from server.bot.accounts import BOT_ID
from server.core.texts import HELSINKI
from server.intake import personal_code

__all__ = [
    "BOT_PREFIX",
    "MAX_FIELD_LENGTH",
    "OUTCOMES",
    "RecordContext",
    "RecordEntry",
    "draft_record",
    "record_fhir",
    "record_text",
    "validate_entry",
]

# Keys are the wire values the console sends, the codes of the protocol's ChatOutcome: the
# entry's outcome ends the chat as its reason, and the client shows it in its own words.
OUTCOMES: dict[str, str] = {
    ChatOutcome.RESOLVED: "Resolved in the chat",
    ChatOutcome.BOOKED_APPOINTMENT: "Appointment booked",
    ChatOutcome.REFERRED: "Referred elsewhere",
    ChatOutcome.NO_RESPONSE: "No response from client",
    ChatOutcome.ESCALATED: "Escalated to a doctor",
    ChatOutcome.EMERGENCY: "Directed to emergency care",
}

MAX_FIELD_LENGTH = 4000

# The part of a transcript held with the advice bot: its own messages carry the bot's id, and
# the client's messages to it, copied into a nurse's chat at a handoff, carry this prefix.
BOT_PREFIX = "(with the advice bot)"

_TEXT_FIELDS = ("reason", "symptoms", "advice", "follow_up")
_FIELD_NAMES = {
    "reason": "reason for contact",
    "symptoms": "symptoms",
    "advice": "advice given",
    "follow_up": "follow-up",
    "outcome": "outcome",
}

# Drafts stay well under MAX_FIELD_LENGTH so that an untouched draft always saves.
_REASON_LIMIT = 300
_MESSAGE_LIMIT = 300
_SYMPTOM_MESSAGES = 5
_SYMPTOMS_LIMIT = 2000
_ADVICE_LIMIT = 2000
_FOLLOW_UP_LIMIT = 1500

# What happens next, as far as the outcome alone tells; empty where it tells nothing.
_FOLLOW_UP_DEFAULTS: Mapping[str, str] = {
    "resolved": "",
    "booked_appointment": "Client attends the appointment booked at the health station.",
    "referred": "Client contacts the service they were referred to.",
    "no_response": "",
    "escalated": "A doctor reviews the case.",
    "emergency": "Client seeks emergency care now.",
}

# Words by which a professional's sentence speaks of what comes next, in Finnish, Swedish and
# English. Matched as whole words, so "om" does not match "kommer"; a draft with one sentence
# too many costs the professional a deletion, one too few a missed instruction.
_FOLLOW_UP_WORDS = (
    # Finnish
    "jos",
    "uudelleen",
    "uudestaan",
    "ota yhteyttä",
    "ottakaa yhteyttä",
    "otathan yhteyttä",
    "soita",
    "soitathan",
    "aika",
    "ajan",
    "ajanvaraus",
    "päivystys",
    "päivystykseen",
    "seuranta",
    "kontrolli",
    # Swedish
    "om",
    "igen",
    "kontakta",
    "hör av dig",
    "ring",
    "boka",
    "tid",
    "återbesök",
    "uppföljning",
    "jouren",
    # English
    "if",
    "again",
    "contact us",
    "contact again",
    "call back",
    "call",
    "appointment",
    "follow-up",
    "follow up",
    "emergency",
    # Numbers: the medical helpline and the emergency number
    "116 117",
    "112",
)
_FOLLOW_UP = re.compile(
    r"(?<!\w)(?:"
    + "|".join(r"\s+".join(re.escape(part) for part in word.split()) for word in _FOLLOW_UP_WORDS)
    + r")(?!\w)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

_LANGUAGE_NAMES = {"fi": "Finnish", "sv": "Swedish", "en": "English"}
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")

# FHIR identifiers and codes.
_HETU_SYSTEM = "urn:oid:1.2.246.21"  # Finnish personal identity code
_PROFESSIONAL_SYSTEM = "urn:kanava:professional"
_RECORD_SYSTEM = "urn:kanava:record"
_CONVERSATION_SYSTEM = "urn:kanava:conversation"
_LOINC = "http://loinc.org"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_ACT_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
_EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
_XHTML = "http://www.w3.org/1999/xhtml"
_PRIORITIES = {"emergency": "EM", "urgent": "UR", "routine": "R"}
# uuid5 names under this namespace make the same record version always the same document.
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:kanava:record")
_REDACTED = "[identity code]"

_SECTION_TITLES = (
    ("reason", "Reason for contact"),
    ("symptoms", "Symptoms"),
    ("advice", "Advice given"),
    ("follow_up", "Follow-up"),
)


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """What the professional edits and saves."""

    reason: str  # reason for contact
    symptoms: str
    advice: str  # advice given
    follow_up: str
    outcome: str  # a key of OUTCOMES


@dataclass(frozen=True, slots=True)
class RecordContext:
    """The facts around an entry, filled by the caller from the conversation and the people."""

    conversation_id: str
    record_id: str
    version: int
    started_at_ms: int  # the conversation's created_at, epoch ms
    ended_at_ms: int | None  # None while the conversation is open
    saved_at_ms: int
    language: str | None  # "fi" | "sv" | "en"
    topic: str | None
    triage: str | None  # "urgent" | "routine"
    station: str | None
    professional_id: str
    professional_name: str
    professional_title: str | None  # "nurse", "doctor", ...
    client_name: str | None
    identity_code: str | None  # full personal identity code, strongly identified clients only
    birth_date: str | None  # ISO date, identified clients only


# -- Drafting ----------------------------------------------------------------------------------


def draft_record(
    intake: Mapping[str, Any] | None,
    messages: Sequence[Mapping[str, Any]],
    outcome: str = "resolved",
) -> RecordEntry:
    """A draft for the professional to edit: the questionnaire and the chat, rearranged.

    ``intake`` is the questionnaire summary (``IntakeSummary.to_dict()``) or None; ``messages``
    the transcript in order. Raises ValueError for an outcome not in :data:`OUTCOMES`.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    client = _client_texts(messages)
    professional = _professional_texts(messages)
    return RecordEntry(
        reason=_draft_reason(intake, client),
        symptoms=_draft_symptoms(intake, client),
        advice=_join_limited(professional, _ADVICE_LIMIT),
        follow_up=_draft_follow_up(outcome, professional),
        outcome=outcome,
    )


def _draft_reason(intake: Mapping[str, Any] | None, client: list[str]) -> str:
    if intake is not None:
        title = _clean(intake.get("title"))
        if title:
            label = _clean(intake.get("level_label"))
            if label and intake.get("level") not in (None, "routine"):
                return _trim(f"{title} ({label})", _REASON_LIMIT)
            return _trim(title, _REASON_LIMIT)
    if client:
        return _trim(" ".join(client[0].split()), _REASON_LIMIT)
    return ""


def _draft_symptoms(intake: Mapping[str, Any] | None, client: list[str]) -> str:
    lines: list[str] = []
    if intake is not None:
        raw_lines = intake.get("lines")
        for line in raw_lines if isinstance(raw_lines, list) else []:
            if not isinstance(line, Mapping):
                continue
            label, answer = _clean(line.get("label")), _clean(line.get("answer"))
            if answer:
                lines.append(f"{label}: {answer}" if label else answer)
        reasons = intake.get("reasons")
        level = _clean(intake.get("level_label")) or "Triage"
        for reason in reasons if isinstance(reasons, list) else []:
            text = _clean(reason)
            if text:
                lines.append(f"{level}: {text}")
    if not lines:
        # One line a message, so that the condensed messages read as a list.
        lines = [
            _trim(" ".join(text.split()), _MESSAGE_LIMIT) for text in client[:_SYMPTOM_MESSAGES]
        ]
    return _join_limited(lines, _SYMPTOMS_LIMIT)


def _draft_follow_up(outcome: str, professional: list[str]) -> str:
    lines: list[str] = []
    default = _FOLLOW_UP_DEFAULTS.get(outcome, "")
    if default:
        lines.append(default)
    seen: set[str] = set()
    for text in professional:
        for sentence in _SENTENCE_END.split(text):
            sentence = sentence.strip()
            key = sentence.casefold()
            if sentence and key not in seen and _FOLLOW_UP.search(sentence):
                seen.add(key)
                lines.append(sentence)
    return _join_limited(lines, _FOLLOW_UP_LIMIT)


def _client_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The client's messages, without those said to the advice bot when others are left."""
    to_nurse: list[str] = []
    to_bot: list[str] = []
    for message in messages:
        if message.get("sender_role") != "client":
            continue
        text = _clean(message.get("text"))
        if _is_bot_part(text):
            text = _without_bot_prefix(text)
            if text:
                to_bot.append(text)
        elif text:
            to_nurse.append(text)
    # A chat held with the bot alone still has facts worth a draft.
    return to_nurse or to_bot


def _professional_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the human professionals wrote; the bot's general answers are not advice given."""
    texts: list[str] = []
    for message in messages:
        if message.get("sender_role") != "professional" or message.get("sender_id") == BOT_ID:
            continue
        text = _clean(message.get("text"))
        if text and not _is_bot_part(text):
            texts.append(text)
    return texts


def _is_bot_part(text: str) -> bool:
    return text[: len(BOT_PREFIX)].casefold() == BOT_PREFIX.casefold()


def _without_bot_prefix(text: str) -> str:
    return text[len(BOT_PREFIX) :].strip()


# -- Checking what the console sends -----------------------------------------------------------


def validate_entry(raw: Mapping[str, Any]) -> RecordEntry:
    """The entry in a JSON body; ValueError with a message fit to show the professional.

    Missing text fields count as empty; keys other than the entry's are left to the caller.
    Line ends are normalised, bidirectional-text control characters removed and the ends of
    each field trimmed.
    """
    if not isinstance(raw, Mapping):
        raise ValueError("The record entry must be a JSON object.")
    values: dict[str, str] = {}
    for name in _TEXT_FIELDS:
        value = raw.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"The {_FIELD_NAMES[name]} must be text.")
        text = without_bidi_controls(value.replace("\r\n", "\n").replace("\r", "\n")).strip()
        if len(text) > MAX_FIELD_LENGTH:
            raise ValueError(
                f"The {_FIELD_NAMES[name]} is too long: {len(text)} characters, "
                f"at most {MAX_FIELD_LENGTH}."
            )
        if any(_is_control(char) for char in text):
            raise ValueError(f"The {_FIELD_NAMES[name]} contains characters that cannot be saved.")
        values[name] = text
    if not any(values.values()):
        raise ValueError(
            "The entry is empty: write at least one of reason for contact, symptoms, "
            "advice given or follow-up."
        )
    outcome = raw.get("outcome")
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        choices = ", ".join(f"{key} ({label})" for key, label in OUTCOMES.items())
        shown = "missing" if outcome is None else f"unknown: {str(outcome)[:40]!r}"
        raise ValueError(f"The outcome is {shown}; choose one of {choices}.")
    return RecordEntry(outcome=outcome, **values)


# -- Plain text --------------------------------------------------------------------------------


def record_text(entry: RecordEntry, ctx: RecordContext) -> str:
    """The entry as a plain-text document, times in Helsinki time, ending in a newline."""
    code = _clean(ctx.identity_code)
    birth_date = _iso_date(ctx.birth_date)
    if code:
        identity = code
    elif birth_date:
        identity = "identified, identity code not available"
    else:
        identity = "not identified"
    patient = _clean(ctx.client_name) or ("Name not known" if code or birth_date else "Anonymous")
    header: list[tuple[str, str]] = [("Patient", f"{patient}, {identity}")]
    if birth_date:
        header.append(("Date of birth", birth_date))
    professional = _clean(ctx.professional_name) or ctx.professional_id
    title = _clean(ctx.professional_title)
    header.append(("Professional", f"{professional}, {title}" if title else professional))
    if _clean(ctx.station):
        header.append(("Station", _clean(ctx.station)))
    header.append(("Chat", _chat_times(ctx.started_at_ms, ctx.ended_at_ms)))
    if _clean(ctx.language):
        language = _clean(ctx.language)
        header.append(("Language", _LANGUAGE_NAMES.get(language, language)))
    if _clean(ctx.topic):
        header.append(("Topic", _clean(ctx.topic)))
    if _clean(ctx.triage):
        header.append(("Triage", _clean(ctx.triage)))
    header.append(("Conversation", ctx.conversation_id))
    header.append(
        (
            "Record",
            f"{ctx.record_id}, version {ctx.version}, saved {_local_text(ctx.saved_at_ms)}",
        )
    )
    width = max(len(label) for label, _ in header) + 2
    parts = ["Patient record entry (Kanava chat)", ""]
    parts += [f"{label + ':':<{width}}{value}" for label, value in header]
    for name, heading in _SECTION_TITLES:
        body = _clean(getattr(entry, name)) or "(none)"
        parts += ["", heading, "-" * len(heading), body]
    parts += ["", "Outcome", "-------", _outcome_label(entry.outcome)]
    return "\n".join(parts) + "\n"


def _chat_times(started_ms: int, ended_ms: int | None) -> str:
    start = _local(started_ms)
    if ended_ms is None:
        return f"{_local_text(started_ms)}, still open"
    end = _local(ended_ms)
    if end.date() == start.date() and end.tzname() == start.tzname():
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} {end.tzname()}"
    return f"{_local_text(started_ms)} – {_local_text(ended_ms)}"


def _local(ms: int) -> datetime:
    # Whole seconds and milliseconds apart: a float of epoch ms would round some instants.
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, HELSINKI) + timedelta(milliseconds=millis)


def _local_text(ms: int) -> str:
    moment = _local(ms)
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()}"


def _outcome_label(outcome: str) -> str:
    return OUTCOMES.get(outcome, outcome)


# -- FHIR R4 -----------------------------------------------------------------------------------


def record_fhir(entry: RecordEntry, ctx: RecordContext) -> dict[str, Any]:
    """The entry as a FHIR R4 document Bundle: Composition, Patient, Practitioner, Encounter.

    The same record version always gives the same document, uuids included. The identity code
    is only in ``Patient.identifier``: the narrative an import may show anywhere never has it.
    """
    urls = {
        part: f"urn:uuid:{_uuid(ctx, part)}"
        for part in ("composition", "patient", "practitioner", "encounter")
    }
    saved = _instant(ctx.saved_at_ms)
    patient = _patient(ctx)
    practitioner = _practitioner(ctx)
    patient_ref = _reference(urls["patient"], _patient_display(ctx))
    practitioner_ref = _reference(urls["practitioner"], practitioner["name"][0]["text"])
    sections = [
        _section(heading, _redact(getattr(entry, name), ctx.identity_code))
        for name, heading in _SECTION_TITLES
    ]
    sections.append(_section("Outcome", _outcome_label(entry.outcome)))
    composition = {
        "resourceType": "Composition",
        "status": "final",
        "type": {
            "coding": [{"system": _LOINC, "code": "34109-9", "display": "Note"}],
            "text": "Chat consultation note",
        },
        "subject": patient_ref,
        "encounter": _reference(urls["encounter"]),
        "date": saved,
        "author": [practitioner_ref],
        "title": "Chat consultation note",
        "section": sections,
    }
    encounter = _encounter(ctx, patient_ref, practitioner_ref)
    resources = (
        (urls["composition"], composition),
        (urls["patient"], patient),
        (urls["practitioner"], practitioner),
        (urls["encounter"], encounter),
    )
    return {
        "resourceType": "Bundle",
        "id": str(_uuid(ctx, "bundle")),
        "identifier": {"system": _RECORD_SYSTEM, "value": f"{ctx.record_id}/{ctx.version}"},
        "type": "document",
        "timestamp": saved,
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in resources],
    }


def _uuid(ctx: RecordContext, part: str) -> uuid.UUID:
    return uuid.uuid5(_UUID_NAMESPACE, f"{ctx.record_id}/{ctx.version}/{part}")


def _patient(ctx: RecordContext) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient"}
    code = _clean(ctx.identity_code)
    name = _clean(ctx.client_name)
    if code:
        patient["identifier"] = [{"use": "official", "system": _HETU_SYSTEM, "value": code}]
    # A birth date comes with a strong identification only, even when its code is unavailable.
    birth_date = _iso_date(ctx.birth_date)
    if name:
        patient["name"] = [{"text": name}]
    elif not code and not birth_date:
        patient["name"] = [{"text": "Anonymous"}]
    if birth_date:
        patient["birthDate"] = birth_date
    language = _clean(ctx.language)
    if _LANGUAGE_CODE.match(language):
        coding = {"system": "urn:ietf:bcp:47", "code": language}
        if language in _LANGUAGE_NAMES:
            coding["display"] = _LANGUAGE_NAMES[language]
        patient["communication"] = [{"language": {"coding": [coding]}, "preferred": True}]
    return patient


def _patient_display(ctx: RecordContext) -> str:
    name = _clean(ctx.client_name)
    if name:
        return name
    identified = _clean(ctx.identity_code) or _iso_date(ctx.birth_date)
    return "Identified client" if identified else "Anonymous"


def _practitioner(ctx: RecordContext) -> dict[str, Any]:
    practitioner: dict[str, Any] = {
        "resourceType": "Practitioner",
        "identifier": [{"system": _PROFESSIONAL_SYSTEM, "value": ctx.professional_id}],
        "name": [{"text": _clean(ctx.professional_name) or ctx.professional_id}],
    }
    title = _clean(ctx.professional_title)
    if title:
        practitioner["qualification"] = [{"code": {"text": title}}]
    return practitioner


def _encounter(
    ctx: RecordContext, patient_ref: dict[str, str], practitioner_ref: dict[str, str]
) -> dict[str, Any]:
    period = {"start": _instant(ctx.started_at_ms)}
    if ctx.ended_at_ms is not None:
        period["end"] = _instant(ctx.ended_at_ms)
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "identifier": [{"system": _CONVERSATION_SYSTEM, "value": ctx.conversation_id}],
        "status": "in-progress" if ctx.ended_at_ms is None else "finished",
        "class": {"system": _ACT_CODE, "code": "VR", "display": "virtual"},
    }
    priority = _PRIORITIES.get(_clean(ctx.triage))
    if priority is not None:
        encounter["priority"] = {
            "coding": [{"system": _ACT_PRIORITY, "code": priority, "display": _clean(ctx.triage)}]
        }
    encounter["subject"] = patient_ref
    encounter["participant"] = [{"individual": practitioner_ref}]
    encounter["period"] = period
    station = _clean(ctx.station)
    if station:
        encounter["serviceProvider"] = {"display": station}
    return encounter


def _reference(url: str, display: str | None = None) -> dict[str, str]:
    reference = {"reference": url}
    if display:
        reference["display"] = display
    return reference


def _section(title: str, text: str) -> dict[str, Any]:
    section: dict[str, Any] = {"title": title}
    if text:
        section["text"] = {"status": "generated", "div": _xhtml(text)}
    else:
        # A section needs a narrative, an entry or subsections; an empty one says why it is.
        section["text"] = {"status": "generated", "div": _xhtml("Not recorded.")}
        section["emptyReason"] = {
            "coding": [{"system": _EMPTY_REASON, "code": "nilknown", "display": "Nil Known"}]
        }
    return section


def _xhtml(text: str) -> str:
    body = "<br/>".join(html.escape(line) for line in text.split("\n"))
    return f'<div xmlns="{_XHTML}">{body}</div>'


def _redact(text: str, identity_code: str | None) -> str:
    return personal_code.redact(_clean(text), _REDACTED, _clean(identity_code) or None)


def _instant(ms: int) -> str:
    return _local(ms).isoformat(timespec="seconds")


# -- Text helpers ------------------------------------------------------------------------------


def _is_control(char: str) -> bool:
    # Line feeds and tabs are the only control characters an XML narrative and a text file keep.
    return char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cs")


def _clean(value: object) -> str:
    """A string field as safe text: normalised line ends, no control characters (nor
    bidirectional-text ones), trimmed."""
    if not isinstance(value, str):
        return ""
    text = without_bidi_controls(value.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(char for char in text if not _is_control(char)).strip()


def _iso_date(value: str | None) -> str:
    text = _clean(value)
    try:
        return date.fromisoformat(text).isoformat() if len(text) == 10 else ""
    except ValueError:
        return ""


def _trim(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word where one is near and marked with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 3 // 4:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _join_limited(lines: Sequence[str], limit: int) -> str:
    """Lines joined by line feeds up to ``limit`` characters; the first line cut short ends it."""
    kept: list[str] = []
    used = 0
    for line in lines:
        room = limit - used - (1 if kept else 0)
        if room <= 0:
            break
        if len(line) > room:
            if room >= 20:  # a stub of a few characters would read as a whole line
                kept.append(_trim(line, room))
            break
        kept.append(line)
        used += len(line) + (1 if len(kept) > 1 else 0)
    return "\n".join(kept)
