// The professional's console: sign in, see the queues, take chats, and chat in several at once.
//
// Each conversation has its own pane, built once and found only by its conversation_id; every
// message, typing notice and read receipt goes to the pane of the conversation_id it carries.

import { Connection, MessageList, Outbox, TypingNotifier, clockTime, el } from "/static/kanava.js";

const KEY = { session: "kanava.pro.session" };
const PANE_COLOURS = 6;
const CLOSE_REASONS = [
  ["resolved", "Resolved"],
  ["booked_appointment", "Appointment booked"],
  ["referred", "Referred elsewhere"],
  ["no_response", "No response from client"],
];
const LANGUAGES = { fi: "Finnish", sv: "Swedish", en: "English" };
const LABELS = {
  you: "You",
  sending: "Sending…",
  delivered: "Delivered",
  read: "Read",
  failed: "Not sent",
  offered: "Offered to the client",
};

const $ = (id) => document.getElementById(id);

let session = loadSession(); // {token, professional}
let me = null; // ProfessionalRef from welcome
let capacity = 0;
const panes = new Map(); // conversation_id -> Pane
const queues = new Map(); // team -> QueueSnapshot
let pendingTransfer = null; // the pane whose transfer we are waiting to hear about

const connection = new Connection({
  path: "/ws/pro",
  hello() {
    const cursors = {};
    for (const [cid, pane] of panes) if (pane.list.lastSeq) cursors[cid] = pane.list.lastSeq;
    return { type: "auth", token: session.token, cursors };
  },
  onMessage: handle,
  onStatus: showConnection,
  onReady() {
    outbox.flush();
  },
});
const outbox = new Outbox(connection);

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY.session) || "null");
  } catch {
    return null;
  }
}

// --- one pane per conversation ----------------------------------------------------------

/** A one-line form: a label, an id input with suggestions, a button. */
function idForm(id, labelText, list, placeholder, buttonText) {
  const form = el("form", "inline-form");
  const label = el("label", "", labelText);
  const input = el("input");
  input.id = id;
  input.setAttribute("list", list);
  input.placeholder = placeholder;
  input.required = true;
  input.maxLength = 64;
  label.htmlFor = id;
  const button = el("button", "quiet", buttonText);
  button.type = "submit";
  form.append(label, input, button);
  return [form, input];
}

class Pane {
  constructor(cid) {
    this.cid = cid;
    this.view = null;
    this.active = true;
    this.readSent = 0;
    this.typingTimer = null;
    this.colour = freeColour();
    const idPart = cid.replace(/[^A-Za-z0-9_-]/g, "");

    this.root = el("article", `pane pane-c${this.colour}`);
    this.root.dataset.conversationId = cid;
    this.root.setAttribute("aria-labelledby", `pane-title-${idPart}`);

    const head = el("header", "pane-head");
    this.badge = el("span", "pane-badge");
    this.badge.setAttribute("aria-hidden", "true");
    const who = el("div", "pane-who");
    this.title = el("h3", "pane-name", "…");
    this.title.id = `pane-title-${idPart}`;
    this.topic = el("p", "pane-topic");
    who.append(this.title, this.topic);
    this.stateLine = el("p", "pane-state");
    this.triage = el("span", "pane-triage");
    this.triage.hidden = true;
    head.append(this.badge, who, this.triage, this.stateLine);

    // What the intake told: who the client is (identified or not) and their answers, with the
    // reasons for the triage level first. Filled by update().
    this.intakeBox = el("details", "pane-intake");
    this.intakeBox.open = true;
    this.intakeSummary = el("summary", "", "Pre-chat answers");
    this.identityLine = el("p", "pane-identity");
    this.reasonsList = el("ul", "pane-reasons");
    this.answers = el("dl", "pane-answers");
    this.intakeBox.append(this.intakeSummary, this.identityLine, this.reasonsList, this.answers);
    this.intakeBox.hidden = true;

    this.listEl = el("ol", "messages");
    this.listEl.setAttribute("role", "log");
    this.listEl.setAttribute("aria-live", "polite");
    this.listEl.setAttribute("aria-labelledby", this.title.id);
    this.list = new MessageList(this.listEl, {
      isOwn: (m) => m.sender_role === "professional" && me !== null && m.sender_name === me.name,
      labels: LABELS,
      describeSender: (m) => {
        if (m.sender_role === "client") return m.sender_name || "Client";
        // The built-in advice bot (p_bot): its answers before the chat was handed over.
        return m.sender_id === "p_bot" ? `${m.sender_name} (bot)` : `${m.sender_name} (colleague)`;
      },
    });
    this.typingLine = el("p", "typing");
    this.typingLine.setAttribute("aria-live", "polite");

    this.composer = el("form", "composer");
    this.textLabel = el("label", "");
    this.textLabel.htmlFor = `text-${idPart}`;
    this.text = el("textarea");
    this.text.id = `text-${idPart}`;
    this.text.rows = 2;
    this.text.maxLength = 4000;
    this.text.required = true;
    this.sendButton = el("button", "primary", "Send");
    this.sendButton.type = "submit";
    const row = el("div", "composer-row");
    row.append(this.text, this.sendButton);
    this.composer.append(this.textLabel, row);
    this.typingNotifier = new TypingNotifier(connection, cid);

    this.tools = el("div", "pane-tools");
    [this.transferForm, this.toInput] = idForm(`to-${idPart}`, "Transfer to", "colleagues", "colleague id", "Transfer");
    [this.teamForm, this.teamInput] = idForm(`team-${idPart}`, "Move to team", "teams", "team id", "Move");

    this.closeForm = el("form", "inline-form");
    const reasonLabel = el("label", "", "Reason");
    this.reason = el("select");
    this.reason.id = `reason-${idPart}`;
    reasonLabel.htmlFor = this.reason.id;
    for (const [value, text] of CLOSE_REASONS) {
      const option = el("option", "", text);
      option.value = value;
      this.reason.appendChild(option);
    }
    this.closeButton = el("button", "danger", "End chat");
    this.closeButton.type = "submit";
    this.closeForm.append(reasonLabel, this.reason, this.closeButton);
    this.paneError = el("p", "form-error");
    this.paneError.setAttribute("role", "alert");
    this.tools.append(this.transferForm, this.teamForm, this.closeForm, this.paneError);

    this.endedBox = el("div", "pane-ended");
    this.endedBox.hidden = true;
    this.dismiss = el("button", "quiet", "Remove from screen");
    this.dismiss.type = "button";
    this.endedBox.append(this.dismiss);

    this.root.append(
      head, this.intakeBox, this.listEl, this.typingLine, this.composer, this.tools, this.endedBox,
    );
    this.wire();
    $("panes").appendChild(this.root);
  }

  wire() {
    this.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.text.value.trim();
      if (!text || !this.active) return;
      const item = outbox.add(this.cid, text);
      this.list.addPending(item.msg_id, text);
      this.typingNotifier.stop();
      this.text.value = "";
      this.text.focus();
    });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.composer.requestSubmit();
      }
    });
    this.text.addEventListener("input", () => {
      if (this.text.value && this.active) this.typingNotifier.input();
    });
    this.text.addEventListener("focus", () => this.markRead());
    // A transfer to a colleague or to a team's queue: the same message, another target field.
    for (const [form, input, field] of [
      [this.transferForm, this.toInput, "to_professional"],
      [this.teamForm, this.teamInput, "to_team"],
    ]) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const target = input.value.trim();
        if (!target) return;
        this.paneError.textContent = "";
        pendingTransfer = this;
        connection.send({ type: "conversation.transfer", conversation_id: this.cid, [field]: target });
      });
    }
    this.closeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.paneError.textContent = "";
      connection.send({ type: "conversation.close", conversation_id: this.cid, reason: this.reason.value });
    });
    this.dismiss.addEventListener("click", () => {
      this.root.remove();
      panes.delete(this.cid);
      refreshLoad();
    });
  }

  update(view) {
    this.view = view;
    const name = view.client_name || "Unnamed client";
    this.title.textContent = name;
    this.badge.textContent = name.trim().charAt(0).toUpperCase() || "?";
    const facts = [view.topic ? `Topic: ${view.topic}` : "No topic given"];
    if (view.language) facts.push(`Language: ${languageName(view.language)}`);
    facts.push(`Team: ${view.team}`);
    this.topic.textContent = facts.join(" · ");
    this.textLabel.textContent = `Message to ${name}`;
    this.text.placeholder = `Reply to ${name}…`;
    this.sendButton.setAttribute("aria-label", `Send to ${name}`);
    this.toInput.setAttribute("aria-label", `Transfer ${name}'s chat to (professional id)`);
    this.teamInput.setAttribute("aria-label", `Move ${name}'s chat to the queue of team`);
    this.closeButton.setAttribute("aria-label", `End chat with ${name}`);
    this.showIntake(view);

    const mine = view.state === "assigned" && view.professional && me && view.professional.id === me.id;
    let line = "";
    if (mine) line = `Chat started ${clockTime(view.created_at)}`;
    else if (view.state === "assigned") line = `Transferred to ${view.professional.name}`;
    else if (view.state === "queued" && view.reason === "transferred") line = `Sent to the queue of team ${view.team}`;
    else if (view.state === "queued") line = "Back in the queue (no longer yours)";
    else if (view.state === "closed") {
      line = view.closed_by === "client" ? "The client ended the chat" : "You ended the chat";
      if (view.reason && view.closed_by !== "client") line += ` (${view.reason.replace(/_/g, " ")})`;
    }
    this.stateLine.textContent = line;
    this.setActive(Boolean(mine));
    this.list.peerRead(view.read_client_seq || 0);
  }

  showIntake(view) {
    const intake = view.intake;
    const identity = view.identity;
    // The triage level at the top of the chat: what the nurse must see first.
    const level = intake && intake.level;
    this.triage.hidden = !level;
    if (level) {
      this.triage.textContent = intake.level_label || level;
      this.triage.className = `pane-triage triage-${level}`;
    }
    this.intakeBox.hidden = !intake && !identity;
    if (this.intakeBox.hidden) return;
    if (identity) {
      const parts = [identity.verified ? "Identified" : "Not verified", identity.name];
      if (identity.masked_code) parts.push(identity.masked_code);
      if (identity.age !== undefined && identity.age !== null) parts.push(`${identity.age} y`);
      if (identity.postal_code) parts.push(identity.postal_code);
      this.identityLine.textContent = parts.join(" · ");
    } else {
      this.identityLine.textContent = "Not identified";
    }
    if (view.station) this.identityLine.textContent += ` · station ${view.station}`;
    this.reasonsList.replaceChildren(...((intake && intake.reasons) || []).map((r) => el("li", "", r)));
    const rows = [];
    for (const line of (intake && intake.lines) || []) {
      rows.push(el("dt", "", line.label), el("dd", "", line.answer));
    }
    this.answers.replaceChildren(...rows);
    this.intakeSummary.textContent = intake ? `Pre-chat answers: ${intake.title || intake.topic}` : "Client";
  }

  setActive(active) {
    this.active = active;
    this.root.classList.toggle("pane-inactive", !active);
    this.composer.hidden = !active;
    this.tools.hidden = !active;
    this.endedBox.hidden = active;
    if (!active) {
      this.typingNotifier.stop();
      this.typingLine.textContent = "";
    }
    refreshLoad();
  }

  showTyping(typing) {
    clearTimeout(this.typingTimer);
    const name = (this.view && this.view.client_name) || "The client";
    this.typingLine.textContent = typing ? `${name} is typing…` : "";
    if (typing) this.typingTimer = setTimeout(() => (this.typingLine.textContent = ""), 10000);
  }

  markRead() {
    if (!this.active || document.visibilityState !== "visible") return;
    const seq = this.list.lastPeerSeq();
    if (seq > this.readSent) {
      if (connection.send({ type: "read.mark", conversation_id: this.cid, seq })) this.readSent = seq;
    }
  }
}

function languageName(code) {
  return LANGUAGES[code] || code;
}

function freeColour() {
  const used = new Set([...panes.values()].map((p) => p.colour));
  for (let i = 0; i < PANE_COLOURS; i++) if (!used.has(i)) return i;
  return panes.size % PANE_COLOURS;
}

function paneFor(cid) {
  let pane = panes.get(cid);
  if (!pane) {
    pane = new Pane(cid);
    panes.set(cid, pane);
  }
  return pane;
}

function refreshLoad() {
  const active = [...panes.values()].filter((p) => p.active).length;
  $("load").textContent = `${active} of ${capacity} chats`;
  $("no-chats").hidden = panes.size > 0;
  $("take-next").disabled = active >= capacity;
}

// --- the queue --------------------------------------------------------------------------

function minutesSince(ms) {
  const minutes = Math.max(0, Math.floor((Date.now() - ms) / 60000));
  return minutes < 1 ? "just now" : `${minutes} min`;
}

function renderQueues() {
  const box = $("queue-list");
  box.replaceChildren();
  for (const [team, snapshot] of [...queues].sort()) {
    const section = el("section", "queue");
    section.dataset.team = team;
    const heading = el("h3");
    heading.append(el("span", "queue-team", team), ` – ${snapshot.length} waiting`);
    section.appendChild(heading);
    if (snapshot.entries.length === 0) section.appendChild(el("p", "quiet-text", "Nobody is waiting."));
    const ol = el("ol", "queue-entries");
    for (const entry of snapshot.entries) {
      const li = el("li", "queue-entry");
      li.dataset.conversationId = entry.conversation_id;
      const name = entry.client_name || "Unnamed client";
      const text = el("div", "queue-text");
      text.append(el("strong", "queue-name", name));
      text.append(el("span", "queue-topic", entry.topic || "No topic given"));
      const facts = [`waiting ${minutesSince(entry.waiting_since)}`];
      if (entry.language) facts.push(languageName(entry.language));
      text.append(el("span", "queue-facts", facts.join(" · ")));
      const take = el("button", "take", "Take");
      take.type = "button";
      take.setAttribute("aria-label", `Take chat with ${name}`);
      take.addEventListener("click", () => {
        showAlert("");
        connection.send({ type: "queue.take", conversation_id: entry.conversation_id });
      });
      li.append(text, take);
      ol.appendChild(li);
    }
    section.appendChild(ol);
    box.appendChild(section);
  }
}

// --- showing ----------------------------------------------------------------------------

function showConnection(status, reason) {
  const notice = $("conn-notice");
  if (status === "reconnecting") {
    notice.textContent = "Connection lost. Reconnecting… Messages you write will be sent then.";
    notice.hidden = false;
  } else if (status === "ended") {
    notice.hidden = true;
    signedOut(reason ? `Signed out: ${reason}` : "Signed out.");
  } else {
    notice.hidden = true;
  }
}

function showAlert(text) {
  $("alert").textContent = text || "";
  $("alert").hidden = !text;
}

function showLogin(message = "") {
  $("login-view").hidden = false;
  $("console").hidden = true;
  $("me-box").hidden = true;
  $("login-error").textContent = message;
  $("username").focus();
}

function showConsole() {
  $("login-view").hidden = true;
  $("console").hidden = false;
  $("me-box").hidden = false;
}

function signedOut(message) {
  connection.stop();
  session = null;
  me = null;
  sessionStorage.removeItem(KEY.session);
  outbox.clear();
  for (const pane of panes.values()) pane.root.remove();
  panes.clear();
  queues.clear();
  renderQueues();
  showAlert("");
  showLogin(message);
}

// --- the protocol -----------------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "welcome": {
      me = msg.professional;
      capacity = msg.capacity;
      $("me").textContent = me.title ? `${me.name} (${me.title})` : me.name;
      $("available").checked = msg.available;
      const current = new Set();
      for (const view of msg.conversations) {
        current.add(view.conversation_id);
        paneFor(view.conversation_id).update(view);
      }
      // Chats that were on screen but are no longer ours (requeued while we were away).
      for (const [cid, pane] of panes) {
        if (!current.has(cid) && pane.active) {
          pane.setActive(false);
          pane.stateLine.textContent = "No longer assigned to you";
        }
      }
      showConsole();
      refreshLoad();
      connection.ready();
      break;
    }
    case "queue.snapshot":
      queues.set(msg.team, msg);
      renderQueues();
      break;
    case "conversation.state": {
      const view = msg.conversation;
      const mine = me && view.professional && view.professional.id === me.id;
      if (!panes.has(view.conversation_id) && !mine) break;
      const pane = paneFor(view.conversation_id);
      pane.update(view);
      if (pendingTransfer === pane && view.reason === "transferred") pendingTransfer = null;
      break;
    }
    case "message.history": {
      const pane = paneFor(msg.conversation_id);
      for (const m of msg.messages) pane.list.addStored(m);
      if (msg.up_to_date) pane.markRead();
      break;
    }
    case "message.new": {
      const m = msg.message;
      const pane = paneFor(m.conversation_id);
      pane.list.addStored(m);
      if (m.sender_role === "client") pane.showTyping(false);
      pane.markRead();
      break;
    }
    case "message.ack": {
      outbox.acknowledge(msg.msg_id);
      const pane = panes.get(msg.conversation_id);
      if (pane) pane.list.acknowledged(msg.msg_id, msg.seq, msg.sent_at);
      break;
    }
    case "typing": {
      const pane = panes.get(msg.conversation_id);
      if (pane && msg.role === "client") pane.showTyping(msg.typing);
      break;
    }
    case "read": {
      const pane = panes.get(msg.conversation_id);
      if (pane && msg.role === "client") pane.list.peerRead(msg.seq);
      break;
    }
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
  if (ref === "auth") {
    signedOut(
      err.code === "session_expired" ? "Your session has expired. Sign in again." : "Please sign in again.",
    );
    return;
  }
  const item = outbox.pending.get(ref);
  if (item) {
    if (err.code === "rate_limited" || err.code === "internal") {
      outbox.retryAfter(err.retry_after_ms || 2000);
      return;
    }
    outbox.acknowledge(ref);
    const pane = panes.get(item.conversation_id);
    if (pane) pane.list.failed(ref, err.reason);
    return;
  }
  if (ref === "conversation.transfer" && pendingTransfer) {
    pendingTransfer.paneError.textContent = `Transfer failed: ${err.reason}`;
    pendingTransfer = null;
    return;
  }
  if (ref === "queue.take") {
    showAlert(
      err.code === "invalid_state" ? "Someone else took that chat already." : `Could not take the chat: ${err.reason}`,
    );
    return;
  }
  if (err.code === "already_open") return;
  showAlert(err.reason || err.code);
}

// --- the user ---------------------------------------------------------------------------

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value.trim(), password: $("password").value }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("login-error").textContent =
        response.status === 401 ? "Wrong username or password." : "Signing in failed. Try again.";
      return;
    }
    session = { token: body.token, professional: body.professional };
    sessionStorage.setItem(KEY.session, JSON.stringify(session));
    $("password").value = "";
    connection.start();
  } catch {
    $("login-error").textContent = "Cannot reach the server. Try again.";
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  const token = session && session.token;
  try {
    if (token) {
      await fetch("/api/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    }
  } finally {
    signedOut("Signed out.");
  }
});

$("available").addEventListener("change", (event) => {
  connection.send({ type: "availability.set", available: event.target.checked });
});

$("take-next").addEventListener("click", () => {
  showAlert("");
  connection.send({ type: "queue.take" });
});

document.addEventListener("visibilitychange", () => {
  for (const pane of panes.values()) pane.markRead();
});

setInterval(renderQueues, 30_000); // keep "waiting N min" fresh

// --- start ------------------------------------------------------------------------------

if (session && session.token) {
  connection.start();
} else {
  showLogin();
}
