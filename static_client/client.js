// The citizen's chat page. First the intake: a topic, the server's questions one at a time
// (red flags first: an emergency ends in "call 112 now"), identification, the health station.
// Then the chat: wait in the queue, chat, resume after a reload or a dropped connection.
//
// The server decides every step; this page only shows the step it was sent and sends back
// what the person chose, so a refused answer is explained with the server's own words.
// Tokens live in sessionStorage, so only this tab can resume the intake or the chat.
// A server that does not require the intake (`intake_required: false` in /api/service) gets
// the plain name-and-topic form instead.

import {
  Connection,
  MessageList,
  Outbox,
  TypingNotifier,
  el,
  newMsgId,
  phoneLink,
} from "/static/kanava.js";

const KEY = {
  token: "kanava.client.token",
  conversation: "kanava.client.conversation",
  outbox: "kanava.client.outbox",
  ui: "kanava.client.ui",
  intake: "kanava.client.intake", // the intake's token, for intake.resume
  topic: "kanava.client.topic",
  openId: "kanava.client.open_id", // a retried intake.start returns the chat it queued
  botToken: "kanava.client.bot_token", // the bot chat an intake hands over to a nurse
};

const LANGS = ["fi", "sv", "en"];
const ENDS = new Set(["emergency", "bot", "guidance", "closed"]);

const TEXT = {
  fi: {
    tagline: "Chat terveysaseman kanssa",
    uiLanguage: "Kieli",
    loading: "Ladataan…",
    serviceError: "Palveluun ei saada yhteyttä. Yritetään uudelleen…",
    closedTitle: "Chat on nyt suljettu",
    topicsTitle: "Mitä asiasi koskee?",
    topicsIntro:
      "Vastaa ensin muutamaan kysymykseen. Sen jälkeen pääset jonoon, ja hoitaja vastaa sinulle tässä ikkunassa.",
    emergencyNote: "Hätätilanteessa soita heti",
    progress: (i, n) => `Kysymys ${i}/${n}`,
    optional: "Vapaaehtoinen: voit jättää tämän tyhjäksi.",
    next: "Seuraava",
    offline: "Yhteys on katki. Odota hetki ja yritä uudelleen.",
    emergencyTitle: "Soita heti 112",
    emergencyWhy: "Vastauksesi perusteella:",
    call: (n) => `Soita ${n}`,
    identifyTitle: "Tunnistautuminen",
    identifyButton: "Tunnistaudu",
    anonymousButton: "Jatka nimettömänä",
    identifyUnavailable: "Tunnistautuminen ei ole nyt käytettävissä. Voit jatkaa nimettömänä.",
    identifyWaiting: "Tunnistaudu avautuneessa ikkunassa. Sen jälkeen jatkat tässä.",
    popupBlocked: "Tunnistautumisikkuna ei auennut.",
    popupLink: "Avaa tunnistautuminen",
    identifyFailed: "Tunnistautuminen ei onnistunut. Voit yrittää uudelleen.",
    stationTitle: "Terveysasema",
    stationPlaceholder: "Valitse terveysasema",
    stationRequired: "Valitse terveysasema listasta.",
    stationUnknown: "Tätä terveysasemaa ei löytynyt. Valitse toinen.",
    continue: "Jatka",
    botTitle: "Neuvontabotti",
    botStart: "Keskustele neuvontabotin kanssa",
    handoffIntro: "Valitse, mitä asiasi koskee. Hoitaja näkee myös keskustelusi neuvontabotin kanssa.",
    backToBot: "Palaa neuvontabotin keskusteluun",
    botOffer:
      "Yleinen kysymys, esimerkiksi aukioloajoista tai reseptin uusimisesta? Neuvontabotti vastaa heti, myös nimettömänä.",
    botName: "Neuvontabotti (botti)",
    withBot: "Keskustelet neuvontabotin kanssa. Se on botti, ei ihminen.",
    guidanceTitle: "Ohjeet",
    numbersTitle: "Puhelinnumerot",
    startOver: "Aloita alusta",
    intakeExpired: "Aiemmat vastauksesi eivät ole enää voimassa. Aloita alusta.",
    intakeRestarted: "Aiemmat vastauksesi eivät olleet enää voimassa, joten kysymykset alkavat alusta.",
    waiting: "Odota hetki…",
    startTitle: "Aloita keskustelu",
    startIntro: "Kirjoita nimesi ja asiasi. Hoitaja vastaa sinulle tässä ikkunassa.",
    nameLabel: "Nimesi",
    topicLabel: "Mitä asiasi koskee?",
    languageLabel: "Keskustelun kieli",
    emergency: "Hätätilanteessa soita 112.",
    startButton: "Aloita keskustelu",
    chatTitle: "Keskustelu",
    messageLabel: "Viesti",
    send: "Lähetä",
    end: "Lopeta keskustelu",
    endQuestion: "Lopetetaanko keskustelu?",
    endYes: "Kyllä, lopeta",
    endNo: "Peruuta",
    ended: "Keskustelu on päättynyt.",
    newChat: "Aloita uusi keskustelu",
    you: "Sinä",
    sending: "Lähetetään…",
    delivered: "Toimitettu",
    read: "Luettu",
    failed: "Ei lähetetty",
    connecting: "Yhdistetään…",
    reconnecting: "Yhteys katkesi. Yhdistetään uudelleen… Viestisi lähetetään, kun yhteys palaa.",
    queued: (pos, len) =>
      pos ? `Olet jonossa sijalla ${pos}/${len}. Hoitaja vastaa pian – voit jo kirjoittaa viestisi.`
          : "Odotat vuoroasi. Voit jo kirjoittaa viestisi.",
    wait: (low, high) => `Arvioitu odotus ${low}–${high} min`,
    requeued: "Hoitajan yhteys katkesi, joten olet taas jonon kärjessä.",
    with: (name, title) => `Keskustelet: ${name}${title ? `, ${title}` : ""}`,
    transferred: (name) => `Keskustelu siirrettiin: ${name}`,
    closedBy: { client: "Lopetit keskustelun.", professional: "Hoitaja lopetti keskustelun." },
    typing: (name) => `${name} kirjoittaa…`,
    professional: "Hoitaja",
    titles: { nurse: "sairaanhoitaja", doctor: "lääkäri" },
    notFound: "Aiempaa keskustelua ei löytynyt. Voit aloittaa uuden.",
    unknownTeam: "Tätä terveysasemaa ei löytynyt. Tarkista osoite.",
    tooLong: "Viesti on liian pitkä.",
    closedError: "Keskustelu on päättynyt.",
    genericError: "Jokin meni vikaan. Yritä uudelleen.",
  },
  sv: {
    tagline: "Chatta med din hälsostation",
    uiLanguage: "Språk",
    loading: "Laddar…",
    serviceError: "Tjänsten svarar inte. Vi försöker igen…",
    closedTitle: "Chatten är stängd just nu",
    topicsTitle: "Vad gäller ditt ärende?",
    topicsIntro:
      "Svara först på några frågor. Sedan kommer du in i kön, och en skötare svarar dig i det här fönstret.",
    emergencyNote: "I nödsituationer ring genast",
    progress: (i, n) => `Fråga ${i} av ${n}`,
    optional: "Frivillig: du kan lämna den tom.",
    next: "Nästa",
    offline: "Förbindelsen är bruten. Vänta en stund och försök igen.",
    emergencyTitle: "Ring 112 genast",
    emergencyWhy: "Utifrån dina svar:",
    call: (n) => `Ring ${n}`,
    identifyTitle: "Identifiering",
    identifyButton: "Identifiera dig",
    anonymousButton: "Fortsätt anonymt",
    identifyUnavailable: "Identifieringen är inte tillgänglig just nu. Du kan fortsätta anonymt.",
    identifyWaiting: "Identifiera dig i fönstret som öppnades. Sedan fortsätter du här.",
    popupBlocked: "Identifieringsfönstret öppnades inte.",
    popupLink: "Öppna identifieringen",
    identifyFailed: "Identifieringen lyckades inte. Du kan försöka igen.",
    stationTitle: "Hälsostation",
    stationPlaceholder: "Välj hälsostation",
    stationRequired: "Välj en hälsostation i listan.",
    stationUnknown: "Hälsostationen hittades inte. Välj en annan.",
    continue: "Fortsätt",
    botTitle: "Rådgivningsboten",
    botStart: "Chatta med rådgivningsboten",
    handoffIntro: "Välj vad ditt ärende gäller. Skötaren ser också ditt samtal med rådgivningsboten.",
    backToBot: "Tillbaka till samtalet med rådgivningsboten",
    botOffer:
      "En allmän fråga, till exempel om öppettider eller förnyelse av recept? Rådgivningsboten svarar genast, också anonymt.",
    botName: "Rådgivningsboten (bot)",
    withBot: "Du chattar med rådgivningsboten. Den är en bot, inte en människa.",
    guidanceTitle: "Anvisningar",
    numbersTitle: "Telefonnummer",
    startOver: "Börja om",
    intakeExpired: "Dina tidigare svar gäller inte längre. Börja om från början.",
    intakeRestarted: "Dina tidigare svar gällde inte längre, så frågorna börjar från början.",
    waiting: "Ett ögonblick…",
    startTitle: "Börja chatta",
    startIntro: "Skriv ditt namn och ditt ärende. En skötare svarar dig i det här fönstret.",
    nameLabel: "Ditt namn",
    topicLabel: "Vad gäller ärendet?",
    languageLabel: "Chattens språk",
    emergency: "I nödsituationer ring 112.",
    startButton: "Börja chatta",
    chatTitle: "Chatt",
    messageLabel: "Meddelande",
    send: "Skicka",
    end: "Avsluta chatten",
    endQuestion: "Avsluta chatten?",
    endYes: "Ja, avsluta",
    endNo: "Avbryt",
    ended: "Chatten har avslutats.",
    newChat: "Börja en ny chatt",
    you: "Du",
    sending: "Skickas…",
    delivered: "Levererat",
    read: "Läst",
    failed: "Inte skickat",
    connecting: "Ansluter…",
    reconnecting: "Förbindelsen bröts. Ansluter igen… Dina meddelanden skickas när den är tillbaka.",
    queued: (pos, len) =>
      pos ? `Du är nummer ${pos} av ${len} i kön. En skötare svarar snart – du kan redan skriva.`
          : "Du väntar på din tur. Du kan redan skriva.",
    wait: (low, high) => `Beräknad väntetid ${low}–${high} min`,
    requeued: "Skötarens förbindelse bröts, så du är först i kön igen.",
    with: (name, title) => `Du chattar med ${name}${title ? `, ${title}` : ""}`,
    transferred: (name) => `Chatten flyttades till ${name}`,
    closedBy: { client: "Du avslutade chatten.", professional: "Skötaren avslutade chatten." },
    typing: (name) => `${name} skriver…`,
    professional: "Skötare",
    titles: { nurse: "sjukskötare", doctor: "läkare" },
    notFound: "Den tidigare chatten hittades inte. Du kan börja en ny.",
    unknownTeam: "Hälsostationen hittades inte. Kontrollera adressen.",
    tooLong: "Meddelandet är för långt.",
    closedError: "Chatten har avslutats.",
    genericError: "Något gick fel. Försök igen.",
  },
  en: {
    tagline: "Chat with your health station",
    uiLanguage: "Language",
    loading: "Loading…",
    serviceError: "The service does not answer. Trying again…",
    closedTitle: "The chat is closed now",
    topicsTitle: "What is your matter about?",
    topicsIntro:
      "First answer a few questions. Then you join the queue, and a nurse answers you in this window.",
    emergencyNote: "In an emergency call",
    progress: (i, n) => `Question ${i} of ${n}`,
    optional: "Optional: you may leave this empty.",
    next: "Next",
    offline: "The connection is down. Wait a moment and try again.",
    emergencyTitle: "Call 112 now",
    emergencyWhy: "Based on your answers:",
    call: (n) => `Call ${n}`,
    identifyTitle: "Identification",
    identifyButton: "Identify",
    anonymousButton: "Continue anonymously",
    identifyUnavailable: "Identification is not available right now. You can continue anonymously.",
    identifyWaiting: "Identify yourself in the window that opened. Then you continue here.",
    popupBlocked: "The identification window did not open.",
    popupLink: "Open the identification",
    identifyFailed: "Identification did not succeed. You can try again.",
    stationTitle: "Health station",
    stationPlaceholder: "Choose a health station",
    stationRequired: "Choose a health station from the list.",
    stationUnknown: "This health station was not found. Please choose another.",
    continue: "Continue",
    botTitle: "Advice bot",
    botStart: "Chat with the advice bot",
    handoffIntro: "Choose what your matter is about. The nurse will also see your chat with the advice bot.",
    backToBot: "Back to the chat with the advice bot",
    botOffer:
      "A general question, for example about opening hours or renewing a prescription? The advice bot answers at once, anonymously too.",
    botName: "Advice bot (bot)",
    withBot: "You are chatting with the advice bot. It is a bot, not a person.",
    guidanceTitle: "What to do",
    numbersTitle: "Phone numbers",
    startOver: "Start over",
    intakeExpired: "Your earlier answers are no longer valid. Please start over.",
    intakeRestarted: "Your earlier answers were no longer valid, so the questions start over.",
    waiting: "One moment…",
    startTitle: "Start a chat",
    startIntro: "Write your name and what your matter is about. A nurse answers you here.",
    nameLabel: "Your name",
    topicLabel: "What is it about?",
    languageLabel: "Language of the chat",
    emergency: "In an emergency call 112.",
    startButton: "Start chat",
    chatTitle: "Chat",
    messageLabel: "Message",
    send: "Send",
    end: "End chat",
    endQuestion: "End the chat?",
    endYes: "Yes, end it",
    endNo: "Cancel",
    ended: "The chat has ended.",
    newChat: "Start a new chat",
    you: "You",
    sending: "Sending…",
    delivered: "Delivered",
    read: "Read",
    failed: "Not sent",
    connecting: "Connecting…",
    reconnecting: "Connection lost. Reconnecting… Your messages will be sent when it is back.",
    queued: (pos, len) =>
      pos ? `You are number ${pos} of ${len} in the queue. A nurse answers soon – you can already write.`
          : "You are waiting for your turn. You can already write.",
    wait: (low, high) => `Estimated wait ${low}–${high} min`,
    requeued: "The nurse's connection dropped, so you are first in the queue again.",
    with: (name, title) => `You are chatting with ${name}${title ? `, ${title}` : ""}`,
    transferred: (name) => `The chat was transferred to ${name}`,
    closedBy: { client: "You ended the chat.", professional: "The nurse ended the chat." },
    typing: (name) => `${name} is typing…`,
    professional: "Nurse",
    titles: { nurse: "nurse", doctor: "doctor" },
    notFound: "The earlier chat was not found. You can start a new one.",
    unknownTeam: "This health station was not found. Check the address.",
    tooLong: "The message is too long.",
    closedError: "The chat has ended.",
    genericError: "Something went wrong. Please try again.",
  },
};

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

/** The person's choice in this tab, else ?lang=, else the browser's first of fi/sv/en. */
function initialLanguage() {
  const candidates = [sessionStorage.getItem(KEY.ui), params.get("lang")];
  for (const tag of navigator.languages || [navigator.language]) {
    candidates.push(String(tag || "").split("-")[0].toLowerCase());
  }
  return candidates.find((c) => LANGS.includes(c)) || "fi";
}

let lang = initialLanguage();
const t = (key) => TEXT[lang][key] ?? TEXT.fi[key];

let token = sessionStorage.getItem(KEY.token);
let conversationId = sessionStorage.getItem(KEY.conversation);
let view = null; // the latest ConversationView
let openRequest = null; // conversation.open waiting to be sent (no intake)
let list = null;
let typingNotifier = null;
let readSent = 0;
let typingTimer = null;

// The intake.
let service = null; // the latest /api/service answer
let intakeToken = sessionStorage.getItem(KEY.intake);
let intakeStart = null; // intake.start waiting for its first step
let step = null; // the latest intake.step
let restarted = false; // a lost intake was started again: say so once
let serviceLoad = 0; // ignores answers of /api/service requests that were overtaken

const connection = new Connection({
  path: "/ws/client",
  hello() {
    if (token) return { type: "conversation.resume", token, last_seq: list ? list.lastSeq : 0 };
    if (intakeToken) return { type: "intake.resume", token: intakeToken };
    return intakeStart || openRequest;
  },
  onMessage: handle,
  onStatus: showConnection,
  onReady() {
    outbox.flush();
  },
});
const outbox = new Outbox(connection, KEY.outbox);

// --- language ---------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang;
  $("ui-language").value = lang;
  for (const node of document.querySelectorAll("[data-t]")) {
    node.textContent = t(node.dataset.t);
  }
  if (list) {
    list.labels = labels();
    for (const item of document.querySelectorAll("#messages .msg-own")) {
      item.querySelector(".msg-sender").textContent = t("you");
      list.setState(item, item.dataset.state || "sending");
    }
  }
  if (view) showView(view);
  // The server's texts stay in the intake's language; the page's own words follow the choice.
  if (step && !$("intake").hidden) renderStep(step, { keepAnswer: true, focus: false });
  if (!$("topics").hidden || !$("closed").hidden) refreshService();
}

function setLanguage(value) {
  lang = LANGS.includes(value) ? value : "fi";
  sessionStorage.setItem(KEY.ui, lang);
  applyLanguage();
}

function labels() {
  return {
    you: t("you"),
    sending: t("sending"),
    delivered: t("delivered"),
    read: t("read"),
    failed: t("failed"),
  };
}

// --- showing ----------------------------------------------------------------------------

const SECTIONS = ["loading", "closed", "topics", "intake", "start", "chat"];

function showOnly(id) {
  for (const section of SECTIONS) $(section).hidden = section !== id;
}

function showConnection(status) {
  const notice = $("conn-notice");
  if (status === "reconnecting") {
    notice.textContent = t("reconnecting");
    notice.hidden = false;
  } else if (status === "ready" || status === "open" || status === "connecting") {
    notice.hidden = true;
  }
}

function showAlert(text) {
  const alert = $("alert");
  alert.textContent = text || "";
  alert.hidden = !text;
}

function showStart(message = "") {
  showOnly("start");
  showAlert(message);
  $("language").value = lang;
  $("start-form").querySelector("button").disabled = false;
  $("client-name").focus();
}

function showChat() {
  showOnly("chat");
  if (!list) {
    list = new MessageList($("messages"), {
      isOwn: (m) => m.sender_role === "client",
      labels: labels(),
      describeSender: (m) =>
        view && view.professional && view.professional.bot && m.sender_id === view.professional.id
          ? t("botName")
          : m.sender_name || t("professional"),
      onQuickReply: (text) => sendText(text),
      onHandoff: () => beginHandoff(),
    });
    // Messages written before a reload and never acknowledged: show them, resend on connect.
    for (const item of outbox.forConversation(conversationId)) {
      list.addPending(item.msg_id, item.text);
    }
  }
  if (!typingNotifier) typingNotifier = new TypingNotifier(connection, conversationId);
}

function titleOf(pro) {
  return pro.title ? t("titles")[pro.title] || pro.title : "";
}

function showView(v) {
  const status = $("chat-status");
  const withLine = $("chat-with");
  const closed = v.state === "closed";
  if (v.professional && v.professional.bot && !closed) {
    withLine.textContent = t("withBot");
  } else if (v.professional && !closed) {
    withLine.textContent = t("with")(v.professional.name, titleOf(v.professional));
  } else if (!closed) {
    withLine.textContent = "";
  }
  let wait = "";
  if (v.state === "queued") {
    const base = t("queued")(v.queue_position, v.queue_length);
    status.textContent = v.reason === "professional_disconnected" ? `${t("requeued")} ${base}` : base;
    if (v.wait_min_minutes != null && v.wait_max_minutes != null) {
      wait = t("wait")(v.wait_min_minutes, v.wait_max_minutes);
    }
  } else if (v.state === "assigned") {
    status.textContent = v.reason === "transferred" ? t("transferred")(v.professional.name) : "";
  } else if (closed) {
    status.textContent = t("closedBy")[v.closed_by] || t("ended");
  }
  $("chat-wait").textContent = wait;
  $("chat").dataset.state = v.state;
  $("composer").hidden = closed;
  $("end").hidden = closed;
  $("end-confirm").hidden = true;
  $("ended").hidden = !closed;
  if (closed) {
    $("typing").textContent = "";
    if (typingNotifier) typingNotifier.stop();
  }
  if (list) list.peerRead(v.read_professional_seq || 0);
}

function markRead() {
  if (!list || document.visibilityState !== "visible" || !conversationId) return;
  const seq = list.lastPeerSeq();
  if (seq > readSent && view && view.state !== "closed") {
    if (connection.send({ type: "read.mark", conversation_id: conversationId, seq })) {
      readSent = seq;
    }
  }
}

// --- the service: open or closed, and the topics ------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET /api/service in the page's language, retrying until the server answers. */
async function fetchService() {
  const ticket = ++serviceLoad;
  for (let attempt = 0; ; attempt += 1) {
    try {
      const response = await fetch(`/api/service?lang=${encodeURIComponent(lang)}`, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const body = await response.json();
        if (attempt > 0) showAlert("");
        return ticket === serviceLoad ? body : null;
      }
    } catch (err) {
      console.debug("kanava: /api/service", err);
    }
    if (ticket !== serviceLoad) return null;
    showAlert(t("serviceError"));
    await sleep(Math.min(1000 * 2 ** attempt, 15000));
  }
}

/** Where a person without a chat begins: the topics, the closed notice, or the plain form. */
async function showBeginning(message = "") {
  step = null;
  showOnly("loading");
  showAlert("");
  const answer = await fetchService();
  if (!answer) return;
  service = answer;
  for (const offer of document.querySelectorAll(".bot-offer")) offer.hidden = !answer.bot;
  if (answer.intake_required === false) {
    showStart(message);
  } else if (!answer.accepting && answer.closed) {
    showClosed(answer.closed);
    showAlert(message);
  } else {
    showTopics(message);
  }
}

/** The language changed on the topics or closed screen: the same screen in the new one. */
async function refreshService() {
  const answer = await fetchService();
  if (!answer) return;
  service = answer;
  if (!$("topics").hidden) {
    if (answer.accepting || !answer.closed) renderTopics(answer.topics);
    else showClosed(answer.closed);
  } else if (!$("closed").hidden && answer.closed) {
    showClosed(answer.closed);
  }
}

function showClosed(closed) {
  showOnly("closed");
  $("closed-text").textContent = closed.text || "";
  $("closed-advice").textContent = closed.advice || "";
  $("closed-advice").hidden = !closed.advice;
  $("closed-numbers").replaceChildren(...numberItems(closed.numbers));
}

function numberItems(numbers) {
  return (numbers || []).map((entry) => {
    const item = el("li");
    item.append(phoneLink(entry));
    return item;
  });
}

function showTopics(message = "") {
  showOnly("topics");
  showAlert(message);
  renderTopics(service ? service.topics : []);
  $("topics-title").focus();
}

function renderTopics(topics) {
  const items = topics.map((topic) => {
    const button = el("button", "topic");
    button.type = "button";
    button.dataset.topic = topic.id;
    button.append(el("span", "topic-title", topic.title));
    if (topic.description) button.append(el("span", "topic-description", topic.description));
    button.addEventListener("click", () => beginIntake(topic.id));
    const item = el("li");
    item.append(button);
    return item;
  });
  $("topic-list").replaceChildren(...items);
}

// --- the intake -------------------------------------------------------------------------

function beginIntake(topicId) {
  const openId = newMsgId();
  sessionStorage.setItem(KEY.openId, openId);
  sessionStorage.setItem(KEY.topic, topicId);
  intakeStart = { type: "intake.start", topic: topicId, language: lang, open_id: openId };
  const botToken = sessionStorage.getItem(KEY.botToken);
  if (botToken) intakeStart.bot_token = botToken;
  restarted = false;
  showAlert("");
  showIntakeWaiting();
  connection.stop();
  connection.start();
}

/** From the bot to a nurse: the intake's questions, then the same chat in a nurse's queue. */
function beginHandoff() {
  if (!token) return;
  sessionStorage.setItem(KEY.botToken, token);
  connection.stop();
  token = null;
  sessionStorage.removeItem(KEY.token);
  showTopics(t("handoffIntro"));
}

/** A chat with the advice bot: anonymous, at any hour (bot.start instead of the intake). */
function beginBotChat() {
  forgetIntake();
  openRequest = { type: "bot.start", language: lang, open_id: newMsgId() };
  showAlert("");
  showIntakeWaiting();
  connection.stop();
  connection.start();
}

function showIntakeWaiting() {
  showOnly("intake");
  $("intake").className = "card intake";
  $("intake").replaceChildren(el("p", "loading", t("waiting")));
}

function forgetIntake() {
  intakeToken = null;
  intakeStart = null;
  sessionStorage.removeItem(KEY.intake);
  sessionStorage.removeItem(KEY.topic);
  sessionStorage.removeItem(KEY.openId);
}

function receiveStep(msg) {
  if (!connection.isReady) connection.ready();
  intakeStart = null;
  if (msg.token && msg.token !== "-") {
    intakeToken = msg.token;
    sessionStorage.setItem(KEY.intake, intakeToken);
  }
  // An end takes no more answers. Its token stays: after a reload the server repeats the end
  // (call 112 stays on the screen) until the person starts over or the intake expires.
  if (ENDS.has(msg.step)) connection.stop();
  showAlert(restarted && msg.step === "question" ? t("intakeRestarted") : "");
  restarted = false;
  renderStep(msg, { focus: true });
}

function renderStep(msg, { keepAnswer = false, focus = false } = {}) {
  const box = $("intake");
  let kept;
  if (keepAnswer && msg.step === "question") {
    const form = box.querySelector("form.question");
    if (form && form.dataset.question === msg.detail.id) kept = readAnswer(form, msg.detail);
  }
  step = msg;
  showOnly("intake");
  box.className = `card intake intake-${msg.step}`;
  box.dataset.step = msg.step;
  box.removeAttribute("role");
  const detail = msg.detail || {};
  let target;
  switch (msg.step) {
    case "question":
      target = renderQuestion(box, kept === undefined ? detail : { ...detail, answer: kept }, msg.progress);
      break;
    case "emergency":
      target = renderEmergency(box, detail);
      break;
    case "identify":
      target = renderIdentify(box, detail);
      break;
    case "station":
      target = renderStation(box, detail);
      break;
    case "bot":
    case "guidance":
    case "closed":
      target = renderEnd(box, msg.step, detail);
      break;
    default:
      // A step this page does not know yet: wait for the next one rather than guess.
      box.replaceChildren(el("p", "loading", t("waiting")));
      console.warn("kanava: unknown intake step", msg.step);
  }
  if (focus && target) target.focus();
}

/** A heading that takes focus when its step appears, so a screen reader starts there. */
function stepHeading(tag, text, className = "") {
  const heading = el(tag, className, text);
  heading.tabIndex = -1;
  return heading;
}

function renderQuestion(box, q, progress) {
  const form = el("form", "question");
  form.noValidate = true; // the server checks the answer and explains a refusal
  form.dataset.question = q.id;
  const base = `q-${q.id}`;
  const parts = [];

  if (progress && progress.total) {
    const wrap = el("div", "progress");
    const label = el("p", "progress-text", t("progress")(progress.index, progress.total));
    label.id = `${base}-progress`;
    const bar = el("progress");
    bar.max = progress.total;
    bar.value = progress.index;
    bar.setAttribute("aria-labelledby", label.id);
    wrap.append(label, bar);
    parts.push(wrap);
  }

  const fieldset = el("fieldset", "question-set");
  const legend = stepHeading("legend", q.text, "question-text");
  legend.id = `${base}-legend`;
  fieldset.append(legend);
  const described = [];
  if (q.help) {
    const help = el("p", "hint", q.help);
    help.id = `${base}-help`;
    described.push(help.id);
    fieldset.append(help);
  }
  if (!q.required) {
    const optional = el("p", "hint", t("optional"));
    optional.id = `${base}-optional`;
    described.push(optional.id);
    fieldset.append(optional);
  }
  const error = el("p", "form-error question-error");
  error.id = `${base}-error`;
  error.setAttribute("aria-live", "assertive");
  described.push(error.id);

  const answer = q.answer;
  if (q.kind === "single" || q.kind === "multi" || q.kind === "yes_no") {
    const multi = q.kind === "multi";
    const options =
      q.kind === "yes_no"
        ? (q.choices || []).map((c) => ({ id: String(c.value), label: c.label }))
        : q.options || [];
    const chosen = new Set(
      Array.isArray(answer) ? answer.map(String) : answer == null ? [] : [String(answer)]
    );
    const group = el("div", "choices");
    for (const option of options) {
      const label = el("label", "choice");
      const input = el("input");
      input.type = multi ? "checkbox" : "radio";
      input.name = base;
      input.value = option.id;
      input.checked = chosen.has(option.id);
      input.dataset.exclusive = option.exclusive ? "1" : "";
      label.append(input, el("span", "", option.label));
      group.append(label);
    }
    if (multi) group.addEventListener("change", (event) => keepExclusive(group, event.target));
    fieldset.append(group);
  } else {
    const row = el("div", "answer-row");
    let input;
    if (q.kind === "text" && q.multiline) {
      input = el("textarea");
      input.rows = 4;
    } else {
      input = el("input");
      input.type = "text";
      input.autocomplete = "off";
    }
    input.id = `${base}-input`;
    input.name = base;
    const labelled = [legend.id];
    if (q.kind === "number") {
      // A text field: "38,5" is how a Finn or a Swede writes it, and the server says why a
      // value is refused in the person's language.
      input.inputMode = q.integer ? "numeric" : "decimal";
      input.className = "number-input";
      if (answer != null) input.value = formatNumber(answer);
      row.append(input);
      if (q.unit) {
        const unit = el("span", "unit", q.unit);
        unit.id = `${base}-unit`;
        labelled.push(unit.id);
        row.append(unit);
      }
    } else {
      if (q.max_length) input.maxLength = q.max_length;
      if (answer != null) input.value = String(answer);
      input.className = "text-input";
      row.append(input);
    }
    input.setAttribute("aria-labelledby", labelled.join(" "));
    fieldset.append(row);
  }
  fieldset.setAttribute("aria-describedby", described.join(" "));
  for (const input of fieldset.querySelectorAll("input, textarea")) {
    input.setAttribute("aria-describedby", described.join(" "));
  }
  fieldset.append(error);

  const actions = el("div", "step-actions");
  const next = el("button", "primary", t("next"));
  next.type = "submit";
  actions.append(next);
  form.append(...parts, fieldset, actions);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendIntake(form, {
      type: "intake.answer",
      question_id: q.id,
      value: readAnswer(form, q),
    });
  });
  box.replaceChildren(form);
  return legend;
}

/** "None of these" and the symptoms exclude each other. */
function keepExclusive(group, changed) {
  if (!changed || !changed.checked) return;
  for (const other of group.querySelectorAll("input")) {
    if (other === changed) continue;
    if (changed.dataset.exclusive || other.dataset.exclusive) other.checked = false;
  }
}

function formatNumber(value) {
  const text = String(value);
  return lang === "en" ? text : text.replace(".", ",");
}

/** The answer as the protocol wants it; an empty optional answer is null (skipped). */
function readAnswer(form, q) {
  const checked = [...form.querySelectorAll("input:checked")].map((i) => i.value);
  switch (q.kind) {
    case "single":
      return checked[0] ?? null;
    case "yes_no":
      return checked.length ? checked[0] === "true" : null;
    case "multi":
      return checked.length ? checked : null;
    case "number": {
      const raw = form.querySelector("input").value.trim();
      if (!raw) return null;
      const plain = raw.replace(/\s/g, "").replace(",", ".");
      // Something that is not a number goes as it is: the server explains what it expects.
      return /^[-+]?\d+(\.\d+)?$/.test(plain) ? Number(plain) : raw;
    }
    default: {
      const text = form.querySelector("input, textarea").value.trim();
      return text || null;
    }
  }
}

/** Send an intake command from a form; the form waits for the server's answer. */
function sendIntake(form, msg) {
  if (!connection.send(msg)) {
    showStepError(t("offline"));
    return;
  }
  const button = form.querySelector("button[type=submit], button.primary");
  if (button) button.disabled = true;
  form.setAttribute("aria-busy", "true");
}

function showStepError(text) {
  const box = $("intake");
  const error = box.querySelector(".form-error");
  if (!error) {
    showAlert(text);
    return;
  }
  error.textContent = text;
  for (const button of box.querySelectorAll("button")) button.disabled = false;
  for (const form of box.querySelectorAll("form")) form.removeAttribute("aria-busy");
  const inputs = box.querySelectorAll("input, textarea, select");
  for (const input of inputs) input.setAttribute("aria-invalid", "true");
  const first = box.querySelector("input:checked, input, textarea, select");
  if (first) first.focus();
}

function renderEmergency(box, detail) {
  const heading = stepHeading("h1", t("emergencyTitle"), "emergency-title");
  const parts = [heading];
  if (detail.text) parts.push(el("p", "emergency-text", detail.text));
  if (detail.reasons && detail.reasons.length) {
    parts.push(el("p", "emergency-why", t("emergencyWhy")));
    const reasons = el("ul", "emergency-reasons");
    for (const reason of detail.reasons) reasons.append(el("li", "", reason));
    parts.push(reasons);
  }
  const numbers = detail.numbers && detail.numbers.length ? detail.numbers : [{ number: "112" }];
  for (const entry of numbers) {
    const link = phoneLink({ number: entry.number }, "call-now");
    const label = t("call")(link.href.replace(/^tel:/, ""));
    link.replaceChildren(label);
    if (entry.name) link.title = `${entry.name}: ${label}`;
    parts.push(link);
  }
  box.replaceChildren(...parts);
  box.setAttribute("role", "alert"); // read out at once, whatever the screen reader was doing
  return heading;
}

function renderIdentify(box, detail) {
  const heading = stepHeading("h1", t("identifyTitle"));
  const form = el("form", "identify");
  const status = el("p", "identify-status");
  status.setAttribute("aria-live", "polite");
  const error = el("p", "form-error");
  error.setAttribute("aria-live", "assertive");
  const actions = el("div", "step-actions");
  const url = safeUrl(detail.url);
  if (url) {
    const identify = el("button", "primary", t("identifyButton"));
    identify.type = "button";
    identify.addEventListener("click", () => openIdentification(url, status));
    actions.append(identify);
  } else {
    status.textContent = t("identifyUnavailable");
  }
  if (detail.anonymous_allowed !== false) {
    const anonymous = el("button", url ? "secondary" : "primary", t("anonymousButton"));
    anonymous.type = "button";
    anonymous.addEventListener("click", () => {
      sendIntake(form, { type: "intake.anonymous" });
      anonymous.disabled = true;
    });
    actions.append(anonymous);
  }
  form.append(el("p", "", detail.text || ""), status, error, actions);
  box.replaceChildren(heading, form);
  return heading;
}

/** Only a link to this server, or an http(s) one: never javascript: or the like. */
function safeUrl(value) {
  if (!value) return null;
  try {
    const url = new URL(value, location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function openIdentification(url, status) {
  const popup = window.open(url, "kanava-identify", "popup=yes,width=520,height=720");
  if (popup) {
    status.textContent = t("identifyWaiting");
    return;
  }
  // A blocked pop-up: the same page in a new tab works too (the step still arrives here).
  const link = el("a", "", t("popupLink"));
  link.href = url;
  link.target = "_blank";
  link.rel = "opener";
  status.replaceChildren(`${t("popupBlocked")} `, link);
}

// The identification pop-up tells its opener when it is done. The next step arrives over
// the websocket by itself; asking again covers a socket that missed it.
window.addEventListener("message", (event) => {
  if (event.origin !== location.origin || !event.data || event.data.kanava !== "identified") return;
  if (!step || step.step !== "identify") return;
  if (!event.data.ok) {
    const status = $("intake").querySelector(".identify-status");
    if (status) status.textContent = t("identifyFailed");
    return;
  }
  if (intakeToken) connection.send({ type: "intake.resume", token: intakeToken });
});

function renderStation(box, detail) {
  const heading = stepHeading("h1", t("stationTitle"));
  const form = el("form", "station");
  form.noValidate = true;
  const label = el("label", "", detail.text || t("stationTitle"));
  label.htmlFor = "station-select";
  const select = el("select");
  select.id = "station-select";
  const placeholder = el("option", "", t("stationPlaceholder"));
  placeholder.value = "";
  select.append(placeholder);
  for (const station of detail.stations || []) {
    const option = el("option", "", station.name);
    option.value = station.id;
    select.append(option);
  }
  const error = el("p", "form-error");
  error.id = "station-error";
  error.setAttribute("aria-live", "assertive");
  select.setAttribute("aria-describedby", error.id);
  const actions = el("div", "step-actions");
  const next = el("button", "primary", t("continue"));
  next.type = "submit";
  actions.append(next);
  form.append(label, select, error, actions);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!select.value) {
      showStepError(t("stationRequired"));
      return;
    }
    sendIntake(form, { type: "intake.station", station: select.value });
  });
  box.replaceChildren(heading, form);
  return heading;
}

function renderEnd(box, kind, detail) {
  const title = { bot: "botTitle", guidance: "guidanceTitle", closed: "closedTitle" }[kind];
  const heading = stepHeading("h1", t(title));
  const parts = [heading];
  if (detail.text) parts.push(el("p", "", detail.text));
  if (detail.advice) parts.push(el("p", "", detail.advice));
  const botOn = !service || service.bot !== false;
  if (botOn && (kind === "bot" || (kind === "closed" && detail.bot))) {
    const talk = el("button", "primary", t("botStart"));
    talk.type = "button";
    talk.addEventListener("click", () => beginBotChat());
    const row = el("div", "step-actions");
    row.append(talk);
    parts.push(row);
  }
  if (detail.numbers && detail.numbers.length) {
    parts.push(el("h2", "numbers-title", t("numbersTitle")));
    const numbers = el("ul", "numbers");
    numbers.append(...numberItems(detail.numbers));
    parts.push(numbers);
  }
  const botToken = sessionStorage.getItem(KEY.botToken);
  if (botToken && kind !== "emergency") {
    // The nurse's chat did not open (e.g. under 18): the chat with the bot is still there.
    const back = el("button", "primary", t("backToBot"));
    back.type = "button";
    back.addEventListener("click", () => {
      forgetIntake();
      token = botToken;
      sessionStorage.setItem(KEY.token, token);
      sessionStorage.removeItem(KEY.botToken);
      connection.stop();
      connection.start();
    });
    const row = el("div", "step-actions");
    row.append(back);
    parts.push(row);
  }
  const again = el("button", "quiet", t("startOver"));
  again.type = "button";
  again.addEventListener("click", () => {
    forgetIntake();
    showBeginning();
  });
  const actions = el("div", "step-actions");
  actions.append(again);
  parts.push(actions);
  box.replaceChildren(...parts);
  return heading;
}

function handleIntakeError(err, ref) {
  if (ref === "intake.resume") {
    // The intake is gone (expired, or it already queued the chat and this tab missed the
    // answer). The same open_id finds a queued chat; else the questions start over.
    intakeToken = null;
    sessionStorage.removeItem(KEY.intake);
    const openId = sessionStorage.getItem(KEY.openId);
    const topic = sessionStorage.getItem(KEY.topic);
    if (openId && topic && !restarted) {
      restarted = true;
      intakeStart = { type: "intake.start", topic, language: lang, open_id: openId };
      connection.sendNow(intakeStart);
      return;
    }
    connection.stop();
    forgetIntake();
    showBeginning(t("intakeExpired"));
    return;
  }
  if (ref === "intake.start") {
    connection.stop();
    forgetIntake();
    showBeginning(err.code === "intake_unknown_topic" && err.reason ? err.reason : t("genericError"));
    return;
  }
  if (err.code === "no_intake" || err.code === "intake_finished") {
    connection.stop();
    forgetIntake();
    showBeginning(t("intakeExpired"));
    return;
  }
  if (err.code === "intake_out_of_order" && ref !== "intake.answer") {
    // This page shows an older step than the server's: fetch the current one.
    if (intakeToken) connection.sendNow({ type: "intake.resume", token: intakeToken });
    return;
  }
  if (err.code === "unknown_station") {
    showStepError(t("stationUnknown"));
    return;
  }
  const localized = err.code && err.code.startsWith("intake_");
  showStepError(localized && err.reason ? err.reason : t("genericError"));
}

// --- the protocol -----------------------------------------------------------------------

function adopt(v) {
  view = v;
  if (conversationId !== v.conversation_id) {
    conversationId = v.conversation_id;
    sessionStorage.setItem(KEY.conversation, conversationId);
  }
  showChat();
  showView(v);
}

function handle(msg) {
  switch (msg.type) {
    case "intake.step":
      receiveStep(msg);
      break;
    case "conversation.opened":
      token = msg.token;
      sessionStorage.setItem(KEY.token, token);
      sessionStorage.removeItem(KEY.botToken);
      openRequest = null;
      forgetIntake();
      step = null;
      restarted = false;
      showAlert("");
      adopt(msg.conversation);
      connection.ready();
      break;
    case "conversation.state": {
      const first = !connection.isReady;
      adopt(msg.conversation);
      if (first) connection.ready();
      break;
    }
    case "message.history":
      if (msg.conversation_id !== conversationId) break;
      for (const m of msg.messages) list.addStored(m);
      if (msg.up_to_date) markRead();
      break;
    case "message.new": {
      const m = msg.message;
      if (m.conversation_id !== conversationId) break;
      list.addStored(m);
      if (m.sender_role !== "client") $("typing").textContent = "";
      markRead();
      break;
    }
    case "message.ack":
      outbox.acknowledge(msg.msg_id);
      if (list) list.acknowledged(msg.msg_id, msg.seq, msg.sent_at);
      break;
    case "typing":
      if (msg.conversation_id !== conversationId || msg.role === "client") break;
      clearTimeout(typingTimer);
      if (msg.typing) {
        const name = view && view.professional ? view.professional.name : t("professional");
        $("typing").textContent = t("typing")(name);
        typingTimer = setTimeout(() => ($("typing").textContent = ""), 10000);
      } else {
        $("typing").textContent = "";
      }
      break;
    case "read":
      if (msg.conversation_id === conversationId && msg.role !== "client" && list) {
        list.peerRead(msg.seq);
      }
      break;
    case "error":
      handleError(msg);
      break;
    case "pong":
      break;
    default:
      console.debug("kanava: ignored", msg.type);
  }
}

function handleError(err) {
  const ref = err.ref || "";
  if (ref === "conversation.resume") {
    // The token is unknown or too old: start afresh.
    forgetConversation();
    connection.stop();
    showBeginning(t("notFound"));
    return;
  }
  if (ref === "conversation.open") {
    connection.stop();
    openRequest = null;
    if (err.code === "intake_required") {
      showBeginning(); // the server wants the intake after all
    } else {
      showStart(err.code === "unknown_team" ? t("unknownTeam") : t("genericError"));
    }
    return;
  }
  if (ref.startsWith("intake.")) {
    handleIntakeError(err, ref);
    return;
  }
  if (outbox.pending.has(ref)) {
    if (err.code === "rate_limited" || err.code === "internal") {
      outbox.retryAfter(err.retry_after_ms || 2000);
      return;
    }
    outbox.acknowledge(ref);
    const reason =
      err.code === "text_too_long" ? t("tooLong")
        : err.code === "conversation_closed" ? t("closedError")
          : t("genericError");
    if (list) list.failed(ref, reason);
    return;
  }
  if (err.code === "already_open" || err.code === "rate_limited") return;
  console.warn("kanava: error", err);
}

function forgetConversation() {
  token = null;
  conversationId = null;
  view = null;
  readSent = 0;
  sessionStorage.removeItem(KEY.token);
  sessionStorage.removeItem(KEY.conversation);
  outbox.clear();
  if (typingNotifier) typingNotifier.stop();
  typingNotifier = null;
  list = null;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  $("chat-with").textContent = "";
  $("chat-status").textContent = "";
  $("chat-wait").textContent = "";
}

// --- the user ---------------------------------------------------------------------------

$("ui-language").addEventListener("change", (event) => setLanguage(event.target.value));

for (const button of document.querySelectorAll(".bot-offer button")) {
  button.addEventListener("click", () => beginBotChat());
}

$("start-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showAlert("");
  const language = $("language").value;
  openRequest = {
    type: "conversation.open",
    // Sent again on every reconnect until answered: the server returns the same
    // conversation instead of queueing a second one.
    open_id: newMsgId(),
    client_name: $("client-name").value.trim().slice(0, 100),
    topic: $("topic").value.trim().slice(0, 100) || null,
    language,
    team: params.get("team") || null,
  };
  if (language !== lang && LANGS.includes(language)) setLanguage(language);
  $("start-form").querySelector("button").disabled = true;
  connection.stop();
  connection.start();
});

function sendText(text) {
  if (!text || !conversationId) return;
  const item = outbox.add(conversationId, text);
  list.addPending(item.msg_id, text);
  typingNotifier.stop();
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const box = $("text");
  const text = box.value.trim();
  if (!text || !conversationId) return;
  sendText(text);
  box.value = "";
  box.focus();
});

$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("text").addEventListener("input", () => {
  if (typingNotifier && $("text").value) typingNotifier.input();
});

$("end").addEventListener("click", () => {
  $("end-confirm").hidden = false;
  $("end").hidden = true;
  $("end-yes").focus();
});
$("end-no").addEventListener("click", () => {
  $("end-confirm").hidden = true;
  $("end").hidden = false;
});
$("end-yes").addEventListener("click", () => {
  connection.send({ type: "conversation.close", conversation_id: conversationId });
  $("end-confirm").hidden = true;
});

$("new-chat").addEventListener("click", () => {
  connection.stop();
  forgetConversation();
  showBeginning();
});

document.addEventListener("visibilitychange", markRead);

// --- start ------------------------------------------------------------------------------

applyLanguage();
if (token) {
  showChat();
  $("chat-status").textContent = t("connecting");
  connection.start();
} else if (intakeToken) {
  showIntakeWaiting();
  connection.start();
} else {
  showBeginning();
}
