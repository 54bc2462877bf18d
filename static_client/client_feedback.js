// The end of a chat: the outcome the professional chose (a code from the server, said in this
// page's words), feedback (a rating and a comment, both optional; given once per conversation,
// which this tab remembers) and the transcript, a text file made here from the messages on
// the screen, with the outcome.

import { el } from "/static/kanava.js";
import { KEY, connection, state, store } from "/static/client_state.js";
import { LOCALES, describePro, lang, maybe, plainWord, setLinkedWord, setWord, t } from "/static/client_i18n.js";
import { $ } from "/static/client_screen.js";

/** The words of a closed chat's outcome code (null: none, or a code this page does not know:
 * nothing but these fixed words is ever shown as the outcome). */
function outcomeKey(v) {
  const key = v && v.outcome ? `outcome.${v.outcome}` : null;
  return key && maybe(key) ? key : null;
}

/** Under "The chat has ended": what the professional concluded (null: hide it). */
export function showOutcome(v) {
  const key = outcomeKey(v);
  const box = $("ended-outcome");
  box.hidden = !key;
  if (key) setLinkedWord($("ended-outcome-text"), key);
  else $("ended-outcome-text").replaceChildren();
}

/** The form afresh when a chat ends, or the thanks if this chat's feedback was given. */
export function showFeedbackForm() {
  const form = $("feedback");
  const given = store.getItem(KEY.feedback) === state.conversationId;
  form.reset();
  form.hidden = given;
  form.removeAttribute("aria-busy");
  form.querySelector("button[type=submit]").disabled = false;
  setWord($("feedback-error"), null);
  $("feedback-comment").removeAttribute("aria-invalid");
  setWord($("feedback-status"), given ? "feedbackThanks" : null);
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

/** The server refused the feedback.send. */
export function feedbackRefused(err) {
  feedbackError(
    err.code === "text_too_long" ? "feedbackTooLong"
      : err.code === "invalid_field" ? "feedbackEmpty"
        : "genericError"
  );
}

export function feedbackSaved(msg) {
  if (msg.conversation_id !== state.conversationId) return;
  store.setItem(KEY.feedback, state.conversationId);
  setWord($("feedback-status"), "feedbackThanks");
  const form = $("feedback");
  const hadFocus = form.contains(document.activeElement);
  form.hidden = true;
  if (hadFocus) $("transcript").focus();
}

/** The messages on the screen as plain text: the date, who took part, each time and text. */
function transcriptText() {
  const locale = LOCALES[lang] || "fi-FI";
  const v = state.view || {};
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
    const failed = item.dataset.state === "failed" ? ` (${t("failed")})` : "";
    const text = item.querySelector(".msg-text").textContent.replace(/\r?\n/g, "\n    ");
    lines.push(`[${when}] ${sender}: ${text}${failed}`);
  }
  const head = [
    t("transcriptTitle"),
    `${t("transcriptDate")}: ${day(created)}`,
    `${t("transcriptParties")}: ${parties.join("; ")}`,
  ];
  if (v.topic) head.push(`${t("transcriptTopic")}: ${v.topic}`);
  const tail = v.state === "closed" ? ["", $("chat-status").textContent] : [];
  const outcome = outcomeKey(v);
  if (outcome) tail.push(`${t("outcomeTitle")}: ${plainWord(outcome)}`);
  return [...head, "", ...lines, ...tail, ""].join("\n");
}

function downloadTranscript() {
  const created = new Date((state.view && state.view.created_at) || Date.now());
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

export function wireFeedback() {
  $("feedback").addEventListener("submit", sendFeedback);
  for (const type of ["input", "change"]) {
    $("feedback").addEventListener(type, () => {
      if ($("feedback-error").textContent) setWord($("feedback-error"), null);
      $("feedback-comment").removeAttribute("aria-invalid");
    });
  }
  $("transcript").addEventListener("click", downloadTranscript);
}
