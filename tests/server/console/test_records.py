"""Patient-record entries: drafting from a chat, checking an edited entry, text and FHIR R4."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

# fhirclient's models are generated from the FHIR 4.0.1 (R4) definitions and, strict, reject
# unknown elements, missing required ones, wrong types and malformed dates.
from fhirclient.models.bundle import Bundle  # type: ignore[import-untyped]
from fhirclient.models.composition import Composition  # type: ignore[import-untyped]
from fhirclient.models.encounter import Encounter  # type: ignore[import-untyped]
from fhirclient.models.patient import Patient  # type: ignore[import-untyped]
from fhirclient.models.practitioner import Practitioner  # type: ignore[import-untyped]

from server.console.records import (
    BOT_PREFIX,
    MAX_FIELD_LENGTH,
    OUTCOMES,
    RecordContext,
    RecordEntry,
    draft_record,
    record_fhir,
    record_text,
    validate_entry,
)

HETU = "131052-308T"
XHTML = "{http://www.w3.org/1999/xhtml}"

# 2025-03-04 10:15 and 10:42 Helsinki time (EET, UTC+2), saved at 10:45.
WINTER_START = 1741076100000
WINTER_END = 1741077720000
WINTER_SAVED = 1741077900000
# 2025-07-01 09:00 Helsinki time (EEST, UTC+3).
SUMMER_START = 1751349600000

URGENT_FI = {
    "level": "urgent",
    "level_label": "Kiireellinen",
    "reasons": ["Kuume yli 39 °C yli 3 päivää"],
    "topic": "respiratory",
    "title": "Yskä, kurkkukipu tai kuume",
    "complete": True,
    "lines": [
        {"label": "Oireet", "answer": "Yskä, kuume"},
        {"label": "Kesto", "answer": "3 päivää"},
        {"label": "Korkein kuume", "answer": "39,4 °C"},
    ],
}

ROUTINE_SV = {
    "level": "routine",
    "level_label": "Icke brådskande",
    "reasons": [],
    "topic": "skin",
    "title": "Hudbesvär",
    "complete": True,
    "lines": [
        {"label": "Besvär", "answer": "Klåda, utslag"},
        {"label": "Varaktighet", "answer": "En vecka"},
    ],
}


def message(seq: int, role: str, text: str, sender_id: str | None = None) -> dict[str, Any]:
    sender = sender_id or ("client" if role == "client" else "p_anna")
    names = {"client": "Maija", "p_anna": "Anna Hoitaja", "p_bot": "Advice bot"}
    return {
        "seq": seq,
        "sender_role": role,
        "sender_id": sender,
        "sender_name": names.get(sender, sender),
        "text": text,
        "sent_at": WINTER_START + seq * 60_000,
    }


def transcript(*turns: tuple[str, str] | tuple[str, str, str]) -> list[dict[str, Any]]:
    return [message(seq, *turn) for seq, turn in enumerate(turns, start=1)]


FI_CHAT = transcript(
    ("client", "Hei, minulla on ollut kuumetta ja yskää kolme päivää."),
    ("professional", "Hei Maija, olen sairaanhoitaja Anna. Onko sinulla hengenahdistusta?"),
    ("client", "Ei ole, mutta kurkku on kipeä."),
    (
        "professional",
        "Lepää ja juo runsaasti. Kuumeeseen voit ottaa parasetamolia pakkauksen ohjeen mukaan. "
        "Jos kuume jatkuu vielä kahden päivän päästä, ota yhteyttä uudelleen.",
    ),
    ("professional", "Varasin sinulle ajan huomiseksi kello 9.30 Kallion terveysasemalle."),
    ("client", "Kiitos!"),
)


def context(**changes: Any) -> RecordContext:
    ctx = RecordContext(
        conversation_id="c_4f2a",
        record_id="rec_81c3",
        version=2,
        started_at_ms=WINTER_START,
        ended_at_ms=WINTER_END,
        saved_at_ms=WINTER_SAVED,
        language="fi",
        topic="respiratory",
        triage="urgent",
        station="Kallion terveysasema",
        professional_id="p_anna",
        professional_name="Anna Hoitaja",
        professional_title="nurse",
        client_name="Maija Meikäläinen",
        identity_code=HETU,
        birth_date="1952-10-13",
    )
    return dataclasses.replace(ctx, **changes)


def anonymous(**changes: Any) -> RecordContext:
    return context(client_name=None, identity_code=None, birth_date=None, **changes)


ENTRY = RecordEntry(
    reason="Yskä, kurkkukipu tai kuume (Kiireellinen)",
    symptoms="Oireet: Yskä, kuume\nKesto: 3 päivää",
    advice="Lepää ja juo runsaasti.\nParasetamolia pakkauksen ohjeen mukaan.",
    follow_up="Vastaanotto huomenna klo 9.30.",
    outcome="booked_appointment",
)


# -- Drafting ----------------------------------------------------------------------------------


def test_an_urgent_finnish_intake_gives_the_reason_and_the_symptoms() -> None:
    """The questionnaire is the best source: its title with the level, its answers, its reasons."""
    entry = draft_record(URGENT_FI, FI_CHAT, "booked_appointment")
    assert entry.reason == "Yskä, kurkkukipu tai kuume (Kiireellinen)"
    assert entry.symptoms.splitlines() == [
        "Oireet: Yskä, kuume",
        "Kesto: 3 päivää",
        "Korkein kuume: 39,4 °C",
        "Kiireellinen: Kuume yli 39 °C yli 3 päivää",
    ]
    assert entry.outcome == "booked_appointment"


def test_a_routine_intake_gives_the_title_alone() -> None:
    entry = draft_record(ROUTINE_SV, [message(1, "client", "Hej, det kliar.")])
    assert entry.reason == "Hudbesvär"
    assert entry.symptoms == "Besvär: Klåda, utslag\nVaraktighet: En vecka"


def test_the_advice_is_what_the_professional_wrote_in_order() -> None:
    entry = draft_record(URGENT_FI, FI_CHAT)
    assert entry.advice.splitlines() == [
        "Hei Maija, olen sairaanhoitaja Anna. Onko sinulla hengenahdistusta?",
        FI_CHAT[3]["text"],
        "Varasin sinulle ajan huomiseksi kello 9.30 Kallion terveysasemalle.",
    ]


def test_the_follow_up_starts_from_the_outcome_and_picks_finnish_sentences() -> None:
    entry = draft_record(URGENT_FI, FI_CHAT, "booked_appointment")
    assert entry.follow_up.splitlines() == [
        "Client attends the appointment booked at the health station.",
        "Jos kuume jatkuu vielä kahden päivän päästä, ota yhteyttä uudelleen.",
        "Varasin sinulle ajan huomiseksi kello 9.30 Kallion terveysasemalle.",
    ]


def test_a_resolved_chat_without_follow_up_words_has_no_follow_up() -> None:
    chat = transcript(
        ("client", "Voiko rokotteen jälkeen saunoa?"),
        ("professional", "Rokotuspäivänä kannattaa välttää raskasta liikuntaa ja saunomista."),
    )
    assert draft_record(None, chat, "resolved").follow_up == ""


def test_swedish_follow_up_sentences_are_picked_by_whole_words() -> None:
    chat = transcript(
        ("client", "Hej, mitt barn har haft feber i två dagar."),
        (
            "professional",
            "Febern kommer ofta att gå över av sig själv. Ge barnet mycket att dricka. "
            "Om barnet blir slött eller inte vill dricka, ring 116 117 eller kontakta jouren.",
        ),
    )
    entry = draft_record(None, chat, "resolved")
    # "kommer" holds "om" but is not the word "om".
    assert entry.follow_up == (
        "Om barnet blir slött eller inte vill dricka, ring 116 117 eller kontakta jouren."
    )


def test_english_follow_up_sentences_and_no_repeats() -> None:
    chat = transcript(
        ("client", "I twisted my ankle yesterday, it is swollen."),
        ("professional", "Rest the ankle and keep it raised.\nIf it gets worse, call us again."),
        ("professional", "If it gets worse, call us again. Cold packs help with the swelling."),
    )
    entry = draft_record(None, chat, "referred")
    assert entry.follow_up.splitlines() == [
        "Client contacts the service they were referred to.",
        "If it gets worse, call us again.",
    ]


def test_without_an_intake_the_client_messages_give_reason_and_symptoms() -> None:
    first = "Hello,   I have had\na rash on my arms since Monday. " + "It itches a lot. " * 30
    chat = transcript(
        ("client", first),
        ("professional", "Does it have blisters?"),
        ("client", "No blisters, just red spots."),
        ("client", "   "),
        ("client", "Also a mild headache."),
    )
    entry = draft_record(None, chat)
    assert entry.reason.startswith("Hello, I have had a rash on my arms since Monday.")
    assert len(entry.reason) <= 300 and entry.reason.endswith("…")
    assert "\n" not in entry.reason
    lines = entry.symptoms.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Hello, I have had a rash") and lines[0].endswith("…")
    assert lines[1:] == ["No blisters, just red spots.", "Also a mild headache."]
    assert len(entry.symptoms) <= 2000


def test_only_the_first_few_client_messages_make_the_symptoms() -> None:
    chat = transcript(*[("client", f"Viesti {n}") for n in range(1, 9)])
    assert draft_record(None, chat).symptoms.splitlines() == [f"Viesti {n}" for n in range(1, 6)]


def test_the_advice_bot_part_is_left_out_when_a_nurse_took_over() -> None:
    chat = transcript(
        ("client", f"{BOT_PREFIX} Mikä auttaa flunssaan?"),
        ("professional", "Lepo ja riittävä juominen auttavat. Jos oireet pahenevat...", "p_bot"),
        ("professional", f"{BOT_PREFIX} Haluatko jutella hoitajan kanssa?"),
        ("client", "Minulla on ollut kuumetta viisi päivää."),
        ("professional", "Viisi päivää on pitkä aika, varaan sinulle ajan lääkärille."),
    )
    entry = draft_record(None, chat, "escalated")
    assert entry.reason == "Minulla on ollut kuumetta viisi päivää."
    assert entry.symptoms == "Minulla on ollut kuumetta viisi päivää."
    assert entry.advice == "Viisi päivää on pitkä aika, varaan sinulle ajan lääkärille."
    assert "Lepo" not in entry.follow_up and "Haluatko" not in entry.follow_up
    assert entry.follow_up.splitlines() == [
        "A doctor reviews the case.",
        "Viisi päivää on pitkä aika, varaan sinulle ajan lääkärille.",
    ]


def test_a_chat_with_the_bot_alone_still_gives_the_clients_words() -> None:
    chat = transcript(
        ("client", f"{BOT_PREFIX} Voinko ottaa buranaa ja panadolia samana päivänä?"),
        ("professional", "Yleisesti ottaen ne sopivat yhteen. Kysy apteekista.", "p_bot"),
    )
    entry = draft_record(None, chat, "resolved")
    assert entry.reason == "Voinko ottaa buranaa ja panadolia samana päivänä?"
    assert entry.advice == ""  # the bot's general answers are not advice given by a person


def test_the_advice_is_kept_to_a_sane_length() -> None:
    chat = transcript(*[("professional", f"Ohje {n}: " + "juo vettä " * 40) for n in range(20)])
    entry = draft_record(None, chat)
    assert 1500 < len(entry.advice) <= 2000
    assert entry.advice.startswith("Ohje 0: ")


def test_a_draft_never_adds_facts_to_an_empty_chat() -> None:
    entry = draft_record(None, [], "resolved")
    assert entry == RecordEntry("", "", "", "", "resolved")


def test_a_malformed_intake_or_message_is_skipped_not_fatal() -> None:
    intake: dict[str, Any] = {
        "level": "urgent",
        "title": None,
        "lines": [{"label": "Oireet", "answer": "Yskä"}, "oops", {"label": "Tyhjä"}],
        "reasons": "not a list",
    }
    chat = [{"sender_role": "client", "text": 42}, message(2, "client", "Yskä\x00ä vaivaa.")]
    entry = draft_record(intake, chat)
    assert entry.reason == "Yskää vaivaa."
    assert entry.symptoms == "Oireet: Yskä"


def test_an_unknown_outcome_cannot_be_drafted() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        draft_record(None, [], "cured")


def test_the_console_outcomes_are_known() -> None:
    assert {"resolved", "booked_appointment", "referred", "no_response"} <= set(OUTCOMES)
    assert all(label and label[0].isupper() for label in OUTCOMES.values())


@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_every_draft_passes_the_check_unedited(outcome: str) -> None:
    """However long the chat, an untouched draft saves."""
    long = "Pitkä viesti. " * 500
    chat = transcript(*[("client", long), ("professional", "Jos " + long)] * 10)
    draft = draft_record(URGENT_FI, chat, outcome)
    checked = validate_entry(dataclasses.asdict(draft))
    assert checked == draft
    assert all(len(getattr(draft, name)) <= MAX_FIELD_LENGTH for name in ("advice", "follow_up"))


# -- Checking an edited entry ------------------------------------------------------------------


def test_an_edited_entry_is_accepted_with_line_ends_normalised() -> None:
    raw = {
        "reason": "  Kuume\r\n",
        "symptoms": "Yskä\r\nKuume",
        "advice": "",
        "outcome": "resolved",
        "expected_version": 3,  # the caller's business
    }
    assert validate_entry(raw) == RecordEntry("Kuume", "Yskä\nKuume", "", "", "resolved")


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidirectional_text_controls_are_removed_from_an_entry_and_its_documents() -> None:
    """A right-to-left override would show "Parasetamolia 1 g x 4" as something else in
    the record; an entry is saved, and its documents made, without any of them."""
    raw = {"advice": f"Parasetamolia {BIDI[4]}4 x g 1{BIDI[2]}.", "outcome": "resolved"}
    raw |= {"symptoms": "".join(f"{c}x" for c in BIDI), "reason": BIDI[0] + BIDI[6]}
    entry = validate_entry(raw)
    assert entry.advice == "Parasetamolia 4 x g 1." and entry.symptoms == "x" * len(BIDI)
    assert entry.reason == ""
    # A stored entry, or a draft from a transcript, written before this: the documents
    # leave them out too.
    old = dataclasses.replace(ENTRY, advice=raw["advice"], follow_up=raw["symptoms"])
    documents = record_text(old, context(client_name=f"Maija{BIDI[5]}")) + json.dumps(
        record_fhir(old, context(client_name=f"Maija{BIDI[5]}")), ensure_ascii=False
    )
    assert not set(BIDI) & set(documents)
    assert "Parasetamolia 4 x g 1." in documents


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"reason": "x", "outcome": "cured"}, r"outcome is unknown: 'cured'.*booked_appointment"),
        ({"reason": "x"}, "outcome is missing"),
        ({"reason": "x", "outcome": 3}, "outcome is unknown"),
        ({"reason": 12, "outcome": "resolved"}, "reason for contact must be text"),
        ({"advice": ["a"], "outcome": "resolved"}, "advice given must be text"),
        (
            {"follow_up": "x" * (MAX_FIELD_LENGTH + 1), "outcome": "resolved"},
            f"follow-up is too long: {MAX_FIELD_LENGTH + 1} characters, at most {MAX_FIELD_LENGTH}",
        ),
        ({"symptoms": "a\x07b", "outcome": "resolved"}, "symptoms contains characters"),
        ({"reason": " ", "symptoms": "\n", "outcome": "resolved"}, "entry is empty"),
        ({"outcome": "resolved"}, "entry is empty"),
    ],
)
def test_a_bad_entry_is_refused_with_a_clear_message(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_entry(raw)


def test_a_field_of_exactly_the_limit_is_accepted() -> None:
    entry = validate_entry({"advice": "x" * MAX_FIELD_LENGTH, "outcome": "referred"})
    assert len(entry.advice) == MAX_FIELD_LENGTH


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        validate_entry(["resolved"])  # type: ignore[arg-type]


# -- Plain text --------------------------------------------------------------------------------


def test_the_text_of_an_identified_client() -> None:
    text = record_text(ENTRY, context())
    lines = text.splitlines()
    assert lines[0] == "Patient record entry (Kanava chat)"
    assert "Patient:       Maija Meikäläinen, 131052-308T" in lines
    assert "Date of birth: 1952-10-13" in lines
    assert "Professional:  Anna Hoitaja, nurse" in lines
    assert "Station:       Kallion terveysasema" in lines
    assert "Chat:          2025-03-04 10:15–10:42 EET" in lines
    assert "Language:      Finnish" in lines
    assert "Conversation:  c_4f2a" in lines
    assert "Record:        rec_81c3, version 2, saved 2025-03-04 10:45 EET" in lines
    headings = [line for line, under in zip(lines, lines[1:], strict=False) if set(under) == {"-"}]
    assert headings == ["Reason for contact", "Symptoms", "Advice given", "Follow-up", "Outcome"]
    assert text.endswith("Outcome\n-------\nAppointment booked\n")
    assert "Oireet: Yskä, kuume\nKesto: 3 päivää" in text


def test_the_text_of_an_anonymous_client_in_an_open_summer_chat() -> None:
    ctx = anonymous(started_at_ms=SUMMER_START, ended_at_ms=None, saved_at_ms=SUMMER_START + 1)
    entry = dataclasses.replace(ENTRY, follow_up="", outcome="no_response")
    text = record_text(entry, ctx)
    assert re.search(r"^Patient: +Anonymous, not identified$", text, re.MULTILINE)
    assert "Date of birth" not in text
    assert re.search(r"^Chat: +2025-07-01 09:00 EEST, still open$", text, re.MULTILINE)
    assert "Follow-up\n---------\n(none)\n" in text
    assert text.endswith("No response from client\n")


def test_a_chat_over_midnight_shows_both_dates() -> None:
    ctx = context(
        started_at_ms=WINTER_START + 13 * 3_600_000, ended_at_ms=WINTER_START + 14 * 3_600_000
    )
    assert "Chat:          2025-03-04 23:15 EET – 2025-03-05 00:15 EET" in record_text(ENTRY, ctx)


# -- FHIR R4 -----------------------------------------------------------------------------------


def resources(bundle: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["resource"]["resourceType"]: entry["resource"] for entry in bundle["entry"]}


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


@pytest.mark.parametrize(
    "ctx",
    [context(), anonymous(ended_at_ms=None, triage=None, language=None, station=None)],
    ids=["identified", "anonymous-open"],
)
def test_the_document_is_valid_fhir_r4(ctx: RecordContext) -> None:
    document = record_fhir(ENTRY, ctx)
    parsed = Bundle(json.loads(json.dumps(document)), strict=True)
    # Every element was understood: nothing dropped, nothing renamed.
    assert parsed.as_json() == document
    kinds = [type(entry.resource) for entry in parsed.entry]
    assert kinds == [Composition, Patient, Practitioner, Encounter]


def test_the_document_bundle_follows_the_document_rules() -> None:
    document = record_fhir(ENTRY, context())
    assert document["type"] == "document"
    assert document["identifier"] == {"system": "urn:kanava:record", "value": "rec_81c3/2"}
    assert document["timestamp"] == "2025-03-04T10:45:00+02:00"
    urls = [entry["fullUrl"] for entry in document["entry"]]
    assert len(set(urls)) == len(urls)
    assert all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", url) for url in urls)
    references = [
        node["reference"]
        for node in walk(document)
        if isinstance(node, dict) and "reference" in node
    ]
    assert references and set(references) <= set(urls)
    # No empty strings, nulls or empty containers, which FHIR JSON forbids.
    for node in walk(document):
        assert node is not None and node != "" and node != [] and node != {}


def test_the_composition() -> None:
    document = record_fhir(ENTRY, context())
    found = resources(document)
    composition = found["Composition"]
    by_type = {entry["resource"]["resourceType"]: entry["fullUrl"] for entry in document["entry"]}
    assert composition["status"] == "final"
    assert composition["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "34109-9",
        "display": "Note",
    }
    assert composition["date"] == "2025-03-04T10:45:00+02:00"
    assert composition["subject"]["reference"] == by_type["Patient"]
    assert composition["author"][0]["reference"] == by_type["Practitioner"]
    assert composition["encounter"]["reference"] == by_type["Encounter"]
    titles = [section["title"] for section in composition["section"]]
    assert titles == ["Reason for contact", "Symptoms", "Advice given", "Follow-up", "Outcome"]
    symptoms = composition["section"][1]["text"]
    assert symptoms["status"] == "generated"
    assert symptoms["div"] == (
        '<div xmlns="http://www.w3.org/1999/xhtml">Oireet: Yskä, kuume<br/>Kesto: 3 päivää</div>'
    )
    assert "Appointment booked" in composition["section"][4]["text"]["div"]


def test_the_patient_practitioner_and_encounter() -> None:
    found = resources(record_fhir(ENTRY, context()))
    patient = found["Patient"]
    assert patient["identifier"] == [
        {"use": "official", "system": "urn:oid:1.2.246.21", "value": HETU}
    ]
    assert patient["name"] == [{"text": "Maija Meikäläinen"}]
    assert patient["birthDate"] == "1952-10-13"
    practitioner = found["Practitioner"]
    assert practitioner["identifier"] == [{"system": "urn:kanava:professional", "value": "p_anna"}]
    assert practitioner["name"] == [{"text": "Anna Hoitaja"}]
    assert practitioner["qualification"] == [{"code": {"text": "nurse"}}]
    encounter = found["Encounter"]
    assert encounter["status"] == "finished"
    assert encounter["class"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "VR",
        "display": "virtual",
    }
    assert encounter["period"] == {
        "start": "2025-03-04T10:15:00+02:00",
        "end": "2025-03-04T10:42:00+02:00",
    }
    assert encounter["priority"]["coding"][0]["code"] == "UR"
    assert encounter["identifier"] == [{"system": "urn:kanava:conversation", "value": "c_4f2a"}]


def test_an_anonymous_client_in_an_open_chat() -> None:
    found = resources(record_fhir(ENTRY, anonymous(ended_at_ms=None, started_at_ms=SUMMER_START)))
    assert found["Patient"]["name"] == [{"text": "Anonymous"}]
    assert "identifier" not in found["Patient"] and "birthDate" not in found["Patient"]
    assert found["Encounter"]["status"] == "in-progress"
    assert found["Encounter"]["period"] == {"start": "2025-07-01T09:00:00+03:00"}


def test_the_identity_code_is_only_in_the_patient_identifier() -> None:
    entry = dataclasses.replace(ENTRY, advice=f"Henkilötunnus {HETU.lower()} tarkistettu.")
    document = record_fhir(entry, context())
    found = resources(document)
    assert HETU.casefold() not in json.dumps(found["Composition"]).casefold()
    assert "[identity code]" in found["Composition"]["section"][2]["text"]["div"]
    patient_text = json.dumps({k: v for k, v in found["Patient"].items() if k != "identifier"})
    assert HETU not in patient_text
    assert json.dumps(document).count(HETU) == 1


@pytest.mark.parametrize(
    "written",
    [
        "131052 - 308T",  # spaces around the separator
        "131052 -308T",
        "131052- 308t",
        "131052308T",  # no separator
        "131052 308T",  # a space for a separator
        "131052\u2010308T",  # hyphen
        "131052\u2011308T",  # non-breaking hyphen
        "131052\u2012308T",  # figure dash
        "131052\u2013308T",  # en dash
        "131052\u2014308T",  # em dash
        "131052\u2015308T",  # horizontal bar
        "131052\u2212308T",  # minus sign
        "131052\ufe63308T",  # small hyphen-minus
        "131052\uff0d308T",  # full-width hyphen-minus
        "131052\u00a0\u2013\u00a0308T",  # no-break spaces around an en dash
        "\uff11\uff13\uff11\uff10\uff15\uff12-\uff13\uff10\uff18\uff34",  # full width
    ],
)
def test_the_clients_identity_code_is_redacted_however_it_is_written(written: str) -> None:
    entry = dataclasses.replace(ENTRY, advice=f"Henkilötunnus {written} tarkistettu.")
    composition = resources(record_fhir(entry, context()))["Composition"]
    div = composition["section"][2]["text"]["div"]
    assert div.endswith("Henkilötunnus [identity code] tarkistettu.</div>"), div


@pytest.mark.parametrize(
    "written",
    ["010203A123D", "010203 - 123D", "010203\u2013123D", "241299Y001U", "010110B0308"],
)
def test_someone_elses_code_with_a_separator_is_redacted_too(written: str) -> None:
    entry = dataclasses.replace(ENTRY, follow_up=f"Huoltajan tunnus {written}.")
    composition = resources(record_fhir(entry, context()))["Composition"]
    assert "Huoltajan tunnus [identity code]." in composition["section"][3]["text"]["div"]


@pytest.mark.parametrize("written", ["id_010203-123D_x", "tunnus:010203-123D;", "(010203A123D)"])
def test_a_code_next_to_an_underscore_or_punctuation_is_redacted(written: str) -> None:
    """An underscore is no letter: a code written against one (as in a pasted file name or
    form field) is still a code."""
    entry = dataclasses.replace(ENTRY, follow_up=f"Huoltaja {written} soitti.")
    composition = resources(record_fhir(entry, context()))["Composition"]
    assert "010203" not in composition["section"][3]["text"]["div"]


def test_phone_numbers_dates_and_times_in_a_narrative_are_kept() -> None:
    kept = "Soita 0401234567 tai 09 310 10023. Syntynyt 13.10.1952, aika 15.03. klo 9.30."
    entry = dataclasses.replace(ENTRY, follow_up=kept)
    composition = resources(record_fhir(entry, context()))["Composition"]
    assert kept in composition["section"][3]["text"]["div"]


def test_html_in_a_message_is_escaped_in_the_narrative() -> None:
    chat = transcript(("client", "<script>alert(1)</script> & <b>kipu</b>"), ("client", "2. rivi"))
    entry = draft_record(None, chat)
    composition = resources(record_fhir(entry, anonymous()))["Composition"]
    div = composition["section"][1]["text"]["div"]
    assert "<script>" not in div and "<b>" not in div
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;kipu&lt;/b&gt;<br/>2. rivi" in div
    root = ET.fromstring(div)
    assert root.tag == f"{XHTML}div"
    assert [child.tag for child in root.iter()][1:] == [f"{XHTML}br"]
    assert "".join(root.itertext()) == "<script>alert(1)</script> & <b>kipu</b>2. rivi"


def test_every_narrative_is_well_formed_xhtml() -> None:
    entry = RecordEntry("a < b", "quotes \" and ' and &amp;", "", "", "emergency")
    composition = resources(record_fhir(entry, context()))["Composition"]
    for section in composition["section"]:
        root = ET.fromstring(section["text"]["div"])
        assert root.tag == f"{XHTML}div" and "".join(root.itertext()).strip()
    empty = composition["section"][2]
    assert empty["emptyReason"]["coding"][0]["code"] == "nilknown"


def test_the_same_record_gives_the_same_bytes() -> None:
    first = json.dumps(record_fhir(ENTRY, context()), sort_keys=True).encode()
    second = json.dumps(record_fhir(ENTRY, context()), sort_keys=True).encode()
    assert first == second
    other = record_fhir(ENTRY, context(version=3))
    assert not {e["fullUrl"] for e in other["entry"]} & {
        e["fullUrl"] for e in json.loads(first)["entry"]
    }


def test_an_identified_client_whose_code_is_not_available() -> None:
    """A strong identification whose code cannot be read still shows the birth date, no code."""
    ctx = context(identity_code=None)
    assert "Patient:       Maija Meikäläinen, identified, identity code not available" in (
        record_text(ENTRY, ctx)
    )
    patient = resources(record_fhir(ENTRY, ctx))["Patient"]
    assert "identifier" not in patient
    assert patient["birthDate"] == "1952-10-13"
