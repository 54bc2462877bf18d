// The intake's steps, as the server sends them one at a time: the questions (red flags
// first), an emergency that ends in "call 112 now", who may chat (identification in a pop-up,
// or the person's age and home municipality as questions), the choice not to identify (only
// the advice bot, or identify after all), the health station (the page's own preselected),
// the review of every answer before sending, and the ends that open no chat (the advice bot,
// guidance, closed).
//
// The server decides every step; this page only shows the step it was sent and sends back
// what the person chose, so a refused answer is explained with the server's own words. Back
// on a step, Edit on the review and the browser's own Back button all ask the server for the
// step before (intake.back): each step the person sees is an entry of the tab's history
// (pushState), so Back moves within the questions instead of leaving the service. A lost
// intake is resumed, or started again with the same open_id (which finds a chat it queued).

import { el, phoneLink } from "/static/kanava.js";
import { KEY, connection, forgetIntake, state, store } from "/static/client_state.js";
import { lang, limitText, t } from "/static/client_i18n.js";
import { $, showAlert, showOnly, stepHeading } from "/static/client_screen.js";
import { beginBotChat, numberItems, showBeginning } from "/static/client_start.js";
import { backButton, progressBar, questionForm, readAnswer } from "/static/client_question.js";

const ENDS = new Set(["emergency", "bot", "guidance", "closed"]);

export function receiveStep(msg) {
  if (!connection.isReady) connection.ready();
  state.intakeStart = null;
  if (msg.token && msg.token !== "-") {
    state.intakeToken = msg.token;
    store.setItem(KEY.intake, state.intakeToken);
  }
  // An end takes no more answers. Its token stays: after a reload the server repeats the end
  // (call 112 stays on the screen) until the person starts over or the intake expires.
  if (ENDS.has(msg.step)) connection.stop();
  showAlert(state.restarted && msg.step === "question" ? t("intakeRestarted") : "");
  state.restarted = false;
  renderStep(msg, { focus: true });
  remember(msg);
}

export function renderStep(msg, { keepAnswer = false, focus = false } = {}) {
  const box = $("intake");
  const step = state.step;
  if (msg.step === "identify" && step && step.step === "identify" && box.dataset.step === "identify") {
    // The same step with a fresh link (the last one was used): keep what is on the screen.
    state.step = msg;
    const url = safeUrl((msg.detail || {}).url);
    if (url) box.dataset.identifyUrl = url;
    return;
  }
  let kept;
  if (keepAnswer && msg.step === "question") {
    const form = box.querySelector("form.question");
    if (form && form.dataset.question === msg.detail.id) kept = readAnswer(form, msg.detail);
  }
  state.step = msg;
  showOnly("intake");
  box.className = `card intake intake-${msg.step}`;
  box.dataset.step = msg.step;
  box.removeAttribute("role");
  const detail = msg.detail || {};
  let target;
  switch (msg.step) {
    case "question":
      target = renderQuestion(box, kept === undefined ? detail : { ...detail, answer: kept }, msg);
      break;
    case "emergency":
      target = renderEmergency(box, detail);
      break;
    case "identify":
      target = renderIdentify(box, detail, msg);
      break;
    case "anonymous":
      target = renderAnonymous(box, detail, msg);
      break;
    case "station":
      target = renderStation(box, detail, msg);
      break;
    case "review":
      target = renderReview(box, detail, msg);
      break;
    case "bot":
    case "guidance":
    case "closed":
      target = renderEnd(box, msg.step, detail, msg.triage);
      break;
    default:
      // A step this page does not know yet: wait for the next one rather than guess.
      box.replaceChildren(el("p", "loading", t("waiting")));
      console.warn("kanava: unknown intake step", msg.step);
  }
  if (focus && target) target.focus();
}

function renderQuestion(box, q, msg) {
  const { form, legend, back } = questionForm(q, msg.progress, { back: msg.back });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendIntake(form, {
      type: "intake.answer",
      question_id: q.id,
      value: readAnswer(form, q),
    });
  });
  if (back) back.addEventListener("click", () => goBack());
  box.replaceChildren(form);
  return legend;
}

/** The step's heading, and above it the progress (the section of how many). */
function stepTop(msg, title, className = "") {
  const heading = stepHeading("h1", title, className);
  const bar = progressBar(msg.progress, `step-${msg.step}-progress`);
  return bar ? [bar, heading] : [heading];
}

/** A row of a step's buttons, Back first when the step can go back. */
function stepActions(msg, ...buttons) {
  const actions = el("div", "step-actions");
  if (msg.back) {
    const back = backButton();
    back.addEventListener("click", () => goBack());
    actions.append(back);
  }
  actions.append(...buttons);
  return actions;
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
  for (const entry of numbers) parts.push(callNow(entry));
  box.replaceChildren(...parts);
  box.setAttribute("role", "alert"); // read out at once, whatever the screen reader was doing
  return heading;
}

/** A number as a big "Call …" link. */
function callNow(entry) {
  const link = phoneLink({ number: entry.number }, "call-now");
  const label = t("call", { number: link.href.replace(/^tel:/, "") });
  link.replaceChildren(label);
  if (entry.name) link.title = `${entry.name}: ${label}`;
  return link;
}

// --- who may chat: identification, or not ----------------------------------------------------

function renderIdentify(box, detail, msg) {
  const parts = stepTop(msg, t("identifyTitle"));
  const form = el("form", "identify");
  const status = el("p", "identify-status");
  status.setAttribute("aria-live", "polite");
  const error = el("p", "form-error");
  error.setAttribute("aria-live", "assertive");
  const buttons = [];
  const url = safeUrl(detail.url);
  if (url) box.dataset.identifyUrl = url;
  if (url) {
    const identify = el("button", "primary", t("identifyButton"));
    identify.type = "button";
    // Each link works once: the server sends a fresh one after each use.
    identify.addEventListener("click", () => openIdentification(box.dataset.identifyUrl, status));
    buttons.push(identify);
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
    buttons.push(anonymous);
  }
  form.append(el("p", "", detail.text || ""), status, error, stepActions(msg, ...buttons));
  box.replaceChildren(...parts, form);
  return parts[parts.length - 1];
}

/** Not identified: only the advice bot; the answers are kept, identifying is one step back. */
function renderAnonymous(box, detail, msg) {
  const parts = stepTop(msg, t("anonymousTitle"));
  parts.push(el("p", "", detail.text || ""));
  const buttons = [];
  const botOn = !state.service || state.service.bot !== false;
  if (botOn) {
    const talk = el("button", "primary", t("botStart"));
    talk.type = "button";
    talk.addEventListener("click", () => beginBotChat());
    buttons.push(talk);
  }
  // Back to the identify step, every answer kept.
  const again = el("button", botOn ? "secondary" : "primary", t("identifyAfterAll"));
  again.type = "button";
  again.addEventListener("click", () => {
    again.disabled = true;
    askBack();
  });
  buttons.push(again);
  const actions = el("div", "step-actions");
  actions.append(...buttons);
  parts.push(actions);
  if (detail.numbers && detail.numbers.length) {
    parts.push(el("h2", "numbers-title", t("numbersTitle")));
    const numbers = el("ul", "numbers");
    numbers.append(...numberItems(detail.numbers));
    parts.push(numbers);
  }
  box.replaceChildren(...parts);
  return parts.find((part) => part.tagName === "H1");
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
  // Each link works once: the newest one is taken at the moment of the click.
  const link = el("a", "", t("popupLink"));
  link.href = url;
  link.target = "_blank";
  link.rel = "opener";
  link.addEventListener("click", () => {
    link.href = $("intake").dataset.identifyUrl || url;
  });
  status.replaceChildren(`${t("popupBlocked")} `, link);
}

function identifyStatus(text) {
  const status = $("intake").querySelector(".identify-status");
  if (status) status.textContent = text;
}

/**
 * The identification pop-up hands its opener a one-time code; this page's websocket, which
 * owns the intake, redeems it (a link opened in anyone else's browser identifies nobody).
 * And the browser's Back button: one step back in the intake.
 */
export function wireIntake() {
  window.addEventListener("message", (event) => {
    if (event.origin === location.origin) identificationResult(event.data);
  });
  // When the provider's pages cut the pop-up off from its opener (a Cross-Origin-Opener-
  // Policy), its result page reaches this page over a channel of this origin instead. (In
  // the widget's frame on another site the browser keeps the two apart: there the opener is
  // the only way.)
  if ("BroadcastChannel" in window) {
    const channel = new BroadcastChannel("kanava-identification");
    channel.addEventListener("message", (event) => {
      if (!identificationResult(event.data)) return;
      channel.postMessage({ kanava: "identification-taken" });
    });
  }
  window.addEventListener("popstate", (event) => browserBack(event.state));
}

/** The pop-up's result for this page's identify step; true when a code was sent on. */
function identificationResult(data) {
  if (!data || data.kanava !== "identified") return false;
  if (!state.step || state.step.step !== "identify") return false;
  if (!data.ok || typeof data.code !== "string") {
    identifyStatus(t("identifyFailed"));
    return false;
  }
  connection.send({ type: "intake.identify", code: data.code });
  return true;
}

// --- the station and the review -----------------------------------------------------------------

function renderStation(box, detail, msg) {
  const parts = stepTop(msg, t("stationTitle"));
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
    option.selected = station.id === detail.selected;
    select.append(option);
  }
  const error = el("p", "form-error");
  error.id = "station-error";
  error.setAttribute("aria-live", "assertive");
  select.setAttribute("aria-describedby", error.id);
  const next = el("button", "primary", t("continue"));
  next.type = "submit";
  form.append(label, select, error, stepActions(msg, next));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!select.value) {
      showStepError(t("stationRequired"));
      return;
    }
    sendIntake(form, { type: "intake.station", station: select.value });
  });
  box.replaceChildren(...parts, form);
  return parts[parts.length - 1];
}

/** Every answer by section, each with its own Edit button; the station; Send. */
function renderReview(box, detail, msg) {
  const parts = stepTop(msg, t("reviewTitle"));
  if (detail.text) parts.push(el("p", "", detail.text));
  if (detail.identity && detail.identity.name) {
    parts.push(el("p", "review-identity", t("identifiedAs", { name: detail.identity.name })));
  }
  for (const section of detail.sections || []) {
    const title = el("h2", "review-section", section.title);
    const list = el("dl", "review-list");
    for (const answer of section.answers || []) {
      list.append(reviewRow(answer.label, answer.answer, t("edit"), () => {
        askBack({ type: "intake.back", question_id: answer.id });
      }));
    }
    parts.push(title, list);
  }
  if (detail.station) {
    const list = el("dl", "review-list review-station");
    const text = detail.station.name;
    list.append(reviewRow(t("stationTitle"), text, t("changeStation"), () => {
      askBack({ type: "intake.back", step: "station" });
    }));
    parts.push(el("h2", "review-section", t("stationTitle")), list);
  }
  const form = el("form", "review");
  const error = el("p", "form-error");
  error.setAttribute("aria-live", "assertive");
  const send = el("button", "primary", t("sendAnswers"));
  send.type = "submit";
  form.append(error, stepActions(msg, send));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendIntake(form, { type: "intake.confirm" });
  });
  parts.push(form);
  box.replaceChildren(...parts);
  return parts.find((part) => part.tagName === "H1");
}

/** One answer: what was asked, what was answered, and a button to change it. */
function reviewRow(label, value, action, onClick) {
  const row = el("div", "review-row");
  const term = el("dt", "", label);
  const answer = el("dd", "review-answer", value);
  const change = el("dd", "review-change");
  const button = el("button", "link-button", action);
  button.type = "button";
  // "Edit" alone is not enough out of context: the label goes with it for screen readers
  // (the visible word first, so that voice control finds it by what it shows).
  button.setAttribute("aria-label", `${action}: ${label}`);
  button.addEventListener("click", () => {
    button.disabled = true;
    onClick();
  });
  change.append(button);
  row.append(term, answer, change);
  return row;
}

// --- the ends -----------------------------------------------------------------------------------

const END_TITLES = { bot: "botTitle", guidance: "guidanceTitle", closed: "closedTitle" };
const TURNED_AWAY = { under_age: "underAgeTitle", not_resident: "notResidentTitle" };

function renderEnd(box, kind, detail, triage) {
  const heading = stepHeading("h1", t(TURNED_AWAY[detail.reason] || END_TITLES[kind]));
  const parts = [heading];
  if (detail.text) parts.push(el("p", "", detail.text));
  if (detail.advice) parts.push(el("p", "", detail.advice));
  // Turned away with an urgent matter: the helpline first, as big as a call can be.
  const urgent = triage === "urgent" && detail.reason && detail.numbers && detail.numbers.length;
  if (urgent) parts.push(callNow(detail.numbers[0]));
  const botOn = !state.service || state.service.bot !== false;
  // The advice bot serves everyone, so it is offered to those the nurse chat does not.
  if (botOn && (kind === "bot" || kind === "guidance" || (kind === "closed" && detail.bot))) {
    const talk = el("button", urgent ? "secondary" : "primary", t("botStart"));
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
      state.token = botToken;
      store.setItem(KEY.token, state.token);
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

// --- back: the page's button, the browser's -----------------------------------------------------
//
// Each step shown is a history entry {kanava: "intake", key, n}: n counts the entries of the
// intake, and the step that answers a step back replaces the entry it lands on, so that one
// press of Back is always one step. The server decides what "the step before" is.

let replaceNext = false; // the next step answers a step back: it replaces the entry
let firstEntry = null; // n of the first entry this page made (a reload starts again)
let shownEntry = null; // n of the entry of the step on the screen

function stepKey(msg) {
  return msg.step === "question" ? `question:${(msg.detail || {}).id}` : msg.step;
}

function remember(msg) {
  const key = stepKey(msg);
  const here = history.state && history.state.kanava === "intake" ? history.state : null;
  const replace = replaceNext;
  replaceNext = false;
  if (here && here.key === key) {
    // The same step again (a fresh link, a resume after a reload).
    if (firstEntry === null) firstEntry = here.n;
    shownEntry = here.n;
    return;
  }
  const n = here ? here.n + (replace ? 0 : 1) : 1;
  const entry = { kanava: "intake", key, n };
  if (replace && here) history.replaceState(entry, "");
  else history.pushState(entry, "");
  if (firstEntry === null) firstEntry = n;
  shownEntry = n;
}

/** Ask the server for the step before (or the one `msg` names); false when offline. */
function askBack(msg = { type: "intake.back" }) {
  replaceNext = true;
  if (connection.send(msg)) return true;
  replaceNext = false;
  showStepError(t("offline"));
  return false;
}

/** The page's Back button: the browser's own Back when the entry before is this page's. */
function goBack() {
  const here = history.state;
  if (here && here.kanava === "intake" && firstEntry !== null && here.n > firstEntry) {
    history.back(); // the popstate below asks the server
    return;
  }
  askBack();
}

/** The browser went back (or forward) to `entry` while this page shows the intake. */
function browserBack(entry) {
  const step = state.step;
  if (!step || $("intake").hidden) return; // the chat and the start keep their own screens
  if (step.step === "emergency") return; // call 112 stays on the screen
  const intakeEntry = entry && entry.kanava === "intake";
  if (intakeEntry && shownEntry !== null && entry.n > shownEntry) {
    // Forward to a step left behind: the screen stays on the step the intake is at.
    shownEntry = entry.n;
    return;
  }
  if (intakeEntry && step.back && !ENDS.has(step.step)) {
    shownEntry = entry.n;
    askBack();
    return;
  }
  // Back past the first question (or from an end): the topics, where the person began.
  connection.stop();
  forgetIntake();
  showBeginning();
}

// --- refusals -------------------------------------------------------------------------------

/** An error in answer to an intake command (`ref` is its type). */
export function handleIntakeError(err, ref) {
  if (ref === "intake.back") replaceNext = false;
  if (ref === "intake.resume") {
    // The intake is gone (expired, or it already queued the chat and this tab missed the
    // answer). The same open_id finds a queued chat; else the questions start over.
    state.intakeToken = null;
    store.removeItem(KEY.intake);
    const openId = store.getItem(KEY.openId);
    const topic = store.getItem(KEY.topic);
    if (openId && topic && !state.restarted) {
      state.restarted = true;
      state.intakeStart = { type: "intake.start", topic, language: lang, open_id: openId };
      connection.sendNow(state.intakeStart);
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
    if (state.intakeToken) connection.sendNow({ type: "intake.resume", token: state.intakeToken });
    return;
  }
  if (err.code === "unknown_station") {
    showStepError(t("stationUnknown"));
    return;
  }
  const localized = err.code && err.code.startsWith("intake_");
  showStepError(localized && err.reason ? err.reason : t("genericError"));
}
