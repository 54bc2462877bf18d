// Where a person without a chat begins. The service's state from /api/service (open until
// when, closing soon, closed; how many wait), refreshed while nothing is typed; then the
// topics (?topic= shows one until the person asks for the others) with who the nurse chat is
// for and where the others turn, the closed notice with the numbers to call, or the plain
// name-and-topic form of a server that does not require the intake (`intake_required: false`).
//
// And the ways a chat begins: a topic's intake, the advice bot (anonymous, at any hour), the
// bot's handover to a nurse, the plain form. Each waits in the intake's section for the
// server's first answer; client_intake.js shows the steps that follow.

import { el, newMsgId, phoneLink } from "/static/kanava.js";
import { KEY, connection, forgetIntake, params, state, store } from "/static/client_state.js";
import { LANGS, clock, lang, setLanguage, t } from "/static/client_i18n.js";
import { $, atBeginning, showAlert, showOnly } from "/static/client_screen.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const SERVICE_REFRESH_MS = 60_000; // the queue's length and the state, while nothing is typed

let serviceLoad = 0; // ignores answers of /api/service requests that were overtaken
let allTopics = false; // ?topic= shows only that topic until the person asks for the others

// --- the service: open or closed, and the topics ------------------------------------------

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
export function showServiceState() {
  const box = $("service");
  const service = state.service;
  if (!service) {
    box.hidden = true;
    return;
  }
  const now = serviceState(service);
  const parts = [];
  if (now === "closed") {
    parts.push(t("stateClosed"));
  } else if (now === "closing_soon" && service.last_intake_at) {
    parts.push(t("stateClosingSoon", { time: clock(service.last_intake_at) }));
  } else if (service.last_intake_at) {
    parts.push(t("stateOpenUntil", { time: clock(service.last_intake_at) }));
  } else {
    parts.push(t("stateOpen"));
  }
  const waiting = service.queue_length;
  if (now !== "closed" && typeof waiting === "number") {
    parts.push(
      waiting === 0 ? t("queueNone") : waiting === 1 ? t("queueOne") : t("queueMany", { n: waiting })
    );
  }
  box.dataset.state = now;
  $("service-state").textContent = parts[0];
  $("service-queue").textContent = parts[1] || "";
}

/** Where a person without a chat begins: the topics, the closed notice, or the plain form. */
export async function showBeginning(message = "") {
  state.step = null;
  showOnly("loading");
  showAlert("");
  const answer = await fetchService();
  if (!answer) return;
  state.service = answer;
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
export async function refreshService({ render = false } = {}) {
  const answer = await fetchService();
  if (!answer || !atBeginning()) return;
  const wasClosed = state.service ? isClosed(state.service) : false;
  state.service = answer;
  for (const offer of document.querySelectorAll(".bot-offer")) offer.hidden = !answer.bot;
  if (!$("topics").hidden && isClosed(answer)) {
    showClosed(answer.closed);
  } else if (!$("closed").hidden && !isClosed(answer) && answer.intake_required !== false) {
    showTopics();
  } else if (!$("topics").hidden && (render || wasClosed)) {
    renderTopics(answer.topics);
    renderAudience(answer.audience);
  } else if (!$("closed").hidden && answer.closed && render) {
    showClosed(answer.closed);
  }
  showServiceState();
}

function showClosed(closed) {
  showOnly("closed");
  $("closed-text").textContent = closed.text || "";
  $("closed-advice").textContent = closed.advice || "";
  $("closed-advice").hidden = !closed.advice;
  $("closed-numbers").replaceChildren(...numberItems(closed.numbers));
}

/** Numbers to call as list items, each a tel: link. */
export function numberItems(numbers) {
  return (numbers || []).map((entry) => {
    const item = el("li");
    item.append(phoneLink(entry));
    return item;
  });
}

function showTopics(message = "") {
  showOnly("topics");
  showAlert(message);
  renderTopics(state.service ? state.service.topics : []);
  renderAudience(state.service ? state.service.audience : null);
  $("topics-title").focus();
}

/** Who the nurse chat is for, and where the others turn (the server's words). */
function renderAudience(audience) {
  const box = $("audience");
  box.hidden = !audience || !audience.text;
  if (box.hidden) return;
  $("audience-text").textContent = audience.text;
  const others = (audience.others || []).map((line) => el("li", "", line));
  $("audience-others").replaceChildren(...others);
  $("audience-others").previousElementSibling.hidden = others.length === 0;
}

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

/** The plain form (a server without the intake), with why the last try failed if it did. */
export function showStart(message = "") {
  showOnly("start");
  showAlert(message);
  $("language").value = lang;
  $("start-form").querySelector("button").disabled = false;
  $("client-name").focus();
}

// --- the ways to begin --------------------------------------------------------------------

function beginIntake(topicId) {
  const openId = newMsgId();
  store.setItem(KEY.openId, openId);
  store.setItem(KEY.topic, topicId);
  state.intakeStart = { type: "intake.start", topic: topicId, language: lang, open_id: openId };
  // The widget's data-team-or-station: the station preselected when the intake asks for one.
  const station = params.get("team");
  if (station && /^[A-Za-z0-9_-]{1,64}$/.test(station)) state.intakeStart.station = station;
  const botToken = store.getItem(KEY.botToken);
  if (botToken) state.intakeStart.bot_token = botToken;
  state.restarted = false;
  showAlert("");
  showIntakeWaiting();
  connection.stop();
  connection.start();
}

/** From the bot to a nurse: the intake's questions, then the same chat in a nurse's queue. */
export function beginHandoff() {
  if (!state.token) return;
  store.setItem(KEY.botToken, state.token);
  connection.stop();
  state.token = null;
  store.removeItem(KEY.token);
  showTopics(t("handoffIntro"));
}

/** A chat with the advice bot: anonymous, at any hour (bot.start instead of the intake). */
export function beginBotChat() {
  forgetIntake();
  state.openRequest = { type: "bot.start", language: lang, open_id: newMsgId() };
  showAlert("");
  showIntakeWaiting();
  connection.stop();
  connection.start();
}

/** The intake's section while the server's first answer is on its way. */
export function showIntakeWaiting() {
  showOnly("intake");
  $("intake").className = "card intake";
  $("intake").replaceChildren(el("p", "loading", t("waiting")));
}

/** The start's buttons and form, and the service's state kept fresh on the first screens. */
export function wireStart() {
  for (const button of document.querySelectorAll(".bot-offer button")) {
    button.addEventListener("click", () => beginBotChat());
  }

  $("start-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showAlert("");
    const language = $("language").value;
    state.openRequest = {
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

  $("other-topics").addEventListener("click", () => {
    allTopics = true;
    renderTopics(state.service ? state.service.topics : []);
    const first = $("topic-list").querySelector("button");
    if (first) first.focus();
  });

  setInterval(() => {
    if (atBeginning() && document.visibilityState === "visible") refreshService();
  }, SERVICE_REFRESH_MS);
}
