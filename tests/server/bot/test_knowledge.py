"""The advice bot's knowledge base: what a resident's question finds, and the measured quality.

The evaluation set (tests/bot_eval/questions.tsv) was written apart from the knowledge base's
example questions; holdout.tsv, fresh.tsv, the two safety sets and fresh2.tsv were written
later, each apart from the others; kinds.tsv holds questions of the kinds the bot got wrong.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from protocol.extras import BotExtras
from server.bot.knowledge import KnowledgeError, load_knowledge

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
from bot_eval import evaluate, read_set  # noqa: E402

KNOWLEDGE = ROOT / "server" / "config" / "knowledge"


@pytest.fixture(scope="module")
def kb():  # type: ignore[no-untyped-def]
    return load_knowledge()


def test_the_evaluation_set_meets_its_targets(kb) -> None:  # type: ignore[no-untyped-def]
    """Top-1 >= 85 % per language, every emergency caught, no false alarm, under 20 ms."""
    result = evaluate(kb, read_set(ROOT / "tests" / "bot_eval" / "questions.tsv"))
    assert result["questions"] >= 150
    counts = {lang: v["questions"] for lang, v in result["languages"].items()}
    assert counts["fi"] >= 60 and counts["sv"] >= 40 and counts["en"] >= 40
    assert result["emergency_recall"] == 1.0, [
        m for m in result["misses"] if m["expected"].startswith("emergency")
    ]
    assert result["false_emergencies"] == 0
    assert result["median_ms"] < 20
    assert result["ok"], result["failures"]


@pytest.mark.parametrize(
    "name", ["holdout.tsv", "fresh.tsv", "safety.tsv", "safety2.tsv", "fresh2.tsv", "kinds.tsv"]
)
def test_the_later_sets_catch_every_emergency(kb, name: str) -> None:  # type: ignore[no-untyped-def]
    """Sets written after the first, apart from it: every emergency in them is caught too."""
    result = evaluate(kb, read_set(ROOT / "tests" / "bot_eval" / name))
    assert result["emergency_recall"] == 1.0, [
        m for m in result["misses"] if m["expected"].startswith("emergency")
    ]


@pytest.mark.parametrize(
    "name", ["holdout.tsv", "fresh.tsv", "safety.tsv", "safety2.tsv", "fresh2.tsv", "kinds.tsv"]
)
def test_no_ordinary_question_of_these_sets_is_taken_for_an_emergency(kb, name: str) -> None:  # type: ignore[no-untyped-def]
    """No false emergency on any set (questions.tsv: its own test above)."""
    result = evaluate(kb, read_set(ROOT / "tests" / "bot_eval" / name))
    assert result["false_emergencies"] == 0, [
        m for m in result["misses"] if m["got"].startswith("emergency")
    ]


@pytest.mark.parametrize(
    ("text", "label", "lang"),
    [
        ("Mulla on kova rintakipu ja hikoiluttaa", "emergency:112", "fi"),
        ("jag vill inte leva längre", "emergency:crisis", "sv"),
        ("my son swallowed a button battery", "emergency:poison", "en"),
        # Safety before everything else, whatever the rest of the message asks.
        ("miten uusin reseptin, rintaan sattuu kovasti", "emergency:112", "fi"),
        # The past is not an emergency now; "again" is.
        ("I had a stroke last year, how do I get a certificate", "certificates", "en"),
        ("I had a stroke last year and now my face is drooping again", "emergency:112", "en"),
        ("haluan puhua hoitajan kanssa", "handoff", "fi"),
        ("kuka voitti euroviisut", "unknown", "fi"),
        ("vad kostar en tågbiljett till Åbo", "unknown", "sv"),
    ],
)
def test_a_message_is_understood(kb, text: str, label: str, lang: str) -> None:  # type: ignore[no-untyped-def]
    match = kb.understand(text, default_lang="fi")
    assert match.label == label
    assert match.lang == lang


# Kinds of message that are not an emergency now, each in words of its own (not the sets'),
# beside real emergencies told in the same style: the markers must not cost one of them.
NOT_NOW = [
    # "Again" about the help wanted, after an attempt long ago.
    "jag vill gå i terapi igen efter ett självmordsförsök för tio år sedan",
    "yritin tappaa itseni viisi vuotta sitten, haluaisin taas päästä terapiaan",
    "I attempted suicide when I was a teenager and would like to see a therapist again",
    # A question of general knowledge about the signs of an emergency.
    "how do I recognise a heart attack, asking for a school project",
    "mistä tunnistaa sydänkohtauksen? ihan uteliaisuudesta",
    "hur känner man igen en hjärtinfarkt",
    "mitkä on myrkytyksen oireet",
    # Love of a team: a figure of speech, not the heart.
    "mun sydän sykkii HJK:lle",
    "mitt hjärta klappar för Jokerit",
    "my heart beats for Liverpool",
    # Filler: nothing said yet.
    "hmm en tiedä",
    "öh jag vet inte vad jag ska skriva",
    "umm dunno what to say",
]
STILL_AN_EMERGENCY = [
    ("yritin tappaa itseni vuosia sitten ja nyt viiltelin taas", "emergency:crisis"),
    ("för tio år sedan försökte jag ta livet av mig och nu vill jag dö igen", "emergency:crisis"),
    ("years ago I tried to kill myself and tonight I cut myself again", "emergency:crisis"),
    ("my dad has the signs of a stroke right now, his face droops", "emergency:112"),
    ("mistä tunnistaa sydänkohtauksen, isällä puristaa rintaa", "emergency:112"),
    ("hur känner man igen en stroke, ansiktet hänger på ena sidan nu", "emergency:112"),
    ("mistä tunnistaa myrkytyksen, lapsi söi tabletteja", "emergency:poison"),
    ("mitt hjärta slår för fort och jag har ont i bröstet", "emergency:112"),
    ("sydän lyö kovaa mulle ja rintaa puristaa", "emergency:112"),
    ("my heart beats for minutes too fast and my chest hurts", "emergency:112"),
    ("hmm en tiedä, en jaksa enää elää", "emergency:crisis"),
    ("öh jag vet inte, jag har skurit mig i armarna", "emergency:crisis"),
    ("umm dunno, I just cut my wrist", "emergency:crisis"),
]


@pytest.mark.parametrize("text", NOT_NOW)
def test_a_message_of_these_kinds_is_not_taken_for_an_emergency(kb, text: str) -> None:  # type: ignore[no-untyped-def]
    assert kb.understand(text).kind != "emergency", text


@pytest.mark.parametrize(("text", "label"), STILL_AN_EMERGENCY)
def test_an_emergency_in_the_same_words_is_still_caught(kb, text: str, label: str) -> None:  # type: ignore[no-untyped-def]
    assert kb.understand(text).label == label


def test_every_answer_has_somewhere_to_act_in_every_language(kb) -> None:  # type: ignore[no-untyped-def]
    for topic in kb.topics.values():
        assert topic.actions, topic.id
        for lang in ("fi", "sv", "en"):
            assert topic.answers[lang] and topic.titles[lang]
            for action in topic.actions:
                view = action.view(lang)
                assert view["url"].startswith(("https://", "tel:")), (topic.id, view)
    for emergency in kb.emergencies:
        assert any(a.value == "112" for a in emergency.actions), emergency.kind


def test_what_the_bot_can_send_passes_the_checks_of_a_bot_accounts_message(kb) -> None:  # type: ignore[no-untyped-def]
    """The built-in bot is held to the protocol's rules too: each language's actions and
    topic titles (its quick replies) are valid, and come back from the checks unchanged."""
    actions = [a for t in kb.topics.values() for a in t.actions]
    actions += [a for e in kb.emergencies for a in e.actions]
    for lang in ("fi", "sv", "en"):
        replies = [{"id": t.id, "label": t.titles[lang]} for t in kb.topics.values()]
        views = [a.view(lang) for a in actions]
        for reply in replies:
            assert BotExtras.from_wire([reply], None).to_wire() == {"quick_replies": [reply]}
        for view in views:
            assert BotExtras.from_wire(None, [view]).to_wire() == {"actions": [view]}


def test_no_answer_gives_a_dose_or_a_diagnosis(kb) -> None:  # type: ignore[no-untyped-def]
    """The bot never doses: no amounts of medicine anywhere in what it can say."""
    dose = re.compile(
        r"\d+\s*(mg|g|ml|µg|mcg)\b|\d+\s*(tablet|tabletti|tablett|kapsel|pill)|"
        r"(kerran|kahdesti|gånger|times) (päivässä|om dagen|a day)",
        re.IGNORECASE,
    )
    texts = [t.answers[lang] for t in kb.topics.values() for lang in ("fi", "sv", "en")]
    texts += [e.answers[lang] for e in kb.emergencies for lang in ("fi", "sv", "en")]
    assert not [t for t in texts if dose.search(t)]


def test_the_answer_follows_the_language_the_resident_writes_in(kb) -> None:  # type: ignore[no-untyped-def]
    assert kb.understand("Hur förnyar jag mitt recept?", default_lang="fi").lang == "sv"
    assert kb.understand("How do I renew my prescription?", default_lang="fi").lang == "en"
    assert kb.understand("Miten uusin reseptini?", default_lang="en").lang == "fi"


def _broken_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    folder = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, folder)
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return folder


def test_a_bad_pattern_is_refused_naming_the_file_and_key(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, "_safety.toml", "'\\bitsemurh',", "'\\bitsemurh(',")
    with pytest.raises(KnowledgeError, match=r"_safety.toml: emergencies\[0\].patterns.fi\[0\]"):
        load_knowledge(folder)


def test_a_link_must_be_https(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, "prescription.toml", 'value = "https://', 'value = "http://')
    with pytest.raises(KnowledgeError, match="prescription.toml: actions"):
        load_knowledge(folder)


def test_without_the_safety_file_the_bot_does_not_start(tmp_path: Path) -> None:
    folder = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, folder)
    (folder / "_safety.toml").unlink()
    with pytest.raises(KnowledgeError, match="_safety.toml is missing"):
        load_knowledge(folder)


def test_a_topic_flag_must_be_true_or_false(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path, "opening_hours.toml", "\nhours = true", '\nhours = "yes"')
    with pytest.raises(KnowledgeError, match="opening_hours.toml: hours"):
        load_knowledge(folder)


def test_a_bad_prefer_pattern_is_refused_naming_the_file_and_key(tmp_path: Path) -> None:
    folder = _broken_copy(
        tmp_path, "youth_health.toml", "fi = [\n  '\\b(oon", "fi = [\n  '(\\b(oon"
    )
    with pytest.raises(KnowledgeError, match=r"youth_health.toml: prefer.fi\[0\]"):
        load_knowledge(folder)
