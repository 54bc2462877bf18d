// The citizen's chat page: the entry that wires its modules together and starts it.
//
//   client_state.js     the tokens in sessionStorage, the conversation and intake, the connection
//   client_i18n.js      the page's own words in fi/sv/en, and the language's change
//   client_screen.js    which section shows, the alert, the connection's notice
//   client_start.js     the service's state, the topics or the closed notice, the ways to begin
//   client_question.js  one question of the intake: its form and its answer
//   client_intake.js    the intake's steps: questions, emergency, who may chat, station, review,
//                       ends; Back within the intake (the page's button and the browser's)
//   client_feedback.js  after the end of a chat: feedback and the transcript
//   client_chat.js      the queue and the chat: messages, composer, typing, read marks, the end
//
// The person begins at the service's state and a choice: my own health matter (a topic, then
// the intake) or a general question for the advice bot. Then the chat: wait in the queue,
// chat, resume after a reload or a dropped connection; at the end, feedback and the transcript.
// Here: the protocol's messages and errors routed to the module that owns them, a change of
// language shown everywhere, and the first screen (the chat or the intake this tab was in, or
// the beginning). In the widget's frame (?embed=1) the page is compact, and embed_bridge.js
// talks with the host page.
//
// Each module imports only those above it in this list (and kanava.js), so there is no circle;
// what one must reach further down is handed to it from here (`listen`, `onLanguageChange`).

import { connection, listen, outbox, params, state } from "/static/client_state.js";
import { lang, limitText, loadWords, onLanguageChange, setLanguage, t } from "/static/client_i18n.js";
import { $, atBeginning, showConnection } from "/static/client_screen.js";
import {
  refreshService,
  showBeginning,
  showIntakeWaiting,
  showServiceState,
  showStart,
  wireStart,
} from "/static/client_start.js";
import { handleIntakeError, receiveStep, renderStep, wireIntake } from "/static/client_intake.js";
import { feedbackRefused, feedbackSaved, wireFeedback } from "/static/client_feedback.js";
import {
  acknowledged,
  adopt,
  forgetConversation,
  history,
  messageRefused,
  opened,
  peerRead,
  peerTyping,
  received,
  showChat,
  showChatInLanguage,
  wireChat,
} from "/static/client_chat.js";

/** The whole page in the language just chosen. */
function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = `Kanava – ${t("tagline")}`;
  $("ui-language").value = lang;
  for (const node of document.querySelectorAll("[data-t]")) {
    node.textContent = t(node.dataset.t);
  }
  showChatInLanguage();
  // The server's texts stay in the intake's language; the page's own words follow the choice.
  if (state.step && !$("intake").hidden) renderStep(state.step, { keepAnswer: true, focus: false });
  if (atBeginning()) {
    showServiceState();
    refreshService({ render: true });
  }
}

function handle(msg) {
  switch (msg.type) {
    case "intake.step":
      receiveStep(msg);
      break;
    case "conversation.opened":
      opened(msg);
      break;
    case "conversation.state": {
      const first = !connection.isReady;
      adopt(msg.conversation);
      if (first) connection.ready();
      break;
    }
    case "message.history":
      history(msg);
      break;
    case "message.new":
      received(msg.message);
      break;
    case "message.ack":
      acknowledged(msg);
      break;
    case "typing":
      peerTyping(msg);
      break;
    case "read":
      peerRead(msg);
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
    state.openRequest = null;
    showBeginning(limitText(err) || t("genericError"));
    return;
  }
  if (ref === "conversation.open") {
    connection.stop();
    state.openRequest = null;
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
    messageRefused(ref, err);
    return;
  }
  if (ref === "feedback.send") {
    feedbackRefused(err);
    return;
  }
  if (err.code === "already_open" || err.code === "rate_limited") return;
  console.warn("kanava: error", err);
}

listen({ onMessage: handle, onStatus: showConnection });
onLanguageChange(applyLanguage);
$("ui-language").addEventListener("change", (event) => setLanguage(event.target.value));
wireStart();
wireIntake();
wireChat();
wireFeedback();

// --- start ------------------------------------------------------------------------------

// In the widget's frame (?embed=1) the page is compact; embed_bridge.js says so too.
if (params.get("embed") === "1") document.documentElement.classList.add("embedded");
await loadWords(lang);
applyLanguage();
if (state.token) {
  showChat();
  $("chat-status").textContent = t("connecting");
  connection.start();
} else if (state.intakeToken) {
  showIntakeWaiting();
  connection.start();
} else {
  showBeginning();
}
