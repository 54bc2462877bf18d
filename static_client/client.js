// The citizen's chat page. The start shows the service's state (open until when, closing
// soon, closed; how many wait) and the choice: my own health matter or a general question for
// the advice bot. Then the intake: a topic (?topic= picks one), the server's questions one at
// a time (red flags first: an emergency ends in "call 112 now"), identification, the health
// station. Then the chat: wait in the queue, chat, resume after a reload or a dropped
// connection. At the end: feedback (a rating and a comment, both optional) and the transcript
// as a text file made here from the messages on the screen.
//
// The page's own words are in /static/i18n/fi.json, sv.json and en.json; a change of language
// changes them at once (messages and the server's texts stay as they were written). In the
// widget's frame (?embed=1) the page is compact, and embed_bridge.js talks with the host page.
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
  tabStorage,
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
  feedback: "kanava.client.feedback", // the conversation whose feedback was given
};

// sessionStorage, or memory where a framed page may not store anything.
const store = tabStorage();

const LANGS = ["fi", "sv", "en"];
const ENDS = new Set(["emergency", "bot", "guidance", "closed"]);

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

/** The person's choice in this tab, else ?lang=, else the browser's first of fi/sv/en. */
function initialLanguage() {
  const candidates = [store.getItem(KEY.ui), params.get("lang")];
  for (const tag of navigator.languages || [navigator.language]) {
    candidates.push(String(tag || "").split("-")[0].toLowerCase());
  }
  return candidates.find((c) => LANGS.includes(c)) || "fi";
}

// The page's own words come from /static/i18n/<lang>.json (the same keys in each file), each
// file fetched once. Messages and the server's texts stay as they were written.
const texts = new Map(); // language -> its words
let lang = initialLanguage();

/** The word `key` in the page's language; `{name}` placeholders filled from `vars`. */
function t(key, vars = null) {
  const words = texts.get(lang) || texts.get("fi") || {};
  let text = words[key] ?? (texts.get("fi") || {})[key];
  if (text === undefined) return key;
  if (vars) text = text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  return text;
}

/** The word `key` if the language has one, else null (for optional words such as roles). */
function maybe(key) {
  const words = texts.get(lang) || {};
  return words[key] ?? null;
}

/** Fetch a language's words once (retrying while the server does not answer). */
async function loadWords(language) {
  if (texts.has(language)) return texts.get(language);
  for (let attempt = 0; ; attempt += 1) {
    try {
      const response = await fetch(`/static/i18n/${language}.json`, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const words = await response.json();
        texts.set(language, words);
        return words;
      }
    } catch (err) {
      console.debug("kanava: words", language, err);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 8000)));
  }
}

let token = store.getItem(KEY.token);
let conversationId = store.getItem(KEY.conversation);
let view = null; // the latest ConversationView
let openRequest = null; // conversation.open waiting to be sent (no intake)
let list = null;
let typingNotifier = null;
let readSent = 0;
let typingTimer = null;
let closeWanted = null; // the conversation the client ended while the connection was down

// The intake.
let service = null; // the latest /api/service answer
let intakeToken = store.getItem(KEY.intake);
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
    if (closeWanted && closeWanted === conversationId) {
      connection.send({ type: "conversation.close", conversation_id: closeWanted });
    }
    closeWanted = null;
  },
});
const outbox = new Outbox(connection, KEY.outbox, store);

// --- language ---------------------------------------------------------------------------

const LOCALES = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" };

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = `Kanava – ${t("tagline")}`;
  $("ui-language").value = lang;
  for (const node of document.querySelectorAll("[data-t]")) {
    node.textContent = t(node.dataset.t);
  }
  if (list) {
    list.labels = labels();
    for (const item of $("messages").querySelectorAll(".msg")) relabel(item);
  }
  if (view) showView(view);
  if ($("typing").textContent && view) showTyping(true);
  // The server's texts stay in the intake's language; the page's own words follow the choice.
  if (step && !$("intake").hidden) renderStep(step, { keepAnswer: true, focus: false });
  if (atBeginning()) {
    showServiceState();
    refreshService({ render: true });
  }
}

let languageTicket = 0; // a quicker later choice wins over a slower earlier one

async function setLanguage(value) {
  const wanted = LANGS.includes(value) ? value : "fi";
  const ticket = ++languageTicket;
  store.setItem(KEY.ui, wanted);
  await loadWords(wanted);
  if (ticket !== languageTicket) return;
  lang = wanted;
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

/** A message's words of this page (not its text) in the current language. */
function relabel(item) {
  if (item.dataset.own === "1") {
    item.querySelector(".msg-sender").textContent = t("you");
    const reason = item.dataset.failKey ? t(item.dataset.failKey) : "";
    list.setState(item, item.dataset.state || "sending", item.dataset.state === "failed" ? reason : "");
  } else if (item.dataset.bot === "1") {
    item.querySelector(".msg-sender").textContent = t("botName");
  }
}

/** "15:30" from the server as the language writes a time of day (15.30 in Finnish). */
function clock(hhmm) {
  return String(hhmm || "").replace(":", t("timeSeparator"));
}

// --- showing ----------------------------------------------------------------------------

const SECTIONS = ["loading", "closed", "topics", "intake", "start", "chat"];
const BEGINNINGS = new Set(["closed", "topics", "start"]);

function showOnly(id) {
  for (const section of SECTIONS) $(section).hidden = section !== id;
  // The service's state is shown before anything is typed: on the screens that begin a chat.
  $("service").hidden = !BEGINNINGS.has(id) || !service;
  document.body.classList.toggle("in-chat", id === "chat");
}

/** On a screen where a chat begins (the topics, the closed notice, the plain form). */
function atBeginning() {
  return [...BEGINNINGS].some((id) => !$(id).hidden);
}

function showConnection(status) {
  // A quiet notice (role=status, empty and so out of sight otherwise): the chat goes on.
  const notice = $("conn-notice");
  if (status === "reconnecting") {
    setWord(notice, "reconnecting");
  } else if (status === "ready" || status === "open" || status === "connecting") {
    setWord(notice, null);
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

/** Whether a message of the conversation came from the advice bot (not from a person). */
function fromBot(m) {
  if (m.sender_role === "client") return false;
  if (view && view.professional && view.professional.bot && m.sender_id === view.professional.id) {
    return true;
  }
  // Handed over from the bot to a nurse: the bot's part comes first, up to bot_seq.
  return Boolean(view && view.bot_seq && m.seq <= view.bot_seq);
}

function showChat() {
  showOnly("chat");
  if (!list) {
    list = new MessageList($("messages"), {
      isOwn: (m) => m.sender_role === "client",
      labels: labels(),
      describeSender: (m) => (fromBot(m) ? t("botName") : m.sender_name || t("professional")),
      decorate: (item, m) => {
        if (fromBot(m)) {
          item.dataset.bot = "1";
          item.classList.add("msg-from-bot");
        }
      },
      onQuickReply: (text) => {
        sendText(text);
        // The pressed button is gone: the keyboard goes on from the messages, not the page's top.
        if (!document.activeElement || document.activeElement === document.body) $("messages").focus();
      },
      onHandoff: () => beginHandoff(),
    });
    // Messages written before a reload and never acknowledged: show them, resend on connect.
    for (const item of outbox.forConversation(conversationId)) {
      list.addPending(item.msg_id, item.text);
    }
  }
  if (!typingNotifier) typingNotifier = new TypingNotifier(connection, conversationId);
}

/** A professional's role in the page's language ("sairaanhoitaja"); the title if unknown. */
function roleOf(pro) {
  return maybe(`roles.${pro.role}`) ?? maybe(`roles.${pro.title}`) ?? (pro.title || "");
}

/** "Hanna Hoitaja, sairaanhoitaja", or the bot said to be a bot. */
function describePro(pro) {
  if (pro.bot) return t("botName");
  const role = roleOf(pro);
  return role ? `${pro.name}, ${role}` : pro.name;
}

let closing = false; // the client pressed "Yes, end it": focus goes to the end's heading

function showView(v) {
  const status = $("chat-status");
  const withLine = $("chat-with");
  const closed = v.state === "closed";
  const wasClosed = $("chat").dataset.state === "closed";
  const pro = v.professional;
  if (pro && pro.bot && !closed) {
    withLine.textContent = t("withBot");
  } else if (pro && !closed) {
    const role = roleOf(pro);
    withLine.textContent = role
      ? t("withRole", { name: pro.name, role })
      : t("with", { name: pro.name });
  } else if (pro && closed) {
    withLine.textContent = describePro(pro); // who it was with, after the end too
  } else {
    withLine.textContent = "";
  }
  withLine.classList.toggle("with-bot", Boolean(pro && pro.bot));
  let wait = "";
  if (v.state === "queued") {
    const base = v.queue_position
      ? t("queuedAt", { pos: v.queue_position, len: v.queue_length || v.queue_position })
      : t("queuedNoPosition");
    status.textContent = v.reason === "professional_disconnected" ? `${t("requeued")} ${base}` : base;
    if (v.wait_min_minutes != null && v.wait_max_minutes != null) {
      wait = t("wait", { low: v.wait_min_minutes, high: v.wait_max_minutes });
    }
  } else if (v.state === "assigned") {
    status.textContent = v.reason === "transferred" && pro ? t("transferred", { name: pro.name }) : "";
  } else if (closed) {
    status.textContent =
      v.reason === "client_left"
        ? t("closedIdle")
        : v.closed_by === "client"
        ? t("closedBy.client")
        : v.closed_by === "professional"
          ? t("closedBy.professional", { name: pro && !pro.bot ? pro.name : pro ? t("botName") : t("professional") })
          : t("ended");
  }
  $("chat-wait").textContent = wait;
  $("chat").dataset.state = v.state;
  document.body.classList.toggle("chat-closed", closed);
  $("composer").hidden = closed;
  $("end").hidden = closed || !$("end-confirm").hidden;
  if (closed) $("end-confirm").hidden = true;
  $("ended").hidden = !closed;
  if (closed) {
    $("typing").textContent = "";
    if (typingNotifier) typingNotifier.stop();
    if (!wasClosed) showFeedbackForm();
    if (closing) {
      closing = false;
      $("ended-title").focus();
    }
  }
  if (list) list.peerRead(v.read_professional_seq || 0);
}

function showTyping(on) {
  clearTimeout(typingTimer);
  if (!on) {
    $("typing").textContent = "";
    return;
  }
  const name = view && view.professional && !view.professional.bot
    ? view.professional.name
    : view && view.professional ? t("botName") : t("professional");
  $("typing").textContent = t("typing", { name });
  typingTimer = setTimeout(() => ($("typing").textContent = ""), 10000);
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

// --- the end: feedback and the transcript -----------------------------------------------

function showFeedbackForm() {
  const form = $("feedback");
  const given = store.getItem(KEY.feedback) === conversationId;
  form.reset();
  form.hidden = given;
  form.removeAttribute("aria-busy");
  form.querySelector("button[type=submit]").disabled = false;
  setWord($("feedback-error"), null);
  $("feedback-comment").removeAttribute("aria-invalid");
  setWord($("feedback-status"), given ? "feedbackThanks" : null);
}

/** Show a word of the page that follows a change of language (null: nothing). */
function setWord(node, key) {
  if (key) {
    node.dataset.t = key;
    node.textContent = t(key);
  } else {
    delete node.dataset.t;
    node.textContent = "";
  }
}

function sendFeedback(event) {
  event.preventDefault();
  const form = $("feedback");
  const chosen = form.querySelector("input[name=rating]:checked");
  const comment = $("feedback-comment").value.trim();
  if (!chosen && !comment) {
    feedbackError("feedbackEmpty");
    return;
  }
  if (comment.length > 1000) {
    feedbackError("feedbackTooLong");
    return;
  }
  const msg = { type: "feedback.send" };
  if (chosen) msg.rating = Number(chosen.value);
  if (comment) msg.comment = comment;
  if (!connection.send(msg)) {
    feedbackError("offline");
    return;
  }
  setWord($("feedback-error"), null);
  form.setAttribute("aria-busy", "true");
  form.querySelector("button[type=submit]").disabled = true;
}

function feedbackError(key) {
  const form = $("feedback");
  setWord($("feedback-error"), key);
  form.removeAttribute("aria-busy");
  form.querySelector("button[type=submit]").disabled = false;
  const comment = $("feedback-comment");
  if (key === "feedbackTooLong") {
    comment.setAttribute("aria-invalid", "true");
    comment.focus();
  } else {
    comment.removeAttribute("aria-invalid");
    (form.querySelector("input[name=rating]:checked") || form.querySelector("input[name=rating]")).focus();
  }
}

function feedbackSaved(msg) {
  if (msg.conversation_id !== conversationId) return;
  store.setItem(KEY.feedback, conversationId);
  setWord($("feedback-status"), "feedbackThanks");
  const form = $("feedback");
  const hadFocus = form.contains(document.activeElement);
  form.hidden = true;
  if (hadFocus) $("transcript").focus();
}

/** The messages on the screen as plain text: the date, who took part, each time and text. */
function transcriptText() {
  const locale = LOCALES[lang] || "fi-FI";
  const v = view || {};
  const created = new Date(v.created_at || Date.now());
  const day = (d) => d.toLocaleDateString(locale, { day: "numeric", month: "numeric", year: "numeric" });
  const me = v.client_name || t("you");
  const parties = [me];
  const lines = [];
  for (const item of $("messages").querySelectorAll(".msg")) {
    const own = item.dataset.own === "1";
    let sender = own ? me : item.querySelector(".msg-sender").textContent;
    if (!own && v.professional && !v.professional.bot && sender === v.professional.name) {
      sender = describePro(v.professional);
    }
    if (!parties.includes(sender)) parties.push(sender);
    const time = item.querySelector(".msg-time");
    let when = time.textContent || "--:--";
    if (time.dateTime && day(new Date(time.dateTime)) !== day(created)) {
      when = `${day(new Date(time.dateTime))} ${when}`;
    }
    const state = item.dataset.state === "failed" ? ` (${t("failed")})` : "";
    const text = item.querySelector(".msg-text").textContent.replace(/\r?\n/g, "\n    ");
    lines.push(`[${when}] ${sender}: ${text}${state}`);
  }
  const head = [
    t("transcriptTitle"),
    `${t("transcriptDate")}: ${day(created)}`,
    `${t("transcriptParties")}: ${parties.join("; ")}`,
  ];
  if (v.topic) head.push(`${t("transcriptTopic")}: ${v.topic}`);
  const tail = v.state === "closed" ? ["", $("chat-status").textContent] : [];
  return [...head, "", ...lines, ...tail, ""].join("\n");
}

function downloadTranscript() {
  const created = new Date((view && view.created_at) || Date.now());
  const pad = (n) => String(n).padStart(2, "0");
  const date = `${created.getFullYear()}-${pad(created.getMonth() + 1)}-${pad(created.getDate())}`;
  const blob = new Blob([transcriptText()], { type: "text/plain;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = el("a");
  link.href = url;
  link.download = `${t("transcriptFile")}-${date}.txt`;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// --- the service: open or closed, and the topics ------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const SERVICE_REFRESH_MS = 60_000; // the queue's length and the state, while nothing is typed

/** GET /api/service in the page's language, retrying until the server answers. */
async function fetchService() {
  const ticket = ++serviceLoad;
  const query = new URLSearchParams({ lang });
  if (params.get("team")) query.set("team", params.get("team"));
  for (let attempt = 0; ; attempt += 1) {
    try {
      const response = await fetch(`/api/service?${query}`, {
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

/** open, closing_soon or closed (from an older server: from `accepting`). */
function serviceState(answer) {
  if (answer.state) return answer.state;
  return answer.accepting || !answer.closed ? "open" : "closed";
}

function isClosed(answer) {
  return serviceState(answer) === "closed" && Boolean(answer.closed);
}

/** The service's state above the first screen: open until when, or closed; who waits. */
function showServiceState() {
  const box = $("service");
  if (!service) {
    box.hidden = true;
    return;
  }
  const state = serviceState(service);
  const parts = [];
  if (state === "closed") {
    parts.push(t("stateClosed"));
  } else if (state === "closing_soon" && service.last_intake_at) {
    parts.push(t("stateClosingSoon", { time: clock(service.last_intake_at) }));
  } else if (service.last_intake_at) {
    parts.push(t("stateOpenUntil", { time: clock(service.last_intake_at) }));
  } else {
    parts.push(t("stateOpen"));
  }
  const waiting = service.queue_length;
  if (state !== "closed" && typeof waiting === "number") {
    parts.push(
      waiting === 0 ? t("queueNone") : waiting === 1 ? t("queueOne") : t("queueMany", { n: waiting })
    );
  }
  box.dataset.state = state;
  $("service-state").textContent = parts[0];
  $("service-queue").textContent = parts[1] || "";
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
  } else if (isClosed(answer)) {
    showClosed(answer.closed);
    showAlert(message);
  } else {
    showTopics(message);
  }
  showServiceState();
}

/**
 * The same screen again with the server's latest answer: after a change of language
 * (`render`: the topics' titles too), or now and then for the queue's length and the state.
 */
async function refreshService({ render = false } = {}) {
  const answer = await fetchService();
  if (!answer || !atBeginning()) return;
  const wasClosed = service ? isClosed(service) : false;
  service = answer;
  for (const offer of document.querySelectorAll(".bot-offer")) offer.hidden = !answer.bot;
  if (!$("topics").hidden && isClosed(answer)) {
    showClosed(answer.closed);
  } else if (!$("closed").hidden && !isClosed(answer) && answer.intake_required !== false) {
    showTopics();
  } else if (!$("topics").hidden && (render || wasClosed)) {
    renderTopics(answer.topics);
  } else if (!$("closed").hidden && answer.closed && render) {
    showClosed(answer.closed);
  }
  showServiceState();
}

setInterval(() => {
  if (atBeginning() && document.visibilityState === "visible") refreshService();
}, SERVICE_REFRESH_MS);

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

let allTopics = false; // ?topic= shows only that topic until the person asks for the others

function renderTopics(topics) {
  const wanted = params.get("topic");
  const only = !allTopics && wanted && topics.some((topic) => topic.id === wanted);
  const shown = only ? topics.filter((topic) => topic.id === wanted) : topics;
  const items = shown.map((topic) => {
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
  $("other-topics").hidden = !only;
}

// --- the intake -------------------------------------------------------------------------

function beginIntake(topicId) {
  const openId = newMsgId();
  store.setItem(KEY.openId, openId);
  store.setItem(KEY.topic, topicId);
  intakeStart = { type: "intake.start", topic: topicId, language: lang, open_id: openId };
  const botToken = store.getItem(KEY.botToken);
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
  store.setItem(KEY.botToken, token);
  connection.stop();
  token = null;
  store.removeItem(KEY.token);
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
  store.removeItem(KEY.intake);
  store.removeItem(KEY.topic);
  store.removeItem(KEY.openId);
}

function receiveStep(msg) {
  if (!connection.isReady) connection.ready();
  intakeStart = null;
  if (msg.token && msg.token !== "-") {
    intakeToken = msg.token;
    store.setItem(KEY.intake, intakeToken);
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
  if (msg.step === "identify" && step && step.step === "identify" && box.dataset.step === "identify") {
    // The same step with a fresh link (the last one was used): keep what is on the screen.
    step = msg;
    const url = safeUrl((msg.detail || {}).url);
    if (url) box.dataset.identifyUrl = url;
    return;
  }
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
    const label = el("p", "progress-text", t("progress", { i: progress.index, n: progress.total }));
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
    const label = t("call", { number: link.href.replace(/^tel:/, "") });
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
  if (url) box.dataset.identifyUrl = url;
  if (url) {
    const identify = el("button", "primary", t("identifyButton"));
    identify.type = "button";
    // Each link works once: the server sends a fresh one after each use.
    identify.addEventListener("click", () => openIdentification(box.dataset.identifyUrl, status));
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

// The identification pop-up hands its opener a one-time code; this page's websocket, which
// owns the intake, redeems it (a link opened in anyone else's browser identifies nobody).
window.addEventListener("message", (event) => {
  if (event.origin !== location.origin || !event.data || event.data.kanava !== "identified") return;
  if (!step || step.step !== "identify") return;
  if (!event.data.ok || typeof event.data.code !== "string") {
    identifyStatus(t("identifyFailed"));
    return;
  }
  connection.send({ type: "intake.identify", code: event.data.code });
});

function identifyStatus(text) {
  const status = $("intake").querySelector(".identify-status");
  if (status) status.textContent = text;
}

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
  const botToken = store.getItem(KEY.botToken);
  if (botToken && kind !== "emergency") {
    // The nurse's chat did not open (e.g. under 18): the chat with the bot is still there.
    const back = el("button", "primary", t("backToBot"));
    back.type = "button";
    back.addEventListener("click", () => {
      forgetIntake();
      token = botToken;
      store.setItem(KEY.token, token);
      store.removeItem(KEY.botToken);
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
    store.removeItem(KEY.intake);
    const openId = store.getItem(KEY.openId);
    const topic = store.getItem(KEY.topic);
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
    showBeginning(
      limitText(err) || (err.code === "intake_unknown_topic" && err.reason ? err.reason : t("genericError"))
    );
    return;
  }
  if (ref === "intake.identify") {
    identifyStatus(t("identifyFailed"));
    return;
  }
  if (limitText(err)) {
    showStepError(limitText(err));
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
    store.setItem(KEY.conversation, conversationId);
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
      store.setItem(KEY.token, token);
      store.removeItem(KEY.botToken);
      openRequest = null;
      forgetIntake();
      step = null;
      restarted = false;
      showAlert("");
      adopt(msg.conversation);
      connection.ready();
      // The chat begins: a screen reader starts at its heading, the keyboard goes on from it.
      if (!$("chat").contains(document.activeElement)) $("chat-title").focus();
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
      if (m.sender_role !== "client") showTyping(false);
      markRead();
      break;
    }
    case "message.ack":
      outbox.acknowledge(msg.msg_id);
      if (list) list.acknowledged(msg.msg_id, msg.seq, msg.sent_at);
      break;
    case "typing":
      if (msg.conversation_id !== conversationId || msg.role === "client") break;
      showTyping(msg.typing);
      break;
    case "read":
      if (msg.conversation_id === conversationId && msg.role !== "client" && list) {
        list.peerRead(msg.seq);
      }
      break;
    case "feedback.saved":
      feedbackSaved(msg);
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

/** The text for a refusal by a limit (too much from one network, or a full server), else null. */
function limitText(err) {
  if (err.code === "rate_limited" || err.code === "address_limit" || err.code === "busy") {
    const minutes = Math.max(1, Math.ceil((err.retry_after_ms || 60000) / 60000));
    return t("tooMany").replace("{minutes}", String(minutes));
  }
  return null;
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
  if (ref === "bot.start") {
    // Back to where the bot was offered, saying why (a limit: when to try again).
    connection.stop();
    openRequest = null;
    showBeginning(limitText(err) || t("genericError"));
    return;
  }
  if (ref === "conversation.open") {
    connection.stop();
    openRequest = null;
    if (err.code === "intake_required") {
      showBeginning(); // the server wants the intake after all
    } else {
      showStart(limitText(err) || (err.code === "unknown_team" ? t("unknownTeam") : t("genericError")));
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
    const key =
      err.code === "text_too_long" ? "tooLong"
        : err.code === "conversation_closed" ? "closedError"
          : "genericError";
    if (list) {
      list.failed(ref, t(key));
      const item = list.byMsgId.get(ref);
      if (item) item.dataset.failKey = key; // said again in another language
    }
    return;
  }
  if (ref === "feedback.send") {
    feedbackError(
      err.code === "text_too_long" ? "feedbackTooLong"
        : err.code === "invalid_field" ? "feedbackEmpty"
          : "genericError"
    );
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
  store.removeItem(KEY.token);
  store.removeItem(KEY.conversation);
  outbox.clear();
  if (typingNotifier) typingNotifier.stop();
  typingNotifier = null;
  list = null;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  $("chat-with").textContent = "";
  $("chat-status").textContent = "";
  $("chat-wait").textContent = "";
  delete $("chat").dataset.state;
  document.body.classList.remove("chat-closed");
  $("ended").hidden = true;
  $("end-confirm").hidden = true;
  $("end").hidden = false;
  closing = false;
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

// Ending the chat takes a confirmation; Esc or "Cancel" goes back to the button.
$("end").addEventListener("click", () => {
  $("end-confirm").hidden = false;
  $("end").hidden = true;
  $("end-no").focus();
});

function cancelEnd() {
  $("end-confirm").hidden = true;
  $("end").hidden = false;
  $("end").focus();
}

$("end-no").addEventListener("click", cancelEnd);
$("end-confirm").addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    event.preventDefault(); // the widget's frame would close on an Esc of its own
    cancelEnd();
  }
});
$("end-yes").addEventListener("click", () => {
  closing = true;
  $("end-confirm").hidden = true;
  // Sent now, or as soon as the connection is back.
  if (!connection.send({ type: "conversation.close", conversation_id: conversationId })) {
    closeWanted = conversationId;
  }
});

$("feedback").addEventListener("submit", sendFeedback);
for (const type of ["input", "change"]) {
  $("feedback").addEventListener(type, () => {
    if ($("feedback-error").textContent) setWord($("feedback-error"), null);
    $("feedback-comment").removeAttribute("aria-invalid");
  });
}
$("transcript").addEventListener("click", downloadTranscript);

$("new-chat").addEventListener("click", () => {
  connection.stop();
  forgetConversation();
  showBeginning();
});

$("other-topics").addEventListener("click", () => {
  allTopics = true;
  renderTopics(service ? service.topics : []);
  const first = $("topic-list").querySelector("button");
  if (first) first.focus();
});

document.addEventListener("visibilitychange", markRead);

// --- start ------------------------------------------------------------------------------

// In the widget's frame (?embed=1) the page is compact; embed_bridge.js says so too.
if (params.get("embed") === "1") document.documentElement.classList.add("embedded");
await loadWords(lang);
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
