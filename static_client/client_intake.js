// The intake's steps, as the server sends them one at a time: the questions (red flags
// first), an emergency that ends in "call 112 now", identification in a pop-up, the choice of
// health station, and the ends that open no chat (the advice bot, guidance, closed).
//
// The server decides every step; this page only shows the step it was sent and sends back
// what the person chose, so a refused answer is explained with the server's own words. A lost
// intake is resumed, or started again with the same open_id (which finds a chat it queued).

import { el, phoneLink } from "/static/kanava.js";
import { KEY, connection, forgetIntake, state, store } from "/static/client_state.js";
import { lang, limitText, t } from "/static/client_i18n.js";
import { $, showAlert, showOnly, stepHeading } from "/static/client_screen.js";
import { beginBotChat, numberItems, showBeginning } from "/static/client_start.js";
import { questionForm, readAnswer } from "/static/client_question.js";

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

function renderQuestion(box, q, progress) {
  const { form, legend } = questionForm(q, progress);
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

// --- identification -----------------------------------------------------------------------

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

// --- the station and the ends -------------------------------------------------------------

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
  const botOn = !state.service || state.service.bot !== false;
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

// --- refusals -------------------------------------------------------------------------------

/** An error in answer to an intake command (`ref` is its type). */
export function handleIntakeError(err, ref) {
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
