// The citizen's chat page: open a conversation, wait in the queue, chat, resume after a
// reload or a dropped connection (the token lives in sessionStorage, so only this tab has it).

import { Connection, MessageList, Outbox, TypingNotifier } from "/static/kanava.js";

const KEY = {
  token: "kanava.client.token",
  conversation: "kanava.client.conversation",
  outbox: "kanava.client.outbox",
  ui: "kanava.client.ui",
};

const TEXT = {
  fi: {
    tagline: "Chat terveysaseman kanssa",
    uiLanguage: "Kieli",
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
  en: {
    tagline: "Chat with your health station",
    uiLanguage: "Language",
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

let lang = sessionStorage.getItem(KEY.ui) || (params.get("lang") === "en" ? "en" : "fi");
const t = (key) => TEXT[lang][key] ?? TEXT.fi[key];

let token = sessionStorage.getItem(KEY.token);
let conversationId = sessionStorage.getItem(KEY.conversation);
let view = null; // the latest ConversationView
let openRequest = null; // conversation.open waiting to be sent
let list = null;
let typingNotifier = null;
let readSent = 0;
let typingTimer = null;

const connection = new Connection({
  path: "/ws/client",
  hello() {
    if (token) return { type: "conversation.resume", token, last_seq: list ? list.lastSeq : 0 };
    return openRequest;
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
  $("start").hidden = false;
  $("chat").hidden = true;
  showAlert(message);
  $("client-name").focus();
}

function showChat() {
  $("start").hidden = true;
  $("chat").hidden = false;
  if (!list) {
    list = new MessageList($("messages"), {
      isOwn: (m) => m.sender_role === "client",
      labels: labels(),
      describeSender: (m) => m.sender_name || t("professional"),
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
  if (v.professional && !closed) {
    withLine.textContent = t("with")(v.professional.name, titleOf(v.professional));
  } else if (!closed) {
    withLine.textContent = "";
  }
  if (v.state === "queued") {
    const base = t("queued")(v.queue_position, v.queue_length);
    status.textContent = v.reason === "professional_disconnected" ? `${t("requeued")} ${base}` : base;
  } else if (v.state === "assigned") {
    status.textContent = v.reason === "transferred" ? t("transferred")(v.professional.name) : "";
  } else if (closed) {
    status.textContent = t("closedBy")[v.closed_by] || t("ended");
  }
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
    case "conversation.opened":
      token = msg.token;
      sessionStorage.setItem(KEY.token, token);
      openRequest = null;
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
    showStart(t("notFound"));
    return;
  }
  if (ref === "conversation.open") {
    connection.stop();
    openRequest = null;
    showStart(err.code === "unknown_team" ? t("unknownTeam") : t("genericError"));
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
}

// --- the user ---------------------------------------------------------------------------

$("ui-language").addEventListener("change", (event) => {
  lang = event.target.value === "en" ? "en" : "fi";
  sessionStorage.setItem(KEY.ui, lang);
  applyLanguage();
});

$("start-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showAlert("");
  const language = $("language").value;
  openRequest = {
    type: "conversation.open",
    // Sent again on every reconnect until answered: the server returns the same
    // conversation instead of queueing a second one.
    open_id: crypto.randomUUID(),
    client_name: $("client-name").value.trim().slice(0, 100),
    topic: $("topic").value.trim().slice(0, 100) || null,
    language,
    team: params.get("team") || null,
  };
  if (language === "en" && lang !== "en") {
    lang = "en";
    sessionStorage.setItem(KEY.ui, lang);
    applyLanguage();
  }
  $("start-form").querySelector("button").disabled = true;
  connection.start();
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const box = $("text");
  const text = box.value.trim();
  if (!text || !conversationId) return;
  const item = outbox.add(conversationId, text);
  list.addPending(item.msg_id, text);
  typingNotifier.stop();
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
  $("start-form").querySelector("button").disabled = false;
  showStart();
});

document.addEventListener("visibilitychange", markRead);

// --- start ------------------------------------------------------------------------------

applyLanguage();
if (token) {
  showChat();
  $("chat-status").textContent = t("connecting");
  connection.start();
} else {
  showStart();
}
