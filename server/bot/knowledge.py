"""The advice bot's knowledge base and how a question finds its answer.

The knowledge base is data a city edits (``server/config/knowledge/``): one TOML file per topic
with, in Finnish, Swedish and English, the answer, example questions and keywords, and the
links or phone numbers where the resident can act. ``_safety.toml`` holds the emergency
patterns and their answers, ``_handoff.toml`` how residents ask for a person.

Finding the answer (all pure, no I/O after loading):

1. **Safety first.** Emergency patterns (regular expressions over the normalized text, per
   language but checked in every language, since a Swedish speaker may write one Finnish
   word) are tried before anything else. A match answers at once with 112, and for suicidal
   thoughts also the crisis helpline; for poisoning the Poison Information Centre.
2. **Handoff.** "I want to talk to a nurse" and its equivalents.
3. **Retrieval.** Character n-grams (3 to 5 characters, inside word boundaries) weighted by
   TF-IDF and compared by cosine similarity: n-grams cope with Finnish and Swedish inflection
   (ajanvaraus, ajanvarauksen, ajanvaraukseen share most of their n-grams) and with typos,
   without a stemmer. Function words ("miten", "hur", "how") and words naming who it is
   about ("taapero", "min fru") are left out of the comparison. A message whose content
   words the knowledge base has mostly never seen (gibberish, another language) is not
   guessed at, nor taken for an emergency by its examples; nor is one of nothing but filler
   ("umm, don't know what to write"). Every example question, and each
   topic's title with its keywords, is a document; a topic scores 0.7 × its best document +
   0.3 × all its examples together (one lucky example does not win alone). ``_offtopic.toml``
   is a topic of its own for questions that are not about the service (the weather, sports,
   jokes): a message closest to it, or scoring below ``threshold``, gets no guess: the bot
   says it did not understand and offers the quick replies. A topic's ``prefer`` patterns (a
   young person's own age, say) add to its score after emergencies have been looked for.

The language of the answer is the language the resident writes in, told apart by the same
n-grams against each language's whole text (with the conversation's language breaking ties).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.extras import Action, ActionKind
from server.core.config_files import SHIPPED, ConfigError, TomlReader, read_toml
from server.core.texts import LANGUAGES

__all__ = [
    "LANGUAGES",
    "Emergency",
    "KnowledgeBase",
    "KnowledgeError",
    "LocalAction",
    "Match",
    "Topic",
    "load_knowledge",
    "normalize",
]

DEFAULT_FOLDER = SHIPPED / "knowledge"
_ID = re.compile(r"[a-z][a-z0-9_]{0,39}")
_NGRAMS = (3, 4, 5)
_BEST_DOCUMENT = 0.7  # a topic's score: this much its best document, the rest all of them
_OFF_TOPIC = "_offtopic"
# A message whose words the knowledge base mostly has never seen (gibberish, another language)
# is not guessed at: less than half its content words known, and less than this share of their
# letters (a long known compound outweighs two short unknown words), and it is "unknown".
_LEAST_KNOWN = (0.5, 0.4)
_KNOWN_WORD = 0.5  # a word unseen as a whole is known when this share of its 4-grams is
# What a topic's `prefer` patterns add to its score when they match ("oon 14": young people).
_PREFERRED = 0.20
_EMERGENCY_CLASS = "!"  # "!112", "!crisis", "!poison": the emergency examples' classes
# Function words: they say which language, not what about (language detection uses them).
_STOPWORDS = frozenset(
    """
    mä mun mulla mulle minä minun minulla minulle sinä sun sulla on ole oli olla ja tai että
    jos kun niin se sen sitä ne nyt voi voiko voinko voisinko miten mitä mikä mistä missä
    mihin milloin kuinka pitää pitäisi onko ei en kanssa tää tämä tässä tähän jo vielä vai
    saa saako saanko saisko
    jag mig min mitt mina du dig din är var vad hur när vilken vilket vilka kan man och
    eller att om det den de en ett i på till för med av som har hade ska skulle måste får
    finns inte e
    me my mine you your is are was were be do does did could should would what when where
    which who the a an and or to for of in on at with it this that there have has get just
    """.split()
) | frozenset(
    # Who it is about says nothing of what about: "my toddler" must not make a fever closer
    # to an emergency's examples that happen to be about toddlers.
    """
    lapsi lapsella lapsen lapselle lapseni lapsi taapero taaperolla taaperon vauva vauvalla
    vauvan vauvalle poika pojalla pojan tyttö tytöllä tytön tytär tyttärellä mies miehellä
    vaimo vaimolla äiti äidillä isä isällä
    barn barnet barnets småbarn småbarnet bebis bebisen pojke pojken son sonen dotter
    dottern flicka flickan man mannen fru frun mamma pappa
    child childs kid kids toddler baby babys son daughter boy girl husband wife mom dad
    mother father
    """.split()
)

# Filler: hesitation sounds, greetings, and the words of "I don't know what to write". A message
# of nothing but these and function words says nothing, and is never taken for an emergency by
# its closeness to the emergencies' examples (the patterns are still tried).
_FILLER = frozenset(
    """
    hei moi moro terve no noh tota siis niinku okei ok joo tiedä tiiä tiijä tieä keksi keksiny
    kirjoittaa kirjottaa kirjoitan kirjotan sanoa sanois kysyä kysyis kysyttävää testi
    hej hallå nå tja typ alltså liksom okej vet vete vetat skriva säga fråga test
    hi hello hey well like so okay know dunno idk don t dont write say ask
    """.split()
)
_HESITATION = re.compile(r"(ö+h*|ä+h*|e+h+|e+r+m*|a+h+|o+h+|u+h+|u+m+|h+m+|m+)")


class KnowledgeError(ConfigError):
    default_source = "<knowledge>"


# --- the data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalAction:
    """Where the resident can act, in every language: a link or a phone number.

    What the bot sends is one language of it, the protocol's :class:`~protocol.extras.Action`
    (:meth:`in_language`).
    """

    kind: ActionKind  # LINK or PHONE
    values: Mapping[str, str]  # per language: an https URL, or the number as dialled
    labels: Mapping[str, str]

    @property
    def value(self) -> str:
        return self.values["fi"]

    def in_language(self, lang: str) -> Action:
        value = self.values[lang]
        url = value if self.kind is ActionKind.LINK else "tel:" + re.sub(r"[^0-9+]", "", value)
        return Action(self.kind, self.labels[lang], url=url, value=value)

    def view(self, lang: str) -> dict[str, str]:
        """The action in ``lang`` as clients receive it."""
        return self.in_language(lang).to_wire()


@dataclass(frozen=True)
class Topic:
    id: str
    order: int
    quick_reply: bool
    titles: Mapping[str, str]
    answers: Mapping[str, str]
    examples: Mapping[str, tuple[str, ...]]
    keywords: Mapping[str, tuple[str, ...]]
    actions: tuple[LocalAction, ...]
    # The answer begins with the hours computed at the moment of answering (today, now, the
    # week; see server/bot/today.py): the knowledge base states no hours of its own.
    hours: bool = False
    # The answer depends on whether the nurses' chat is open now: it offers the handoff
    # when it is, and says when it opens (and whom to call meanwhile) when it is not.
    nurse_chat: bool = False
    # Patterns that make this topic likelier (a young person saying their age): a match adds
    # a fixed amount to its score, after emergencies have been looked for.
    prefer: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class Emergency:
    """One kind of emergency: its patterns per language and what the bot says at once."""

    kind: str  # "112", "crisis", "poison"
    patterns: Mapping[str, tuple[re.Pattern[str], ...]]
    answers: Mapping[str, str]
    actions: tuple[LocalAction, ...]
    # A time in the past cancels a match ("a stroke last year"), unless it is "again" now.
    unless: tuple[re.Pattern[str], ...] = ()
    acute: tuple[re.Pattern[str], ...] = ()

    def matches(self, normalized: str) -> bool:
        if not any(p.search(normalized) for ps in self.patterns.values() for p in ps):
            return False
        return not self.cancelled(normalized)

    def cancelled(self, normalized: str) -> bool:
        """A past event (or a blocked nose) and nothing saying it is happening again."""
        if any(p.search(normalized) for p in self.unless):
            return not any(p.search(normalized) for p in self.acute)
        return False


@dataclass(frozen=True)
class Match:
    """What the bot understood of one message."""

    kind: str  # "emergency", "handoff", "topic" or "unknown"
    lang: str  # the language to answer in
    topic: Topic | None = None
    emergency: Emergency | None = None
    score: float = 0.0
    alternatives: tuple[tuple[str, float], ...] = ()  # the next best topics (id, score)

    @property
    def label(self) -> str:
        """``emergency:112``, ``handoff``, a topic id, or ``unknown`` (as in the evaluation)."""
        if self.kind == "emergency" and self.emergency is not None:
            return f"emergency:{self.emergency.kind}"
        if self.kind == "topic" and self.topic is not None:
            return self.topic.id
        return self.kind


# --- text -----------------------------------------------------------------------------------

_NON_WORD = re.compile(r"[^\w]+")
# Laughing emoji say "joking" as plainly as "haha" does (the emergencies' past-and-joke markers).
_LAUGHING = re.compile("[\U0001f602\U0001f923\U0001f606\U0001f605\U0001f639\U0001f92a\U0001f61c]")


def normalize(text: str) -> str:
    """Lowercase, composed characters, words separated by single spaces; laughing emoji as
    the word "haha"."""
    text = _LAUGHING.sub(" haha ", unicodedata.normalize("NFC", text).lower())
    return " ".join(_NON_WORD.sub(" ", text).replace("_", " ").split())


def _features(normalized: str, *, content_only: bool = False) -> Counter[str]:
    """Character n-grams of each word padded with spaces, and the words themselves.

    ``content_only`` leaves out function words (unless nothing else is left).
    """
    counts: Counter[str] = Counter()
    words = normalized.split()
    if content_only:
        words = [w for w in words if w not in _STOPWORDS] or words
    for word in words:
        padded = f" {word} "
        for n in _NGRAMS:
            if len(padded) < n:
                continue
            for i in range(len(padded) - n + 1):
                counts[padded[i : i + n]] += 1
        counts["w:" + word] += 1
    return counts


def _says_something(normalized: str) -> bool:
    """Whether the message has a word that is neither a function word nor filler."""
    return any(
        w not in _STOPWORDS and w not in _FILLER and not _HESITATION.fullmatch(w)
        for w in normalized.split()
    )


class _Index:
    """TF-IDF vectors of documents, searched by cosine similarity over postings."""

    def __init__(self, documents: list[tuple[str, Counter[str]]]) -> None:
        self.keys = [key for key, _ in documents]
        df: Counter[str] = Counter()
        for _, features in documents:
            df.update(features.keys())
        n = len(documents)
        self.idf = {f: math.log((n + 1) / (d + 1)) + 1.0 for f, d in df.items()}
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for i, (_, features) in enumerate(documents):
            vector = self._weigh(features)
            for feature, weight in vector.items():
                self.postings.setdefault(feature, []).append((i, weight))

    def _weigh(self, features: Counter[str]) -> dict[str, float]:
        vector = {
            f: (1.0 + math.log(c)) * self.idf[f] for f, c in features.items() if f in self.idf
        }
        norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
        return {f: w / norm for f, w in vector.items()}

    def known_share(self, normalized: str) -> tuple[float, float]:
        """The share of the message's content words this index has seen, counted as words
        and by their length ((1.0, 1.0): no words).

        A word counts as seen when it is a word of some document, or when at least half of
        its 4-grams are (inflections and typos of known words); digits do not count.
        """
        words = [w for w in normalized.split() if w not in _STOPWORDS and not w.isdigit()]
        if not words:
            return 1.0, 1.0
        known = [w for w in words if self._seen(w)]
        return len(known) / len(words), sum(map(len, known)) / sum(map(len, words))

    def _seen(self, word: str) -> bool:
        if "w:" + word in self.idf:
            return True
        padded = f" {word} "
        grams = [padded[i : i + 4] for i in range(len(padded) - 3)] or [padded]
        return sum(g in self.idf for g in grams) >= _KNOWN_WORD * len(grams)

    def scores(self, features: Counter[str]) -> dict[int, float]:
        result: dict[int, float] = {}
        for feature, weight in self._weigh(features).items():
            for doc, doc_weight in self.postings.get(feature, ()):
                result[doc] = result.get(doc, 0.0) + weight * doc_weight
        return result


# --- the knowledge base ---------------------------------------------------------------------


@dataclass
class KnowledgeBase:
    topics: dict[str, Topic]
    emergencies: tuple[Emergency, ...]
    handoff: Mapping[str, tuple[re.Pattern[str], ...]]
    off_topic: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # kind -> example messages (all languages): an emergency told in words no pattern knows.
    emergency_examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    threshold: float = 0.20
    emergency_threshold: float = 0.20
    _index: _Index = field(init=False, repr=False)  # every example, and title + keywords
    _doc_topic: list[str] = field(init=False, repr=False)
    _topic_index: _Index = field(init=False, repr=False)  # a topic's examples together
    _languages: _Index = field(init=False, repr=False)

    def __post_init__(self) -> None:
        documents: list[tuple[str, Counter[str]]] = []
        together: list[tuple[str, Counter[str]]] = []
        corpus: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        groups: list[tuple[str, list[str]]] = []
        for topic in self.topics.values():
            for lang in LANGUAGES:
                texts = [
                    *topic.examples[lang],
                    " ".join((topic.titles[lang], *topic.keywords[lang])),
                ]
                groups.append((topic.id, texts))
                corpus[lang] += [*texts, topic.answers[lang]]
        groups += [(_OFF_TOPIC, list(texts)) for texts in self.off_topic.values() if texts]
        kinds = {e.kind for e in self.emergencies}
        groups += [
            (_EMERGENCY_CLASS + kind, list(texts))
            for kind, texts in self.emergency_examples.items()
            if texts and kind in kinds
        ]
        for topic_id, texts in groups:
            for text in texts:
                documents.append((topic_id, _features(normalize(text), content_only=True)))
            joined = normalize(" ".join(texts))
            together.append((topic_id, _features(joined, content_only=True)))
        self._index = _Index(documents)
        self._doc_topic = [topic_id for topic_id, _ in documents]
        self._topic_index = _Index(together)
        self._languages = _Index(
            [(lang, _features(normalize(" ".join(texts)))) for lang, texts in corpus.items()]
        )

    def quick_replies(self) -> list[Topic]:
        return sorted((t for t in self.topics.values() if t.quick_reply), key=lambda t: t.order)

    def language_of(self, text: str, default: str = "fi") -> str:
        """The language ``text`` is written in, of fi/sv/en; ``default`` when unclear."""
        scores = self._languages.scores(_features(normalize(text)))
        if not scores:
            return default
        ranked = sorted(scores.items(), key=lambda item: -item[1])
        best, score = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        if score < 0.05 or score - second < 0.01:
            return default
        return self._languages.keys[best]

    def understand(self, text: str, default_lang: str = "fi", *, safety: bool = True) -> Match:
        """What the bot makes of one message: emergency, handoff, a topic, or unknown.

        ``safety=False`` leaves emergencies out: what else the message asks about, for the
        answer that follows an emergency's.
        """
        normalized = normalize(text)
        lang = self.language_of(normalized, default_lang)
        for emergency in self.emergencies if safety else ():
            if emergency.matches(normalized):
                return Match("emergency", lang, emergency=emergency, score=1.0)
        for patterns in self.handoff.values():
            if any(p.search(normalized) for p in patterns):
                return Match("handoff", lang, score=1.0)
        words, letters = self._index.known_share(normalized)
        if words < _LEAST_KNOWN[0] and letters < _LEAST_KNOWN[1]:
            return Match("unknown", lang)  # not guessed at, nor taken for an emergency
        features = _features(normalized, content_only=True)
        best_doc: dict[str, float] = {}
        for doc, score in self._index.scores(features).items():
            topic_id = self._doc_topic[doc]
            if score > best_doc.get(topic_id, 0.0):
                best_doc[topic_id] = score
        whole: dict[str, float] = {}
        for doc, score in self._topic_index.scores(features).items():
            topic_id = self._topic_index.keys[doc]
            whole[topic_id] = max(whole.get(topic_id, 0.0), score)
        by_topic = {
            t: _BEST_DOCUMENT * best_doc.get(t, 0.0) + (1 - _BEST_DOCUMENT) * whole.get(t, 0.0)
            for t in best_doc.keys() | whole.keys()
        }
        ranked = sorted(by_topic.items(), key=lambda item: -item[1])
        said = _says_something(normalized)
        if safety and said and ranked and ranked[0][0].startswith(_EMERGENCY_CLASS):
            # Closest to the examples of an emergency: safety first, as with the patterns.
            kind, score = ranked[0][0][len(_EMERGENCY_CLASS) :], ranked[0][1]
            emergency = next(e for e in self.emergencies if e.kind == kind)
            if score >= self.emergency_threshold and not emergency.cancelled(normalized):
                return Match("emergency", lang, emergency=emergency, score=score)
        ranked = [item for item in ranked if not item[0].startswith(_EMERGENCY_CLASS)]
        preferred = {
            t.id for t in self.topics.values() if any(p.search(normalized) for p in t.prefer)
        }
        if preferred:
            ranked = sorted(
                ((t, score + _PREFERRED * (t in preferred)) for t, score in ranked),
                key=lambda item: -item[1],
            )
        if not ranked or ranked[0][1] < self.threshold or ranked[0][0] == _OFF_TOPIC:
            near = tuple(item for item in ranked if item[0] != _OFF_TOPIC)[:3]
            return Match("unknown", lang, score=ranked[0][1] if ranked else 0.0, alternatives=near)
        best, score = ranked[0]
        ranked = [item for item in ranked if item[0] != _OFF_TOPIC]
        return Match(
            "topic", lang, topic=self.topics[best], score=score, alternatives=tuple(ranked[1:4])
        )


# --- loading --------------------------------------------------------------------------------


class _Reader(TomlReader):
    error_class = KnowledgeError

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "expected a non-empty text")
        return value.strip()

    def per_language(self, table: Mapping[str, Any], key: str) -> dict[str, str]:
        values = self.table(self.required(table, "", key), key)
        return {lang: self.text(values.get(lang), f"{key}.{lang}") for lang in LANGUAGES}

    def texts(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(key, "expected a list of texts")
        return tuple(self.text(v, f"{key}[{i}]") for i, v in enumerate(value))

    def actions(self, value: object, key: str) -> tuple[LocalAction, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(key, "expected at least one [[actions]] entry")
        result = []
        for i, raw in enumerate(value):
            where = f"{key}[{i}]"
            entry = self.table(raw, where)
            self.known(entry, where, {"kind", "value", "label"})
            kind = self.required(entry, where, "kind")
            if kind not in ("link", "phone"):
                raise self.error(f"{where}.kind", "expected 'link' or 'phone'")
            # One value for every language, or one per language (a page in each).
            raw_value = self.required(entry, where, "value")
            if isinstance(raw_value, dict):
                values = self.per_language(entry, "value")
            else:
                text = self.text(raw_value, f"{where}.value")
                values = dict.fromkeys(LANGUAGES, text)
            for lang, val in values.items():
                key = f"{where}.value" + (f".{lang}" if isinstance(raw_value, dict) else "")
                if kind == "link" and not val.startswith("https://"):
                    raise self.error(key, "a link must be an https:// URL")
                if kind == "phone" and not re.fullmatch(r"\+?[0-9][0-9 ]{2,20}", val):
                    raise self.error(key, "a phone number is digits and spaces")
            labels = self.per_language(entry, "label")
            result.append(LocalAction(ActionKind(kind), values, labels))
        return tuple(result)

    def patterns(self, value: object, key: str) -> tuple[re.Pattern[str], ...]:
        compiled = []
        for i, text in enumerate(self.texts(value, key)):
            try:
                compiled.append(re.compile(_near(text)))
            except re.error as exc:
                raise self.error(f"{key}[{i}]", f"not a valid regular expression: {exc}") from None
        return tuple(compiled)


def _near(pattern: str) -> str:
    """``A ~ B``: words starting with A and with B at most four words apart, in either order.

    A and B are regular expressions for the beginnings of words (``(huul|kurk) ~ turpo``).
    Any other pattern is used as it is.
    """
    if " ~ " not in pattern:
        return pattern
    first, second = (part.strip() for part in pattern.split(" ~ ", 1))
    gap = r"\w*(?: \w+){0,4} "
    return rf"\b(?:{first}){gap}(?:{second})|\b(?:{second}){gap}(?:{first})"


def _topic(topic_id: str, raw: dict[str, Any], reader: _Reader) -> Topic:
    flags = ("quick_reply", "hours", "nurse_chat")
    reader.known(raw, "", {"order", "title", *flags, *LANGUAGES, "actions", "prefer"})
    order = raw.get("order", 1000)
    if not isinstance(order, int):
        raise reader.error("order", "expected a whole number")
    given = {flag: raw.get(flag, flag == "quick_reply") for flag in flags}
    for flag, value in given.items():
        if not isinstance(value, bool):
            raise reader.error(flag, "expected true or false")
    answers, examples, keywords = {}, {}, {}
    for lang in LANGUAGES:
        section = reader.table(reader.required(raw, "", lang), lang)
        reader.known(section, lang, {"answer", "examples", "keywords"})
        answers[lang] = reader.text(reader.required(section, lang, "answer"), f"{lang}.answer")
        examples[lang] = reader.texts(section.get("examples"), f"{lang}.examples")
        keywords[lang] = reader.texts(section.get("keywords"), f"{lang}.keywords")
    return Topic(
        id=topic_id,
        order=order,
        quick_reply=given["quick_reply"],
        titles=reader.per_language(raw, "title"),
        answers=answers,
        examples=examples,
        keywords=keywords,
        actions=reader.actions(raw.get("actions"), "actions"),
        hours=given["hours"],
        nurse_chat=given["nurse_chat"],
        prefer=_prefer(raw, reader),
    )


def _prefer(raw: dict[str, Any], reader: _Reader) -> tuple[re.Pattern[str], ...]:
    table = reader.table(raw.get("prefer", {}), "prefer")
    reader.known(table, "prefer", set(LANGUAGES))
    return tuple(p for lang in table for p in reader.patterns(table[lang], f"prefer.{lang}"))


def _emergencies(raw: dict[str, Any], reader: _Reader) -> tuple[Emergency, ...]:
    reader.known(raw, "", {"emergencies"})
    entries = raw.get("emergencies")
    if not isinstance(entries, list) or not entries:
        raise reader.error("emergencies", "expected [[emergencies]] entries")
    result = []
    for i, entry in enumerate(entries):
        where = f"emergencies[{i}]"
        entry = reader.table(entry, where)
        reader.known(entry, where, {"kind", "patterns", "answer", "actions", "unless", "acute"})
        patterns_raw = reader.table(reader.required(entry, where, "patterns"), f"{where}.patterns")
        extra = {}
        for name in ("unless", "acute"):
            table = reader.table(entry.get(name, {}), f"{where}.{name}")
            extra[name] = tuple(
                p
                for lang in LANGUAGES
                if lang in table
                for p in reader.patterns(table[lang], f"{where}.{name}.{lang}")
            )
        result.append(
            Emergency(
                kind=reader.text(reader.required(entry, where, "kind"), f"{where}.kind"),
                patterns={
                    lang: reader.patterns(patterns_raw.get(lang), f"{where}.patterns.{lang}")
                    for lang in LANGUAGES
                },
                answers=reader.per_language(entry, "answer"),
                actions=reader.actions(entry.get("actions"), f"{where}.actions"),
                unless=extra["unless"],
                acute=extra["acute"],
            )
        )
    return tuple(result)


def _handoff(raw: dict[str, Any], reader: _Reader) -> dict[str, tuple[re.Pattern[str], ...]]:
    reader.known(raw, "", {"patterns"})
    table = reader.table(reader.required(raw, "", "patterns"), "patterns")
    return {lang: reader.patterns(table.get(lang), f"patterns.{lang}") for lang in LANGUAGES}


_LOADED: dict[tuple[object, ...], KnowledgeBase] = {}


def load_knowledge(folder: Path | None = None, threshold: float | None = None) -> KnowledgeBase:
    """Read and check the knowledge base in ``folder`` (by default the shipped one).

    Building the index takes a fifth of a second; an unchanged folder (same files, sizes and
    modification times) is read once per process. The result is never modified.
    """
    folder = DEFAULT_FOLDER if folder is None else folder
    if not folder.is_dir():
        raise KnowledgeError(f"{folder}: no such folder")
    key = (
        str(folder.resolve()),
        threshold,
        tuple(
            (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("*.toml"))
        ),
    )
    cached = _LOADED.get(key)
    if cached is None:
        cached = _LOADED[key] = _load(folder, threshold)
    return cached


def _load(folder: Path, threshold: float | None) -> KnowledgeBase:
    topics: dict[str, Topic] = {}
    emergencies: tuple[Emergency, ...] = ()
    handoff: dict[str, tuple[re.Pattern[str], ...]] | None = None
    off_topic: dict[str, tuple[str, ...]] = {}
    emergency_examples: dict[str, tuple[str, ...]] = {}
    for path in sorted(folder.glob("*.toml")):
        name = path.name
        reader = _Reader(name)
        raw = read_toml(path, KnowledgeError)
        if path.stem == "_safety":
            emergencies = _emergencies(raw, reader)
        elif path.stem == "_handoff":
            handoff = _handoff(raw, reader)
        elif path.stem == "_emergency_examples":
            table = reader.table(reader.required(raw, "", "examples"), "examples")
            emergency_examples = {
                kind: tuple(
                    text
                    for lang in LANGUAGES
                    if lang in entry
                    for text in reader.texts(entry[lang], f"examples.{kind}.{lang}")
                )
                for kind, entry in table.items()
                if isinstance(entry, dict)
            }
        elif path.stem == _OFF_TOPIC:
            reader.known(raw, "", set(LANGUAGES))
            off_topic = {lang: reader.texts(raw[lang], lang) for lang in LANGUAGES if lang in raw}
        elif _ID.fullmatch(path.stem):
            topics[path.stem] = _topic(path.stem, raw, reader)
        else:
            raise KnowledgeError(
                "a topic file's name must be an id (a-z, 0-9, _)", source=path.name
            )
    if not topics:
        raise KnowledgeError(f"{folder}: no topic files (*.toml)")
    if not emergencies:
        raise KnowledgeError(f"{folder}: _safety.toml is missing: the bot must know emergencies")
    if handoff is None:
        raise KnowledgeError(f"{folder}: _handoff.toml is missing")
    unknown = set(emergency_examples) - {e.kind for e in emergencies}
    if unknown:
        raise KnowledgeError(
            f"examples of an emergency kind _safety.toml does not have: {sorted(unknown)}",
            source="_emergency_examples.toml",
        )
    kb = KnowledgeBase(topics, emergencies, handoff, off_topic, emergency_examples)
    if threshold is not None:
        kb.threshold = threshold
    return kb
