// Kanava's shared browser code: the websocket connection (reconnect with backoff, ping),
// message ids, the outbox of unacknowledged chat messages, and small DOM helpers.
//
// Every piece of text from the network is put on the page with textContent, never innerHTML.

export const SUBPROTOCOL = "kanava.v1.json";
const PING_EVERY_MS = 20_000;
const SILENCE_LIMIT_MS = 50_000; // no frame at all for this long: the socket is dead
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const SESSION_ENDED = 4003; // close code: sign in again, do not reconnect

/** The ws:// or wss:// URL of a path on this page's own server. */
export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/**
 * This tab's sessionStorage, or a stand-in kept in memory where the browser denies storage (a
 * chat framed by another site while third-party storage is blocked): the page still works,
 * only a reload does not bring the chat back.
 */
export function tabStorage() {
  try {
    const storage = window.sessionStorage;
    const probe = "kanava.probe";
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    const items = new Map();
    return {
      getItem: (key) => (items.has(key) ? items.get(key) : null),
      setItem: (key, value) => void items.set(key, String(value)),
      removeItem: (key) => void items.delete(key),
    };
  }
}

/** A new unique message id; works outside secure contexts too. */
export function newMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One logical connection that survives drops.
 *
 * `hello()` returns the first message to send on every new socket (conversation.open/resume,
 * auth). The page calls `ready()` once the server has answered it; only then are chat messages
 * flushed. `onStatus` gets "connecting", "open", "ready", "reconnecting" or "ended".
 */
export class Connection {
  constructor({ path, hello, onMessage, onStatus = () => {}, onReady = () => {}, isSessionEnd = null }) {
    this.path = path;
    // (closeEvent) -> true when the close means "sign in again" rather than "reconnect".
    this.isSessionEnd = isSessionEnd || ((event) => event.code === SESSION_ENDED);
    this.hello = hello;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onReady = onReady;
    this.ws = null;
    this.isReady = false;
    this.attempt = 0;
    this.stopped = false;
    this.everReady = false;
    this.lastFrameAt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
  }

  start() {
    this.stopped = false;
    this.open();
    if (!this.pingTimer) this.pingTimer = setInterval(() => this.heartbeat(), PING_EVERY_MS);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    const ws = this.ws;
    this.ws = null;
    this.isReady = false;
    this.everReady = false;
    this.attempt = 0;
    if (ws) ws.close(1000, "bye");
  }

  open() {
    clearTimeout(this.retryTimer);
    this.onStatus(this.everReady ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(wsUrl(this.path), [SUBPROTOCOL]);
    } catch (err) {
      console.error("kanava: cannot open websocket", err);
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.isReady = false;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      this.onStatus("open");
      const first = this.hello();
      if (first) this.sendNow(first);
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn("kanava: unreadable frame", event.data);
        return;
      }
      this.onMessage(msg);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.isReady = false;
      if (this.stopped) return;
      if (this.isSessionEnd(event)) {
        this.stopped = true;
        this.onStatus("ended", event.reason);
        return;
      }
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    if (this.stopped) return;
    this.onStatus("reconnecting");
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const delay = base * (0.8 + Math.random() * 0.4);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** The server answered the hello: chat messages may flow. */
  ready() {
    this.isReady = true;
    this.everReady = true;
    this.attempt = 0;
    this.onStatus("ready");
    this.onReady();
  }

  /** Close the current socket and connect again (e.g. after a silent network death). */
  reconnect() {
    const ws = this.ws;
    this.ws = null;
    this.isReady = false;
    if (ws) ws.close(4000, "reconnecting");
    if (!this.stopped) this.scheduleRetry();
  }

  heartbeat() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
      this.reconnect();
      return;
    }
    this.sendNow({ type: "ping" });
  }

  /** Send on the current socket if it is open; returns whether it was. */
  sendNow(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Send only once the hello has been answered (typing, read marks, commands). */
  send(msg) {
    return this.isReady && this.sendNow(msg);
  }
}

/**
 * Chat messages sent but not yet acknowledged, in order. After a reconnect every one is sent
 * again with the same msg_id; the server stores each msg_id once, so nothing is lost or
 * doubled. With a `storageKey` the outbox survives a reload of the page (sessionStorage).
 */
export class Outbox {
  constructor(connection, storageKey = null, storage = null) {
    this.connection = connection;
    this.storageKey = storageKey;
    this.storage = storageKey ? storage || tabStorage() : null;
    this.pending = new Map(); // msg_id -> {conversation_id, msg_id, text, created}
    this.retryTimer = null;
    if (storageKey) {
      try {
        for (const item of JSON.parse(this.storage.getItem(storageKey) || "[]")) {
          this.pending.set(item.msg_id, item);
        }
      } catch {
        this.storage.removeItem(storageKey);
      }
    }
  }

  save() {
    if (this.storageKey) {
      this.storage.setItem(this.storageKey, JSON.stringify([...this.pending.values()]));
    }
  }

  /**
   * Queue a new message and send it if connected; returns the item. `extra` holds further
   * fields of the message.send (sent again unchanged with every retry).
   */
  add(conversationId, text, extra = null) {
    const item = { conversation_id: conversationId, msg_id: newMsgId(), text, created: Date.now() };
    if (extra) item.extra = extra;
    this.pending.set(item.msg_id, item);
    this.save();
    this.transmit(item);
    return item;
  }

  transmit(item) {
    this.connection.send({
      ...(item.extra || {}),
      type: "message.send",
      conversation_id: item.conversation_id,
      msg_id: item.msg_id,
      text: item.text,
    });
  }

  /** Send every pending message again, oldest first (after a (re)connect). */
  flush() {
    for (const item of this.pending.values()) this.transmit(item);
  }

  /** The server stored it (or it is stored already): forget it; returns the item if known. */
  acknowledge(msgId) {
    const item = this.pending.get(msgId);
    if (item) {
      this.pending.delete(msgId);
      this.save();
    }
    return item;
  }

  /** Retry later (rate limited): send the pending messages again after `ms`. */
  retryAfter(ms) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.flush(), Math.max(ms, 200));
  }

  forConversation(conversationId) {
    return [...this.pending.values()].filter((i) => i.conversation_id === conversationId);
  }

  clear() {
    this.pending.clear();
    this.save();
  }
}

/** Sends typing.set true while the user types and false once they pause or send. */
export class TypingNotifier {
  constructor(connection, conversationId) {
    this.connection = connection;
    this.conversationId = conversationId;
    this.typing = false;
    this.lastSent = 0;
    this.idleTimer = null;
  }

  input() {
    const now = Date.now();
    if (!this.typing || now - this.lastSent > 3000) {
      this.set(true);
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stop(), 4000);
  }

  stop() {
    clearTimeout(this.idleTimer);
    if (this.typing) this.set(false);
  }

  set(typing) {
    const sent = this.connection.send({
      type: "typing.set",
      conversation_id: this.conversationId,
      typing,
    });
    if (sent) {
      this.typing = typing;
      this.lastSent = Date.now();
    }
  }
}

/** Create an element with a class and textContent (never HTML). */
export function el(tag, className = "", text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null && text !== undefined) node.textContent = String(text);
  return node;
}

/**
 * A link that calls a phone number ({number, tel, name} as the server sends them). The href
 * is rebuilt from the digits, so nothing but a tel: link can come out of it.
 */
export function phoneLink(entry, className = "tel") {
  const digits = String(entry.number || entry.tel || "").replace(/[^0-9+]/g, "");
  const link = el("a", className);
  link.href = `tel:${digits}`;
  if (entry.name) {
    link.append(el("span", "tel-name", entry.name), " ");
  }
  link.append(el("span", "tel-number", digits));
  return link;
}

export function clockTime(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/**
 * The messages of one conversation in a list element, in seq order, each shown once.
 *
 * A message is keyed by its msg_id: an own message shown while sending becomes the stored one
 * when its ack or the history brings it, instead of appearing twice. `isOwn(message)` tells
 * the page's own stored messages from the others (a professional sees a colleague's messages
 * after a transfer: those are not theirs).
 */
export class MessageList {
  constructor(
    listElement,
    { isOwn, labels, describeSender, onQuickReply = null, onHandoff = null, decorate = null }
  ) {
    this.list = listElement;
    this.decorate = decorate; // (item, message) -> marks a stored message (e.g. the bot's); optional
    this.onQuickReply = onQuickReply; // (label) -> sends it; null: buttons are not shown
    this.onHandoff = onHandoff; // () -> goes on to the nurse's chat; null: not offered
    this.isOwn = isOwn;
    this.labels = labels; // {sending, delivered, read, failed}
    this.describeSender = describeSender; // (message) -> name shown above others' messages
    this.byMsgId = new Map();
    this.bySeq = new Map();
    this.lastSeq = 0; // highest seq received from history or message.new
    this.peerReadSeq = 0;
  }

  get size() {
    return this.list.children.length;
  }

  /** A stored message (history or message.new); returns true if it was new to the list. */
  addStored(m) {
    if (m.seq > this.lastSeq) this.lastSeq = m.seq;
    if (this.bySeq.has(m.seq)) return false;
    const own = this.isOwn(m);
    const known = this.byMsgId.get(m.msg_id);
    if (known && own && known.dataset.own === "1") {
      this.setStored(known, m.seq, m.sent_at);
      return false;
    }
    const item = this.render(own, m.sender_role, m.text, this.describeSender(m), m.msg_id);
    if (this.decorate) this.decorate(item, m);
    this.addExtras(item, m);
    this.setStored(item, m.seq, m.sent_at);
    return true;
  }

  /** An own message being sent (not yet stored). */
  addPending(msgId, text) {
    if (this.byMsgId.has(msgId)) return this.byMsgId.get(msgId);
    const item = this.render(true, "", text, null, msgId);
    this.setState(item, "sending");
    this.list.appendChild(item);
    this.scroll();
    return item;
  }

  acknowledged(msgId, seq, sentAt) {
    const item = this.byMsgId.get(msgId);
    if (!item) return;
    const other = this.bySeq.get(seq);
    if (other && other !== item) {
      item.remove();
      this.byMsgId.set(msgId, other);
      return;
    }
    this.setStored(item, seq, sentAt);
  }

  failed(msgId, reason) {
    const item = this.byMsgId.get(msgId);
    if (item) this.setState(item, "failed", reason);
  }

  /** The other party has read up to seq: mark own messages read. */
  peerRead(seq) {
    if (seq <= this.peerReadSeq) return;
    this.peerReadSeq = seq;
    for (const [s, item] of this.bySeq) {
      if (s <= seq && item.dataset.own === "1") this.setState(item, "read");
    }
  }

  render(own, role, text, senderName, msgId) {
    const item = el("li", `msg ${own ? "msg-own" : "msg-other"}`);
    if (role) item.classList.add(`msg-from-${role}`);
    item.dataset.own = own ? "1" : "0";
    item.dataset.msgId = msgId;
    const meta = el("div", "msg-meta");
    meta.appendChild(el("span", "msg-sender", own ? this.labels.you : senderName || ""));
    meta.appendChild(el("time", "msg-time"));
    const body = el("p", "msg-text", text);
    item.append(meta, body);
    if (own) item.appendChild(el("span", "msg-state"));
    this.byMsgId.set(msgId, item);
    return item;
  }

  /** A bot's links and numbers, and its quick replies (only the newest message's count). */
  addExtras(item, m) {
    if (Array.isArray(m.actions) && m.actions.length) {
      const links = el("ul", "msg-actions");
      for (const action of m.actions) {
        if (action.kind === "handoff") {
          if (!this.onHandoff) continue;
          const button = el("button", "primary handoff", action.label);
          button.type = "button";
          button.addEventListener("click", () => this.onHandoff());
          const entry = el("li");
          entry.append(button);
          links.append(entry);
          continue;
        }
        const url = String(action.url || "");
        if (!url.startsWith("https://") && !url.startsWith("tel:")) continue;
        const phone = action.kind === "phone";
        // A number must be readable where it cannot be dialled (a desktop browser).
        const value = String(action.value || "");
        const text = phone && value && !String(action.label).includes(value) ? `${action.label} ${value}` : action.label;
        const link = el("a", `action action-${phone ? "phone" : "link"}`, text);
        link.href = url;
        if (url.startsWith("https://")) {
          link.target = "_blank";
          link.rel = "noopener noreferrer";
        }
        const entry = el("li");
        entry.append(link);
        links.append(entry);
      }
      if (links.children.length) item.append(links);
    }
    if (this.onQuickReply && Array.isArray(m.quick_replies) && m.quick_replies.length) {
      for (const old of this.list.querySelectorAll(".quick-replies")) old.remove();
      const group = el("div", "quick-replies");
      group.setAttribute("role", "group");
      for (const reply of m.quick_replies) {
        const button = el("button", "quick-reply", reply.label);
        button.type = "button";
        button.addEventListener("click", () => {
          group.remove();
          this.onQuickReply(reply.label);
        });
        group.append(button);
      }
      item.append(group);
    } else if (Array.isArray(m.quick_replies) && m.quick_replies.length) {
      // Shown to the other party (a nurse reading a bot chat) as what the client was offered.
      const labels = m.quick_replies.map((r) => r.label).join(" · ");
      item.append(el("p", "msg-offered", `${this.labels.offered || "Offered"}: ${labels}`));
    } else if (m.sender_role === "client") {
      // The client wrote: earlier buttons no longer answer the conversation's last question.
      for (const old of this.list.querySelectorAll(".quick-replies")) old.remove();
    }
  }

  setStored(item, seq, sentAt) {
    item.dataset.seq = String(seq);
    this.bySeq.set(seq, item);
    const time = item.querySelector(".msg-time");
    time.textContent = clockTime(sentAt);
    time.dateTime = new Date(sentAt).toISOString();
    if (item.dataset.own === "1") {
      this.setState(item, seq <= this.peerReadSeq ? "read" : "delivered");
    }
    this.place(item, seq);
  }

  setState(item, state, detail = "") {
    const label = item.querySelector(".msg-state");
    if (!label) return;
    item.dataset.state = state;
    label.textContent = detail ? `${this.labels[state]}: ${detail}` : this.labels[state];
  }

  /** Put a stored message in seq order; pending ones stay at the end. */
  place(item, seq) {
    let before = null;
    for (const other of this.list.children) {
      if (other === item) continue;
      const otherSeq = other.dataset.seq ? Number(other.dataset.seq) : Infinity;
      if (otherSeq > seq) {
        before = other;
        break;
      }
    }
    if (before) {
      if (item.nextSibling !== before) this.list.insertBefore(item, before);
    } else if (item.parentNode !== this.list || this.list.lastChild !== item) {
      this.list.appendChild(item);
    }
    this.scroll();
  }

  scroll() {
    this.list.scrollTop = this.list.scrollHeight;
  }

  /** Highest seq of a message from the other party (to mark read). */
  lastPeerSeq() {
    let best = 0;
    for (const [s, item] of this.bySeq) {
      if (item.dataset.own !== "1" && s > best) best = s;
    }
    return best;
  }
}
