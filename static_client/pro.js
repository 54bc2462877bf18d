// The professional's console: sign in, see the queues, take chats, and chat in several at once.
//
// Each conversation has its own pane (pro_pane.js), built once and found only by its
// conversation_id; every message, typing notice and read receipt goes to the pane of the
// conversation_id it carries. This module signs in and out, keeps the connection, shows the
// queues, and decides which pane the nurse is working in (keyboard, tabs, notifications).

import { Connection, Outbox, clockTime, el } from "/static/kanava.js";
import { ApiError, get, loadSession, post, setCsrf } from "/static/pro_api.js";
import {
  CONFIRM_WINDOW_MS,
  PANE_COLOURS,
  Pane,
  initialsCandidates,
  languageName,
} from "/static/pro_pane.js";

const TITLE = "Kanava – professional console";
const PREFS = { sound: "kanava.pro.sound", title: "kanava.pro.titleCount" };
const SUPERVISING = new Set(["supervisor", "admin"]);
const TRIAGE = { urgent: "Urgent", routine: "Routine" };

const $ = (id) => document.getElementById(id);

let me = null; // the signed-in professional: {id, name, title, role, …}
let capacity = 0;
let myTeams = []; // the teams whose queues this professional serves
let consoleData = { teams: [], colleagues: [], canned: [], outcomes: [] };
const panes = new Map(); // conversation_id -> Pane
const paneOfRoot = new WeakMap(); // pane element -> Pane (never looked up by its data attributes)
const queues = new Map(); // team -> QueueSnapshot
let activeCid = null; // the pane the nurse works in (and the tab shown on a narrow screen)
let lastPointer = { at: 0, pane: null }; // the last click or touch, and the pane it was in
let pendingTransfer = null; // {pane, panel} whose transfer we wait to hear about
let takeRequest = null; // {at, cid}: the chat the nurse asked for, to move to it when it comes
let signedIn = false;

const connection = new Connection({
  path: "/ws/pro",
  hello() {
    const cursors = {};
    for (const [cid, pane] of panes) if (pane.lastSeq) cursors[cid] = pane.lastSeq;
    // No token: the server knows the professional from the session cookie of this request.
    return { type: "auth", cursors };
  },
  onMessage: handle,
  onStatus: showConnection,
  onReady() {
    outbox.flush();
    for (const pane of panes.values()) pane.flushDraft();
  },
  isSessionEnd: (event) => event.code === 4003 || event.reason === "signed out",
});
const outbox = new Outbox(connection);

// --- what the panes ask of the console ----------------------------------------------------

const paneContext = {
  connection,
  outbox,
  me: () => me,
  myTeams: () => myTeams,
  consoleData: () => consoleData,
  refreshColleagues,
  teamName,
  isAttended: (pane) => document.visibilityState === "visible" && activeCid === pane.cid,
  needsConfirmation: (pane) => pane.switchedAt !== null && Date.now() - pane.switchedAt < CONFIRM_WINDOW_MS,
  sentFrom(pane) {
    pane.switchedAt = null;
  },
  activate,
  remove: removePane,
  changed(pane, what) {
    if (what === "name") assignInitials(pane);
    if (what === "unread") showUnreadTotal();
  },
  setPendingTransfer(pane, panel) {
    pendingTransfer = { pane, panel };
  },
  sessionLost: () => signedOut("Your session has expired. Sign in again."),
};

function teamName(id) {
  const team = consoleData.teams.find((t) => t.id === id);
  return (team && team.name) || id || "";
}

// --- panes ----------------------------------------------------------------------------------

function freeColour() {
  const used = new Set([...panes.values()].map((p) => p.colour));
  for (let i = 0; i < PANE_COLOURS; i++) if (!used.has(i)) return i;
  return panes.size % PANE_COLOURS;
}

/** Initials unique among the panes on the screen ("AA", then "AnA" for a second A. A.). */
function assignInitials(pane) {
  const taken = new Set(
    [...panes.values()].filter((p) => p !== pane && p.initials).map((p) => p.initials.toLowerCase()),
  );
  const candidates = initialsCandidates(pane.who.name, pane.who.anonymous);
  const choice = candidates.find((c) => !taken.has(c.toLowerCase()));
  pane.setInitials(choice || "?");
}

function paneFor(cid) {
  let pane = panes.get(cid);
  if (!pane) {
    pane = new Pane(cid, freeColour(), paneContext);
    panes.set(cid, pane);
    paneOfRoot.set(pane.root, pane);
    paneOfRoot.set(pane.tab, pane);
    $("panes").append(pane.root);
    $("pane-tabs").append(pane.tab);
    refreshLayout();
  }
  return pane;
}

function orderedPanes() {
  return [...$("panes").children].map((node) => paneOfRoot.get(node)).filter(Boolean);
}

function paneContaining(node) {
  for (let n = node; n && n !== document.body; n = n.parentNode) {
    const pane = paneOfRoot.get(n);
    if (pane) return pane;
  }
  return null;
}

function removePane(pane) {
  const order = orderedPanes();
  const index = order.indexOf(pane);
  pane.destroy();
  panes.delete(pane.cid);
  if (activeCid === pane.cid) {
    activeCid = null;
    const next = order[index + 1] || order[index - 1];
    if (next && next !== pane) activate(next, "keyboard", true);
    else $("take-next").focus();
  }
  refreshLayout();
  showUnreadTotal();
}

/**
 * The nurse works in this pane now. `how` is "pointer" (a click: deliberate) or anything
 * else (the keyboard, or the console moving to a chat just taken): then the first send
 * within a moment asks for confirmation.
 */
function activate(pane, how, focus = false) {
  if (!panes.has(pane.cid)) return;
  const switched = activeCid !== pane.cid;
  if (switched) {
    const previous = panes.get(activeCid);
    if (previous) previous.cancelConfirm();
    activeCid = pane.cid;
  }
  if (how === "pointer") pane.switchedAt = null;
  else if (switched) pane.switchedAt = Date.now();
  showSelection();
  pane.markRead();
  if (focus) pane.focusComposer();
}

function showSelection() {
  const order = orderedPanes();
  const selected = panes.get(activeCid) || order[0] || null;
  for (const pane of order) {
    const on = pane === selected;
    pane.root.classList.toggle("pane-selected", on);
    pane.root.classList.toggle("pane-active", pane.cid === activeCid);
    pane.tab.setAttribute("aria-selected", String(on));
    pane.tab.tabIndex = on ? 0 : -1;
  }
}

function refreshLayout() {
  const count = panes.size;
  $("panes").style.setProperty("--panes", String(Math.max(1, count)));
  $("no-chats").hidden = count > 0;
  $("pane-tabs").hidden = count === 0;
  const active = [...panes.values()].filter((p) => p.active).length;
  $("load").textContent = `${active} of ${capacity} chats`;
  $("take-next").disabled = capacity > 0 && active >= capacity;
  for (const button of document.querySelectorAll(".queue-next")) button.disabled = $("take-next").disabled;
  showSelection();
}

function showUnreadTotal() {
  let total = 0;
  for (const pane of panes.values()) total += pane.unread;
  document.title = total > 0 && prefs.title ? `(${total}) ${TITLE}` : TITLE;
}

// --- notifications ------------------------------------------------------------------------

const prefs = {
  sound: localStorage.getItem(PREFS.sound) !== "0",
  title: localStorage.getItem(PREFS.title) !== "0",
};
let audio = null;
let lastBeep = 0;

function unlockAudio() {
  // Browsers let a page make sound only after the user has done something on it.
  if (audio || !window.AudioContext) return;
  try {
    audio = new AudioContext();
  } catch {
    audio = null;
  }
}

/** A short, soft two-tone beep (no sound file). */
function beep() {
  if (!prefs.sound || !audio) return;
  const now = Date.now();
  if (now - lastBeep < 1500) return;
  lastBeep = now;
  if (audio.state === "suspended") audio.resume().catch(() => {});
  const start = audio.currentTime + 0.01;
  for (const [offset, freq] of [[0, 660], [0.14, 880]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.08, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.12);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 0.14);
  }
}

/** Something new in `pane`: a sound if the nurse is not looking at it. */
function notify(pane) {
  if (document.visibilityState !== "visible" || (activeCid !== null && activeCid !== pane.cid)) beep();
}

// --- the queues -----------------------------------------------------------------------------

function waitedText(since) {
  const minutes = Math.max(0, Math.floor((Date.now() - since) / 60000));
  if (minutes < 1) return "waiting under a minute";
  if (minutes < 60) return `waiting ${minutes} min`;
  return `waiting ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function refreshWaits() {
  for (const node of document.querySelectorAll(".queue-wait")) {
    node.textContent = waitedText(Number(node.dataset.since));
  }
}

function takeChat(cid = null, team = null) {
  showAlert("");
  const msg = { type: "queue.take" };
  if (cid) msg.conversation_id = cid;
  else if (team) msg.team = team;
  if (!connection.send(msg)) {
    showAlert("Not connected. Try again when the connection is back.");
    return;
  }
  takeRequest = { at: Date.now(), cid };
}

function renderQueues() {
  const box = $("queue-list");
  // Keep the keyboard focus on the same button across a new snapshot.
  const focused = box.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  const teamIds = [...consoleData.teams.map((t) => t.id)];
  for (const team of queues.keys()) if (!teamIds.includes(team)) teamIds.push(team);
  const sections = [];
  const full = $("take-next").disabled;
  for (const teamId of teamIds) {
    const snapshot = queues.get(teamId);
    if (!snapshot) continue;
    const team = consoleData.teams.find((t) => t.id === teamId) || { id: teamId, name: teamId, mode: "pick" };
    const name = team.name || teamId;
    const section = el("section", "queue");
    section.dataset.team = teamId;
    const headingId = `queue-title-${teamId.replace(/[^A-Za-z0-9_-]/g, "")}`;
    section.setAttribute("aria-labelledby", headingId);
    const head = el("div", "queue-head");
    const heading = el("h3", "queue-team", name);
    heading.id = headingId;
    const count = el("span", "queue-count", `${snapshot.length} waiting`);
    head.append(heading, count);
    section.append(head);
    if (team.mode === "auto") {
      section.append(el("p", "queue-mode", "Chats are assigned automatically."));
    }
    const next = el("button", "queue-next small", "Take next");
    next.type = "button";
    next.dataset.key = `next:${teamId}`;
    next.setAttribute("aria-label", `Take next waiting from ${name}`);
    next.disabled = full || snapshot.length === 0;
    next.addEventListener("click", () => takeChat(null, teamId));
    section.append(next);
    if (snapshot.entries.length === 0) section.append(el("p", "quiet-text", "Nobody is waiting."));
    const list = el("ol", "queue-entries");
    for (const entry of snapshot.entries) {
      const urgent = entry.triage === "urgent";
      const li = el("li", `queue-entry${urgent ? " queue-urgent" : ""}`);
      const clientName = entry.client_name || "Anonymous";
      const text = el("div", "queue-text");
      const top = el("div", "queue-top");
      top.append(el("strong", "queue-name", clientName));
      if (entry.triage) {
        top.append(el("span", `queue-triage triage-${entry.triage}`, TRIAGE[entry.triage] || entry.triage));
      }
      text.append(top, el("span", "queue-topic", entry.topic || "No topic given"));
      const facts = el("span", "queue-facts");
      const wait = el("span", "queue-wait", waitedText(entry.waiting_since));
      wait.dataset.since = String(entry.waiting_since);
      facts.append(wait);
      if (entry.language) facts.append(` · ${languageName(entry.language)}`);
      text.append(facts);
      li.append(text);
      if (team.mode !== "auto") {
        const take = el("button", "take small", "Take");
        take.type = "button";
        take.dataset.key = `take:${entry.conversation_id}`;
        take.setAttribute("aria-label", `Take chat with ${clientName}`);
        take.disabled = full;
        take.addEventListener("click", () => takeChat(entry.conversation_id));
        li.append(take);
      }
      list.append(li);
    }
    if (snapshot.entries.length) section.append(list);
    if (snapshot.length > snapshot.entries.length) {
      section.append(el("p", "quiet-text", `and ${snapshot.length - snapshot.entries.length} more`));
    }
    sections.push(section);
  }
  box.replaceChildren(...sections);
  if (focused) {
    const again = box.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    (again && !again.disabled ? again : $("take-next")).focus();
  }
}

// --- showing --------------------------------------------------------------------------------

function showConnection(status, reason) {
  const notice = $("conn-notice");
  if (status === "reconnecting") {
    notice.textContent = "Connection lost. Reconnecting… Messages you write will be sent then.";
    notice.hidden = !signedIn;
  } else if (status === "ended") {
    notice.hidden = true;
    signedOut(reason === "signed out" ? "You were signed out." : "Your session has ended. Sign in again.");
  } else if (status === "ready") {
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
  $("connecting").hidden = true;
  $("me-box").hidden = true;
  $("login-error").textContent = message;
  $("username").focus();
}

function showConsole() {
  $("login-view").hidden = true;
  $("connecting").hidden = true;
  $("console").hidden = false;
  $("me-box").hidden = false;
}

function showMe() {
  if (!me) return;
  $("me").textContent = me.title ? `${me.name} (${me.title})` : me.name;
  $("access-log-open").hidden = !SUPERVISING.has(me.role);
}

// --- signing in and out ---------------------------------------------------------------------

async function refreshSession() {
  try {
    const session = await loadSession();
    $("oidc-box").hidden = !session.oidc;
    return session;
  } catch (err) {
    $("login-error").textContent =
      err instanceof ApiError && err.status === 0 ? err.message : "The server is not answering. Try again soon.";
    return null;
  }
}

async function loadConsole() {
  try {
    const body = await get("/api/console");
    consoleData = {
      teams: body.teams || [],
      colleagues: body.colleagues || [],
      canned: body.canned || [],
      outcomes: body.outcomes || [],
    };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signedOut("Your session has expired. Sign in again.");
      return;
    }
    showAlert(`Could not load the team lists: ${err.reason || err.message}`);
  }
  for (const pane of panes.values()) if (pane.view) pane.update(pane.view);
  renderQueues();
}

async function refreshColleagues() {
  try {
    const body = await get("/api/console");
    consoleData.colleagues = body.colleagues || [];
    if (body.teams) consoleData.teams = body.teams;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) paneContext.sessionLost();
  }
}

function beginSession(professional) {
  signedIn = true;
  me = professional;
  myTeams = professional.teams || [];
  showMe();
  $("login-view").hidden = true;
  $("connecting").hidden = false;
  loadConsole();
  connection.start();
}

function signedOut(message) {
  if (!signedIn && $("console").hidden) {
    showLogin(message);
    return;
  }
  signedIn = false;
  connection.stop();
  me = null;
  outbox.clear();
  for (const pane of panes.values()) pane.destroy();
  panes.clear();
  activeCid = null;
  pendingTransfer = null;
  takeRequest = null;
  consoleData = { teams: [], colleagues: [], canned: [], outcomes: [] };
  queues.clear();
  renderQueues();
  refreshLayout();
  showUnreadTotal();
  showAlert("");
  $("conn-notice").hidden = true;
  if ($("access-log").open) $("access-log").close();
  showLogin(message);
  refreshSession(); // a fresh CSRF token for the next sign-in
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const button = $("login-button");
  button.disabled = true;
  try {
    const body = await post("/api/login", {
      username: $("username").value.trim(),
      password: $("password").value,
    });
    setCsrf(body.csrf);
    $("password").value = "";
    beginSession(body.professional);
  } catch (err) {
    $("login-error").textContent = signInErrorText(err);
  } finally {
    button.disabled = false;
  }
});

$("oidc-login").addEventListener("click", () => {
  location.href = "/pro/oidc/start";
});

$("logout").addEventListener("click", async () => {
  for (const pane of panes.values()) pane.flushDraft();
  try {
    await post("/api/logout");
  } catch (err) {
    console.warn("kanava: sign-out", err);
  } finally {
    signedOut("Signed out.");
  }
});

// --- the protocol -----------------------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "welcome": {
      me = msg.professional;
      capacity = msg.capacity;
      myTeams = msg.teams || [];
      showMe();
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
      refreshLayout();
      connection.ready();
      const drafts = msg.drafts || {};
      for (const [cid, pane] of panes) if (pane.active) pane.restoreDraft(drafts[cid] || "");
      break;
    }
    case "queue.snapshot":
      queues.set(msg.team, msg);
      renderQueues();
      break;
    case "conversation.state":
      conversationState(msg.conversation);
      break;
    case "message.history": {
      const pane = panes.get(msg.conversation_id);
      if (!pane) break;
      for (const m of msg.messages) pane.addStored(m);
      pane.countUnread();
      if (msg.up_to_date) pane.markRead();
      break;
    }
    case "message.new": {
      const m = msg.message;
      const pane = panes.get(m.conversation_id);
      if (!pane) break;
      const added = pane.addStored(m);
      pane.countUnread();
      pane.markRead();
      if (added && m.sender_role === "client") notify(pane);
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

function conversationState(view) {
  const cid = view.conversation_id;
  const mine = Boolean(me && view.professional && view.professional.id === me.id);
  if (!panes.has(cid) && !(mine && view.state === "assigned")) return;
  const isNew = !panes.has(cid);
  const pane = paneFor(cid);
  pane.update(view);
  refreshLayout();
  if (pendingTransfer && pendingTransfer.pane === pane && view.reason === "transferred") {
    pendingTransfer = null;
    pane.openDrawer(null);
  }
  if (!isNew) return;
  const asked =
    takeRequest && Date.now() - takeRequest.at < 10_000 && (!takeRequest.cid || takeRequest.cid === cid);
  if (asked && view.reason === "taken") {
    takeRequest = null;
    activate(pane, "take", true);
  } else {
    notify(pane);
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
    if (pane) {
      const reason =
        err.code === "pane_mismatch"
          ? "the message did not match the chat it was written in"
          : err.reason || err.code;
      pane.list.failed(ref, reason);
    }
    return;
  }
  if (ref === "conversation.transfer" && pendingTransfer) {
    pendingTransfer.pane.transferFailed(pendingTransfer.panel, err.reason || err.code);
    pendingTransfer = null;
    return;
  }
  if (ref === "queue.take") {
    takeRequest = null;
    const texts = {
      invalid_state: "Someone else took that chat already.",
      queue_empty: "Nobody is waiting.",
      capacity_reached: `You already have ${capacity} chats, your maximum.`,
    };
    showAlert(texts[err.code] || `Could not take the chat: ${err.reason}`);
    return;
  }
  if (ref === "draft.set" || ref === "read.mark" || ref === "typing.set") {
    console.debug("kanava:", ref, err.code);
    return;
  }
  if (err.code === "already_open") return;
  showAlert(err.reason || err.code);
}

// --- the keyboard and the pointer -------------------------------------------------------------

document.addEventListener(
  "pointerdown",
  (event) => {
    unlockAudio();
    const pane = paneContaining(event.target);
    lastPointer = { at: Date.now(), pane };
    if (pane) activate(pane, "pointer");
  },
  true,
);

document.addEventListener("focusin", (event) => {
  const pane = paneContaining(event.target);
  if (!pane) return;
  // Focus that follows a click in this same pane is the click's; any other is the keyboard's
  // (Tab, a shortcut) or the page's own.
  const clicked = lastPointer.pane === pane && Date.now() - lastPointer.at < 800;
  activate(pane, clicked ? "pointer" : "keyboard");
});

function goTo(pane) {
  if (pane) activate(pane, "keyboard", true);
}

document.addEventListener("keydown", (event) => {
  unlockAudio();
  lastPointer = { at: 0, pane: null }; // what follows a key press is the keyboard's doing
  if ($("console").hidden || $("access-log").open) return;
  if (event.altKey && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
    const order = orderedPanes();
    const digit = /^(?:Digit|Numpad)([1-9])$/.exec(event.code);
    if (digit) {
      event.preventDefault();
      goTo(order[Number(digit[1]) - 1]);
    } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      if (!order.length) return;
      const at = order.findIndex((p) => p.cid === activeCid);
      const step = event.key === "ArrowRight" ? 1 : -1;
      const index = at < 0 ? (step > 0 ? 0 : order.length - 1) : (at + step + order.length) % order.length;
      goTo(order[index]);
    } else if (event.code === "KeyN") {
      event.preventDefault();
      if (!$("take-next").disabled) takeChat();
      else showAlert(`You already have ${capacity} chats, your maximum.`);
    }
  } else if (event.key === "Escape") {
    for (const pane of panes.values()) pane.cancelConfirm();
    if ($("shortcuts").open) $("shortcuts").open = false;
  }
});

// On a narrow screen the tabs move with the arrow keys, as tabs do.
$("pane-tabs").addEventListener("keydown", (event) => {
  if (event.altKey || (event.key !== "ArrowRight" && event.key !== "ArrowLeft")) return;
  const order = orderedPanes();
  const at = order.findIndex((p) => p.tab === document.activeElement);
  if (at < 0) return;
  event.preventDefault();
  const next = order[(at + (event.key === "ArrowRight" ? 1 : -1) + order.length) % order.length];
  activate(next, "keyboard");
  next.tab.focus();
});

// --- the top bar ------------------------------------------------------------------------------

$("available").addEventListener("change", (event) => {
  connection.send({ type: "availability.set", available: event.target.checked });
});

$("take-next").addEventListener("click", () => takeChat());

for (const [id, key, name] of [
  ["sound-toggle", PREFS.sound, "sound"],
  ["title-toggle", PREFS.title, "title"],
]) {
  $(id).checked = prefs[name];
  $(id).addEventListener("change", (event) => {
    prefs[name] = event.target.checked;
    localStorage.setItem(key, prefs[name] ? "1" : "0");
    if (name === "sound" && prefs.sound) beep();
    showUnreadTotal();
  });
}

// --- the access log (supervisors) ---------------------------------------------------------

function dateTime(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(ms)}`;
}

$("access-log-open").addEventListener("click", () => {
  $("access-log").showModal();
  $("access-query").focus();
});
$("access-log-close").addEventListener("click", () => $("access-log").close());

$("access-log-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("access-query").value.trim();
  if (!query) return;
  $("access-log-error").textContent = "";
  $("access-log-status").textContent = "Searching…";
  const body = query.startsWith("c_") ? { conversation_id: query } : { identity_code: query.toUpperCase() };
  try {
    const answer = await post("/api/access-log", body);
    const entries = answer.entries || [];
    const rows = entries.map((entry) => {
      const tr = el("tr");
      const time = el("time", "", dateTime(entry.at));
      time.dateTime = new Date(entry.at).toISOString();
      const cells = [
        time,
        entry.professional_name || entry.professional_id,
        entry.client_name || "—",
        entry.conversation_id,
        entry.reason || "",
      ];
      for (const cell of cells) {
        const td = el("td");
        td.append(cell);
        tr.append(td);
      }
      return tr;
    });
    $("access-log-rows").replaceChildren(...rows);
    $("access-log-table").hidden = entries.length === 0;
    $("access-log-caption").textContent = `Access log entries for ${query}`;
    const count = entries.length === 1 ? "1 entry" : `${entries.length} entries`;
    $("access-log-status").textContent = entries.length === 0 ? `No entries for ${query}.` : `${count} for ${query}.`;
  } catch (err) {
    $("access-log-status").textContent = "";
    $("access-log-table").hidden = true;
    if (err instanceof ApiError && err.status === 401) {
      paneContext.sessionLost();
      return;
    }
    $("access-log-error").textContent =
      err instanceof ApiError && err.status === 403
        ? "Only supervisors can read the access log."
        : `The search failed: ${(err && err.reason) || err.message}`;
  }
});

// --- the page itself --------------------------------------------------------------------------

document.addEventListener("visibilitychange", () => {
  const pane = panes.get(activeCid);
  if (pane) pane.markRead();
});

// Whatever was typed in the last half second is kept as a draft too.
window.addEventListener("pagehide", () => {
  for (const pane of panes.values()) pane.flushDraft();
});

window.matchMedia("(max-width: 899px)").addEventListener("change", showSelection);

setInterval(refreshWaits, 15_000); // keep "waiting N min" fresh

// Why an organisation sign-in came back without a session (/pro?login_error=<code>), in the
// page's language. Only these codes are shown: anything else in the address (a link someone
// made up, markup, a message of their own) gets the general text, never its own words.
const LOGIN_ERRORS = {
  en: {
    oidc_unavailable: "Sign-in with an organisation account is not available.",
    other_browser: "This sign-in was started in another browser. Try again.",
    not_linked: "No Kanava account is linked to this identity. Ask an administrator.",
    too_many: "Too many sign-ins have been started from this network. Try again in a few minutes.",
    busy: "Sign-in is busy right now. Try again in a minute.",
    other: "Signing in did not succeed. Try again.",
  },
  fi: {
    oidc_unavailable: "Kirjautuminen organisaation tunnuksella ei ole käytettävissä.",
    other_browser: "Tämä kirjautuminen aloitettiin toisessa selaimessa. Yritä uudelleen.",
    not_linked: "Tähän tunnukseen ei ole liitetty Kanava-tiliä. Pyydä ylläpitäjää liittämään se.",
    too_many: "Tästä verkosta on aloitettu liian monta kirjautumista. Yritä muutaman minuutin kuluttua.",
    busy: "Kirjautuminen on juuri nyt ruuhkautunut. Yritä hetken kuluttua uudelleen.",
    other: "Kirjautuminen ei onnistunut. Yritä uudelleen.",
  },
  sv: {
    oidc_unavailable: "Inloggning med organisationens konto är inte tillgänglig.",
    other_browser: "Den här inloggningen påbörjades i en annan webbläsare. Försök igen.",
    not_linked: "Inget Kanava-konto är kopplat till den här identiteten. Be en administratör.",
    too_many: "För många inloggningar har påbörjats från det här nätverket. Försök igen om några minuter.",
    busy: "Inloggningen är överbelastad just nu. Försök igen om en stund.",
    other: "Inloggningen lyckades inte. Försök igen.",
  },
};

// Why the sign-in form's attempt was refused, in the page's language. A 429 says whose
// attempts are too many waiting: this username's from this network (someone may be guessing
// it; a browser that signed in as this user before is not held up), or this network's.
const SIGN_IN_ERRORS = {
  en: {
    wrong: "Wrong username or password.",
    username:
      "Sign-ins with this username from this network are already waiting for an answer. " +
      "Wait a moment and try again. If this goes on, tell an administrator.",
    address: "Too many sign-ins from this network are waiting to be checked. Try again in a moment.",
    network: "Cannot reach the server. Check the connection and try again.",
  },
  fi: {
    wrong: "Väärä käyttäjätunnus tai salasana.",
    username:
      "Tällä käyttäjätunnuksella on tästä verkosta jo kirjautumisia odottamassa vastausta. " +
      "Odota hetki ja yritä uudelleen. Jos tämä jatkuu, kerro ylläpitäjälle.",
    address: "Tästä verkosta on liian monta kirjautumista odottamassa tarkistusta. Yritä hetken kuluttua uudelleen.",
    network: "Palvelimeen ei saada yhteyttä. Tarkista yhteys ja yritä uudelleen.",
  },
  sv: {
    wrong: "Fel användarnamn eller lösenord.",
    username:
      "Inloggningar med det här användarnamnet från det här nätverket väntar redan på svar. " +
      "Vänta en stund och försök igen. Om det fortsätter, kontakta en administratör.",
    address: "För många inloggningar från det här nätverket väntar på att kontrolleras. Försök igen om en stund.",
    network: "Det går inte att nå servern. Kontrollera anslutningen och försök igen.",
  },
};

function pageLanguage(table) {
  const language = (document.documentElement.lang || "en").slice(0, 2).toLowerCase();
  return Object.hasOwn(table, language) ? language : "en";
}

function loginErrorText(code) {
  const texts = LOGIN_ERRORS[pageLanguage(LOGIN_ERRORS)];
  return code !== "other" && Object.hasOwn(texts, code) ? texts[code] : texts.other;
}

function signInErrorText(err) {
  const texts = SIGN_IN_ERRORS[pageLanguage(SIGN_IN_ERRORS)];
  if (!(err instanceof ApiError)) return loginErrorText("other");
  if (err.status === 401) return texts.wrong;
  if (err.status === 429) {
    const error = (err.body && err.body.error) || {};
    return error.limit === "address" ? texts.address : texts.username;
  }
  if (err.status === 0) return texts.network;
  return loginErrorText("other");
}

async function start() {
  const params = new URLSearchParams(location.search);
  const loginError = params.get("login_error");
  if (loginError !== null) history.replaceState(null, "", location.pathname);
  const session = await refreshSession();
  if (session && session.professional && loginError === null) {
    beginSession(session.professional);
  } else {
    showLogin(loginError ? loginErrorText(loginError) : $("login-error").textContent);
  }
}

start();
