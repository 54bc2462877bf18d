// The chat: who it is with (a nurse, a doctor, the advice bot), who the client identified as,
// the place in the queue and the wait (or that it cannot be estimated now) with what to do
// meanwhile (an urgent matter: whom to call if it gets worse), the messages (the bot's marked,
// its quick replies and its handover to a nurse), the composer, typing and read marks, and
// ending the chat with a confirmation. Messages written and not yet acknowledged stay in the
// outbox (sessionStorage) and are sent again on every connect; after a reload or a dropped
// connection the chat resumes from the last seq seen.
//
// What follows the end (the outcome, feedback, the transcript) is client_feedback.js.

import { MessageList, TypingNotifier, el } from "/static/kanava.js";
import { KEY, connection, forgetIntake, outbox, state, store } from "/static/client_state.js";
import { describePro, lang, roleOf, setLinkedWord, t } from "/static/client_i18n.js";
import { $, showAlert, showOnly } from "/static/client_screen.js";
import { beginHandoff, showBeginning } from "/static/client_start.js";
import { showFeedbackForm, showOutcome } from "/static/client_feedback.js";

const BOT_TEAM = "bot"; // the advice bot's queue: a chat there waits for the bot, not a nurse

let typingNotifier = null;
let readSent = 0;
let typingTimer = null;
let closing = false; // the client pressed "Yes, end it": focus goes to the end's heading

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
    state.list.setState(item, item.dataset.state || "sending", item.dataset.state === "failed" ? reason : "");
  } else if (item.dataset.bot === "1") {
    item.querySelector(".msg-sender").textContent = t("botName");
  }
}

/** The chat's own words again after a change of language (messages stay as written). */
export function showChatInLanguage() {
  if (state.list) {
    state.list.labels = labels();
    for (const item of $("messages").querySelectorAll(".msg")) relabel(item);
  }
  if (state.view) showView(state.view);
  if ($("typing").textContent && state.view) showTyping(true);
}

/** Whether a message of the conversation came from the advice bot (not from a person). */
function fromBot(m) {
  const view = state.view;
  if (m.sender_role === "client") return false;
  if (view && view.professional && view.professional.bot && m.sender_id === view.professional.id) {
    return true;
  }
  // Handed over from the bot to a nurse: the bot's part comes first, up to bot_seq.
  return Boolean(view && view.bot_seq && m.seq <= view.bot_seq);
}

export function showChat() {
  showOnly("chat");
  if (!state.list) {
    state.list = new MessageList($("messages"), {
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
    for (const item of outbox.forConversation(state.conversationId)) {
      state.list.addPending(item.msg_id, item.text);
    }
  }
  if (!typingNotifier) typingNotifier = new TypingNotifier(connection, state.conversationId);
}

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
  showIdentified(v);
  const queued = v.state === "queued";
  if (queued && v.team === BOT_TEAM) {
    setText(status, t("connectingBot"));
    setText($("chat-wait"), "");
  } else if (queued) {
    // Always both: the place, and the wait or that it cannot be estimated now.
    const place = v.queue_position ? t("queuedAt", { pos: v.queue_position }) : t("queuedNoPosition");
    const why = whyQueuedAgain(v);
    setText(status, why ? `${why} ${place}` : place);
    const known = v.wait_min_minutes != null && v.wait_max_minutes != null;
    setText(
      $("chat-wait"),
      known ? t("wait", { low: v.wait_min_minutes, high: v.wait_max_minutes }) : t("waitUnknown"),
    );
  } else {
    setText($("chat-wait"), "");
    if (v.state === "assigned") {
      setText(status, v.reason === "transferred" && pro ? t("transferred", { name: pro.name }) : "");
    } else if (closed) {
      setText(
        status,
        v.reason === "client_left"
          ? t("closedIdle")
          : v.closed_by === "client"
          ? t("closedBy.client")
          : v.closed_by === "professional"
            ? t("closedBy.professional", { name: pro && !pro.bot ? pro.name : pro ? t("botName") : t("professional") })
            : t("ended"),
      );
    }
  }
  showAdvice(queued && v.team !== BOT_TEAM ? v : null);
  showOutcome(closed ? v : null);
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
  if (state.list) state.list.peerRead(v.read_professional_seq || 0);
}

/** Change a live region's text only when it changes: the same words are not read again. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Why a chat that had a professional waits in the queue again (or null). */
function whyQueuedAgain(v) {
  if (v.reason === "professional_disconnected") return t("requeued");
  if (v.reason === "transferred") return t(v.escalated ? "requeuedDoctor" : "requeuedTeam");
  return null;
}

/** "Identified: Aino Testinen · Kallion terveysasema": the client's own name and station. */
function showIdentified(v) {
  const who = v.identified;
  const line = who && who.name ? t("identified", { name: who.name }) : "";
  setText($("chat-identified"), line && who.station_name ? `${line} · ${who.station_name}` : line);
}

/** While waiting for a person: for an urgent matter whom to call if it gets worse (116 117,
 * 112); for a routine one a calm word about the wait. (null: nothing.) */
function showAdvice(v) {
  const box = $("chat-advice");
  const kind = !v ? "" : v.triage === "urgent" ? "urgent" : v.triage === "routine" ? "routine" : "plain";
  // Built again only when it changes: a queue update must not take the focus off a link.
  if (box.dataset.triage === kind && box.dataset.lang === lang) return;
  box.dataset.triage = kind;
  box.dataset.lang = lang;
  if (!kind) {
    box.replaceChildren();
    return;
  }
  const parts = [];
  if (kind === "urgent") {
    const safety = el("p", "safety-net");
    setLinkedWord(safety, "waitUrgent");
    parts.push(safety);
  }
  parts.push(el("p", "chat-hint", t(kind === "routine" ? "waitRoutine" : "waitPlain")));
  box.replaceChildren(...parts);
}

function showTyping(on) {
  clearTimeout(typingTimer);
  if (!on) {
    $("typing").textContent = "";
    return;
  }
  const view = state.view;
  const name = view && view.professional && !view.professional.bot
    ? view.professional.name
    : view && view.professional ? t("botName") : t("professional");
  $("typing").textContent = t("typing", { name });
  typingTimer = setTimeout(() => ($("typing").textContent = ""), 10000);
}

function markRead() {
  const list = state.list;
  if (!list || document.visibilityState !== "visible" || !state.conversationId) return;
  const seq = list.lastPeerSeq();
  if (seq > readSent && state.view && state.view.state !== "closed") {
    if (connection.send({ type: "read.mark", conversation_id: state.conversationId, seq })) {
      readSent = seq;
    }
  }
}

// --- the protocol ---------------------------------------------------------------------------

/** The conversation as the server sees it now (conversation.opened or .state). */
export function adopt(v) {
  state.view = v;
  if (state.conversationId !== v.conversation_id) {
    state.conversationId = v.conversation_id;
    store.setItem(KEY.conversation, state.conversationId);
  }
  showChat();
  showView(v);
}

/** conversation.opened: the intake or the request is over, the chat begins. */
export function opened(msg) {
  state.token = msg.token;
  store.setItem(KEY.token, state.token);
  store.removeItem(KEY.botToken);
  state.openRequest = null;
  forgetIntake();
  state.step = null;
  state.restarted = false;
  showAlert("");
  adopt(msg.conversation);
  connection.ready();
  // The chat begins: a screen reader starts at its heading, the keyboard goes on from it.
  if (!$("chat").contains(document.activeElement)) $("chat-title").focus();
}

export function history(msg) {
  if (msg.conversation_id !== state.conversationId) return;
  for (const m of msg.messages) state.list.addStored(m);
  if (msg.up_to_date) markRead();
}

export function received(m) {
  if (m.conversation_id !== state.conversationId) return;
  state.list.addStored(m);
  if (m.sender_role !== "client") showTyping(false);
  markRead();
}

export function acknowledged(msg) {
  outbox.acknowledge(msg.msg_id);
  if (state.list) state.list.acknowledged(msg.msg_id, msg.seq, msg.sent_at);
}

export function peerTyping(msg) {
  if (msg.conversation_id !== state.conversationId || msg.role === "client") return;
  showTyping(msg.typing);
}

export function peerRead(msg) {
  if (msg.conversation_id === state.conversationId && msg.role !== "client" && state.list) {
    state.list.peerRead(msg.seq);
  }
}

/** An error in answer to one of the outbox's message.send (`ref` is its msg_id). */
export function messageRefused(ref, err) {
  if (err.code === "rate_limited" || err.code === "internal") {
    outbox.retryAfter(err.retry_after_ms || 2000);
    return;
  }
  outbox.acknowledge(ref);
  const key =
    err.code === "text_too_long" ? "tooLong"
      : err.code === "conversation_closed" ? "closedError"
        : "genericError";
  if (state.list) {
    state.list.failed(ref, t(key));
    const item = state.list.byMsgId.get(ref);
    if (item) item.dataset.failKey = key; // said again in another language
  }
}

export function forgetConversation() {
  state.token = null;
  state.conversationId = null;
  state.view = null;
  readSent = 0;
  store.removeItem(KEY.token);
  store.removeItem(KEY.conversation);
  outbox.clear();
  if (typingNotifier) typingNotifier.stop();
  typingNotifier = null;
  state.list = null;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  $("chat-with").textContent = "";
  $("chat-identified").textContent = "";
  $("chat-status").textContent = "";
  $("chat-wait").textContent = "";
  showAdvice(null);
  showOutcome(null);
  delete $("chat").dataset.state;
  document.body.classList.remove("chat-closed");
  $("ended").hidden = true;
  $("end-confirm").hidden = true;
  $("end").hidden = false;
  closing = false;
}

// --- the person ------------------------------------------------------------------------------

function sendText(text) {
  if (!text || !state.conversationId) return;
  const item = outbox.add(state.conversationId, text);
  state.list.addPending(item.msg_id, text);
  typingNotifier.stop();
}

function cancelEnd() {
  $("end-confirm").hidden = true;
  $("end").hidden = false;
  $("end").focus();
}

/** The composer, ending the chat, a new chat, and read marks when the page is seen again. */
export function wireChat() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const box = $("text");
    const text = box.value.trim();
    if (!text || !state.conversationId) return;
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
    if (!connection.send({ type: "conversation.close", conversation_id: state.conversationId })) {
      state.closeWanted = state.conversationId;
    }
  });

  $("new-chat").addEventListener("click", () => {
    connection.stop();
    forgetConversation();
    showBeginning();
  });

  document.addEventListener("visibilitychange", markRead);
}
