// Which part of the citizen page shows: one section at a time (the loading line, the closed
// notice, the topics, the intake, the plain form, the chat), the service's state only above
// the screens where a chat begins, the alert, and the quiet notice of a dropped connection.

import { el } from "/static/kanava.js";
import { state } from "/static/client_state.js";
import { setWord } from "/static/client_i18n.js";

export const $ = (id) => document.getElementById(id);

const SECTIONS = ["loading", "closed", "topics", "intake", "start", "chat"];
const BEGINNINGS = new Set(["closed", "topics", "start"]);

export function showOnly(id) {
  for (const section of SECTIONS) $(section).hidden = section !== id;
  // The service's state is shown before anything is typed: on the screens that begin a chat.
  $("service").hidden = !BEGINNINGS.has(id) || !state.service;
  document.body.classList.toggle("in-chat", id === "chat");
}

/** On a screen where a chat begins (the topics, the closed notice, the plain form). */
export function atBeginning() {
  return [...BEGINNINGS].some((id) => !$(id).hidden);
}

export function showConnection(status) {
  // A quiet notice (role=status, empty and so out of sight otherwise): the chat goes on.
  const notice = $("conn-notice");
  if (status === "reconnecting") {
    setWord(notice, "reconnecting");
  } else if (status === "ready" || status === "open" || status === "connecting") {
    setWord(notice, null);
  }
}

export function showAlert(text) {
  const alert = $("alert");
  alert.textContent = text || "";
  alert.hidden = !text;
}

/** A heading that takes focus when its step appears, so a screen reader starts there. */
export function stepHeading(tag, text, className = "") {
  const heading = el(tag, className, text);
  heading.tabIndex = -1;
  return heading;
}
