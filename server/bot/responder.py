"""The built-in advice bot: a participant of the hub, like a professional.

The bot is a professional account flagged ``bot`` in team ``bot``, which assigns
automatically. A client's ``bot.start`` opens a conversation in that team; the hub assigns it
to the bot as it would to a nurse, and the bot answers through the hub's own path
(:meth:`Hub.send_message`), so its answers are stored, sequenced and resumable like any other
message. What it answers is decided by :func:`compose`, a pure function of the knowledge base
and the client's text.

- An emergency is answered first, whatever else the message says (112; the crisis helpline;
  the Poison Information Centre), with the numbers as actions.
- A topic is answered with its text and the links or numbers where the client can act. The
  opening hours are computed for today; an answer that depends on the nurses' chat (symptoms,
  reaching a nurse) offers the handoff while it is open, and says when it opens while not.
- When the bot is not sure it says so and offers the topics as quick replies, rather than
  guess.
- Asking for a person is answered with how to reach a nurse (the identified chat opens from
  the start page within service hours; the phone service and 116117 otherwise).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from protocol.extras import MAX_ACTIONS, MAX_QUICK_REPLIES, Action, BotExtras, QuickReply
from protocol.messages import ConversationStateChanged, Error, Message, MessageNew, Welcome
from server.bot.accounts import BOT_TEAM, bot_account, bot_team
from server.bot.knowledge import LANGUAGES, KnowledgeBase, Match, Topic, load_knowledge, normalize
from server.bot.today import Today
from server.bus.base import Envelope
from server.core.clock import CLOCK
from server.core.ids import new_id
from server.core.model import Professional
from server.core.texts import HELSINKI
from server.hub.hub import HUB, Actor, Hub
from server.intake.hours import load_hours
from server.intake.reception import RECEPTION
from server.settings import SETTINGS
from server.storage.base import STORAGE

__all__ = ["BotReply", "BotResponder", "bot_context", "compose", "greeting"]

log = logging.getLogger("kanava.bot")


_GREETING = {
    "fi": "Hei! Olen Kanavan neuvontabotti, en ihminen. Vastaan yleisiin kysymyksiin "
    "terveysasemien palveluista. En tee diagnooseja enkä anna lääkeannoksia. "
    "Hätätilanteessa soita 112. Kirjoita kysymyksesi tai valitse aihe.",
    "sv": "Hej! Jag är Kanavas rådgivningsbot, inte en människa. Jag svarar på allmänna "
    "frågor om hälsostationernas tjänster. Jag ställer inga diagnoser och ger inga "
    "läkemedelsdoser. I nödsituationer ring 112. Skriv din fråga eller välj ett ämne.",
    "en": "Hello! I am Kanava's advice bot, not a person. I answer general questions about "
    "the health stations' services. I do not diagnose and I do not give medicine doses. "
    "In an emergency, call 112. Write your question or choose a topic.",
}
_NOT_UNDERSTOOD = {
    "fi": "En ole varma, mitä tarkoitat. Voisitko kertoa toisin sanoin, tai valitse aihe "
    "alta? Hätätilanteessa soita 112.",
    "sv": "Jag är inte säker på vad du menar. Kan du säga det med andra ord, eller välja ett "
    "ämne nedan? I nödsituationer ring 112.",
    "en": "I am not sure what you mean. Could you put it another way, or choose a topic "
    "below? In an emergency, call 112.",
}
_HANDOFF_START = {
    "fi": "Selvä, ohjaan sinut hoitajan chattiin. Vastaa ensin muutamaan kysymykseen ja "
    "tunnistaudu. Hoitaja näkee myös tämän keskustelun.",
    "sv": "Okej, jag för dig vidare till skötarens chatt. Svara först på några frågor och "
    "identifiera dig. Skötaren ser också det här samtalet.",
    "en": "All right, I will take you to the nurse's chat. First answer a few questions and "
    "identify yourself. The nurse will also see this conversation.",
}
_HANDOFF_CLOSED = {
    "fi": "Hoitajan chat ei ota nyt uusia keskusteluja. {closed} Kiireellisissä asioissa "
    "soita Päivystysapuun 116117, hätätilanteessa 112. Koululaiset voivat kääntyä "
    "kouluterveydenhoitajan puoleen. Voit kysyä minulta yleisiä asioita.",
    "sv": "Skötarens chatt tar inte emot nya samtal just nu. {closed} I brådskande ärenden "
    "ring Jourhjälpen 116117, i nödsituationer 112. Elever kan vända sig till "
    "skolhälsovårdaren. Du kan fråga mig om allmänna saker.",
    "en": "The nurse's chat is not taking new chats now. {closed} For urgent matters call "
    "the Medical Helpline 116117, in an emergency 112. Pupils can turn to their school "
    "health nurse. You can ask me general questions.",
}
_HANDOFF = {
    "fi": "Hoitajan kanssa voit keskustella tunnistautuneena chatissa terveysaseman "
    "aukioloaikoina: aloita uusi keskustelu etusivulta ja valitse oma asiasi. Voit myös "
    "soittaa terveysasemien puhelinpalveluun. Kiireellisissä asioissa soita "
    "Päivystysapuun 116117, hätätilanteessa 112.",
    "sv": "Med en skötare kan du chatta identifierad under hälsostationernas öppettider: "
    "börja ett nytt samtal på startsidan och välj ditt ärende. Du kan också ringa "
    "hälsostationernas telefontjänst. I brådskande ärenden ring Jourhjälpen 116117, i "
    "nödsituationer 112.",
    "en": "You can chat with a nurse, identified, during the health stations' opening "
    "hours: start a new chat from the start page and choose your matter. You can also call "
    "the health stations' phone service. For urgent matters call the Medical Helpline "
    "116117, in an emergency 112.",
}


_THANKS = {
    "fi": re.compile(
        r"^(ok |okei |selvä |hyvä )?(kiitos|kiitti|kiitoksia|kiitos paljon|kiitti paljon)\b"
    ),
    "sv": re.compile(r"^(ok |okej |bra )?(tack|tackar|tack så mycket)\b"),
    "en": re.compile(r"^(ok |okay |great )?(thanks|thank you|thx|cheers)\b"),
}
_WELCOME = {
    "fi": "Ole hyvä! Voit kysyä lisää milloin vain. Hätätilanteessa soita 112.",
    "sv": "Varsågod! Du kan fråga mer när du vill. I nödsituationer ring 112.",
    "en": "You are welcome! Ask more at any time. In an emergency, call 112.",
}
_HELLO = re.compile(r"^(hei|heippa|moi|moikka|terve|päivää|hej|hejsan|god dag|hello|hi|hey)$")


@dataclass(frozen=True)
class BotReply:
    """One message of the bot: text, quick replies (buttons), actions (links, numbers)."""

    text: str
    lang: str
    quick_replies: tuple[QuickReply, ...] = ()
    actions: tuple[Action, ...] = ()
    label: str = ""  # what the bot understood: emergency:112, a topic id, handoff, unknown
    # After an emergency's answer: the answer to what else the message asked, if anything
    # (someone asking for the records of last year's heart attack still gets them).
    follow_up: BotReply | None = None

    def extras(self) -> BotExtras:
        """The buttons and links sent with the text (an empty tuple: none on the wire)."""
        return BotExtras(self.quick_replies or None, self.actions or None)


def _quick_replies(
    kb: KnowledgeBase, lang: str, first: tuple[str, ...] = ()
) -> tuple[QuickReply, ...]:
    topics = [kb.topics[t] for t in first if t in kb.topics]
    topics += [t for t in kb.quick_replies() if t not in topics]
    return tuple(QuickReply(t.id, t.titles[lang]) for t in topics[:MAX_QUICK_REPLIES])


def _by_title(kb: KnowledgeBase, text: str) -> tuple[Topic, str] | None:
    """A quick reply pressed: its label names a topic exactly (in any language)."""
    wanted = text.strip().casefold()
    for topic in kb.topics.values():
        for lang in LANGUAGES:
            if topic.titles[lang].casefold() == wanted:
                return topic, lang
    return None


def greeting(kb: KnowledgeBase, lang: str) -> BotReply:
    lang = lang if lang in LANGUAGES else "fi"
    return BotReply(_GREETING[lang], lang, _quick_replies(kb, lang), label="greeting")


def compose(kb: KnowledgeBase, text: str, lang: str = "fi", today: Today | None = None) -> BotReply:
    """The bot's answer to one client message; ``lang`` is the conversation's language.

    ``today`` is the service at this moment: its hours, and whether a request for a person can
    start the intake now (``None``: hours unknown, so the bot states none and tells how to
    reach a nurse).
    """
    lang = lang if lang in LANGUAGES else "fi"
    plain = normalize(text)
    match = kb.understand(text, default_lang=lang)
    if match.kind != "emergency":  # safety first: nothing below may hide an emergency
        if _HELLO.match(plain):
            return greeting(kb, lang)
        for thanks_lang, thanks in _THANKS.items():
            if thanks.match(plain) and len(plain.split()) <= 4:
                return BotReply(_WELCOME[thanks_lang], thanks_lang, label="thanks")
        pressed = _by_title(kb, text)
        if pressed is not None:
            topic, pressed_lang = pressed
            match = Match("topic", pressed_lang, topic=topic, score=1.0)
    lang = match.lang
    if match.kind == "emergency" and match.emergency is not None:
        # Its answer and numbers first; then the answer to what else the message asked.
        also = kb.understand(text, default_lang=lang, safety=False)
        follow_up = None
        if also.kind == "topic" and also.topic is not None:
            follow_up = _answer(also.topic, lang, text, today)
        emergency = match.emergency
        return BotReply(
            emergency.answers[lang],
            lang,
            actions=tuple(a.in_language(lang) for a in emergency.actions),
            label=match.label,
            follow_up=follow_up,
        )
    if match.kind == "topic" and match.topic is not None:
        return _answer(match.topic, lang, text, today)
    if match.kind == "handoff" and today is not None and today.can_hand_over:
        button = today.handoff_action(lang)
        return BotReply(_HANDOFF_START[lang], lang, actions=(button,), label="handoff")
    if match.kind == "handoff" and today is not None and today.handoff:
        text = _HANDOFF_CLOSED[lang].format(closed=today.chat_now(lang)).replace("  ", " ")
        return BotReply(text, lang, _quick_replies(kb, lang), label="handoff_closed")
    if match.kind == "handoff":
        nurse = kb.topics.get("contact_nurse")
        actions = tuple(a.in_language(lang) for a in nurse.actions) if nurse else ()
        return BotReply(_HANDOFF[lang], lang, actions=actions, label="handoff")
    near = tuple(topic_id for topic_id, _ in match.alternatives)
    return BotReply(
        _NOT_UNDERSTOOD[lang], lang, _quick_replies(kb, lang, first=near), label="unknown"
    )


def _answer(topic: Topic, lang: str, text: str, today: Today | None) -> BotReply:
    """A topic's answer and where to act; with the hours, and the nurses' chat, of today."""
    body = topic.answers[lang]
    actions = [a.in_language(lang) for a in topic.actions]
    if today is not None and topic.hours:
        body = f"{today.hours_text(lang, text, normalize(text))} {body}"
    elif today is not None and topic.nurse_chat:
        body = f"{body} {today.nurse_text(lang)}"
    if today is not None and (topic.hours or topic.nurse_chat):
        if today.can_hand_over:
            actions.insert(0, today.handoff_action(lang))
        elif topic.nurse_chat and not today.chat_open:
            actions += today.helpline_actions(lang)
    return BotReply(body, lang, actions=_distinct(actions), label=topic.id)


def _distinct(actions: Iterable[Action]) -> tuple[Action, ...]:
    """Each place to act once (the same number from the topic and the hours), at most five."""
    seen: set[tuple[str, str]] = set()
    result = []
    for action in actions:
        key = (action.kind.value, action.url)
        if key not in seen:
            seen.add(key)
            result.append(action)
    return tuple(result[:MAX_ACTIONS])


@dataclass(eq=False)  # subscribers are kept in sets: hashed by identity
class BotResponder:
    """The bot's connection to the hub: it receives its chats' events and answers them."""

    hub: Hub
    kb: KnowledgeBase
    pro: Professional
    # The service at this moment: the hours, the time, whether a handoff can start the intake.
    today: Callable[[], Today] | None = None
    _languages: dict[str, str] = field(default_factory=dict)  # conversation -> language
    _greeted: set[str] = field(default_factory=set)

    @property
    def actor(self) -> Actor:
        return Actor.for_professional(self.pro)

    @property
    def subscriber_id(self) -> str:
        return "bot:" + self.pro.id

    # The Subscriber interface: called by the bus, must not block.
    def deliver(self, envelope: Envelope) -> None:
        msg = envelope.message
        if isinstance(msg, MessageNew):
            m = msg.message
            if m.sender_role == "client":
                lang = self._languages.get(m.conversation_id, "fi")
                today = self.today() if self.today is not None else None
                self._send(m.conversation_id, compose(self.kb, m.text, lang, today))
        elif isinstance(msg, ConversationStateChanged):
            view = msg.conversation
            mine = view.professional is not None and view.professional.id == self.pro.id
            if mine and view.state == "assigned":
                self._languages[view.conversation_id] = view.language or "fi"
                if view.conversation_id not in self._greeted and view.last_seq == 0:
                    self._greeted.add(view.conversation_id)
                    self._send(view.conversation_id, greeting(self.kb, view.language or "fi"))
            elif view.state == "closed" or not mine:
                self._languages.pop(view.conversation_id, None)
                self._greeted.discard(view.conversation_id)
        elif isinstance(msg, Welcome):
            for view in msg.conversations:  # chats from before a restart: already greeted
                self._languages[view.conversation_id] = view.language or "fi"
                self._greeted.add(view.conversation_id)

    def _send(self, conversation_id: str, reply: BotReply) -> None:
        self._send_one(conversation_id, reply)
        if reply.follow_up is not None:
            self._send_one(conversation_id, reply.follow_up)

    def _send_one(self, conversation_id: str, reply: BotReply) -> None:
        def on_reply(answer: Message) -> None:
            if isinstance(answer, Error):
                log.warning("bot answer in %s refused: %s", conversation_id, answer.code)

        try:
            self.hub.send_message(
                self.actor,
                conversation_id,
                new_id("b"),
                reply.text,
                on_reply,
                extras=reply.extras(),
            )
        except Exception:
            # The chat may have closed meanwhile; the bot never takes the server down.
            log.exception("the bot could not answer in %s", conversation_id)


async def bot_context(app: web.Application) -> AsyncIterator[None]:
    """Load the knowledge base (a bad file stops the start) and connect the bot to the hub."""
    settings = app[SETTINGS]
    if not settings.bot:
        yield
        return
    kb = load_knowledge(settings.knowledge_dir)
    hub, storage = app[HUB], app[STORAGE]
    if not hub.has_team(BOT_TEAM):
        team = bot_team()
        await storage.save_team(team)
        hub.add_team(team)
    pro = bot_account()
    await storage.save_professional(pro)
    hub.add_professional(pro)  # keeps the chats the bot had before a restart
    # The same hours the intake decides with, at the server's clock, in Helsinki time.
    reception = app.get(RECEPTION)
    hours = reception.flow.hours if reception is not None else load_hours(settings.hours_file)
    handoff = reception is not None and settings.intake_required
    clock = app[CLOCK]

    def today() -> Today:
        now = datetime.fromtimestamp(clock.now_ms() / 1000, HELSINKI)
        return Today(hours, now, handoff=handoff, always_open=settings.always_open)

    responder = BotResponder(hub, kb, pro, today)
    await hub.connect_professional(pro, responder)
    try:
        yield
    finally:
        hub.disconnect_professional(pro, responder)
