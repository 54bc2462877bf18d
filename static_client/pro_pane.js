// One chat of the console: its identity banner, what the intake and the advice bot found, the
// messages, the composer that belongs to this client only, and its tools (ready replies,
// transfer, escalation, the record entry).
//
// A pane is found only by its conversation_id (the Map in pro.js). The composer's message
// carries the conversation id twice: `conversation_id` from this object and `pane` from the
// pane's DOM, and the server refuses the message if they differ.

import { MessageList, TypingNotifier, clockTime, el } from "/static/kanava.js";
import { RecordPanel } from "/static/pro_record.js";

export const PANE_COLOURS = 10;
const DRAFT_DELAY_MS = 600;
export const CONFIRM_WINDOW_MS = 3000;
const LANGUAGES = { fi: "Finnish", sv: "Swedish", en: "English" };
const TRIAGE = { urgent: "Urgent", routine: "Routine" };
const ROLES = { nurse: "nurse", doctor: "doctor", supervisor: "supervisor", admin: "administrator" };
const LABELS = {
  you: "You",
  sending: "Sending…",
  delivered: "Delivered",
  read: "Read",
  failed: "Not sent",
  offered: "Offered to the client",
};

export function languageName(code) {
  return LANGUAGES[code] || code || "";
}

/** Who the client is, as the banner shows it. */
export function clientIdentity(view) {
  const identity = (view && view.identity) || null;
  const given = String((identity && identity.name) || (view && view.client_name) || "").trim();
  return {
    name: given || "Anonymous",
    anonymous: !given,
    verified: Boolean(identity && identity.verified),
    identified: Boolean(identity),
    age: identity && Number.isInteger(identity.age) ? identity.age : null,
    maskedCode: (identity && identity.masked_code) || "",
    firstName: given ? given.split(/\s+/)[0] : "",
  };
}

function letters(word) {
  return [...word].filter((ch) => /\p{L}|\p{N}/u.test(ch));
}

/** Initials to try for a name, most natural first: "AA", then "AiA", "AAl", then "AA2"… */
export function initialsCandidates(name, anonymous) {
  if (anonymous) return ["?", ...Array.from({ length: 20 }, (_, i) => `?${i + 2}`)];
  const words = name.split(/[\s-]+/).map(letters).filter((w) => w.length);
  if (!words.length) return ["?"];
  const first = words[0];
  const last = words[words.length - 1];
  const up = (ch) => (ch || "").toUpperCase();
  const base = words.length > 1 ? up(first[0]) + up(last[0]) : up(first[0]) + (first[1] || "");
  const out = [base];
  if (words.length > 1) {
    if (first[1]) out.push(up(first[0]) + first[1].toLowerCase() + up(last[0]));
    if (last[1]) out.push(up(first[0]) + up(last[0]) + last[1].toLowerCase());
  }
  for (let i = 2; i < 30; i++) out.push(`${base}${i}`);
  return out;
}

const GAP = "\u0000";

/**
 * A ready reply with its placeholders filled, as the server fills them: a value that is not
 * known is left out together with what would dangle (a space before a comma, empty brackets).
 */
export function fillPlaceholders(text, values) {
  let gaps = false;
  let out = String(text)
    .replaceAll(GAP, "")
    .replace(/\{(first_name|client_name|my_name|my_title|station)\}/g, (whole, key) => {
      const given = String(values[key] ?? "")
        .replace(/[\u0000-\u0008\u000e-\u001f\u007f]/g, "")
        .split(/\s+/)
        .filter(Boolean)
        .join(" ");
      if (given) return given;
      gaps = true;
      return GAP;
    });
  if (!gaps) return out;
  out = out.replace(/[ \t]*\([ \t]*\u0000+[ \t]*\)/g, GAP);
  out = out.replace(/,[ \t]*\u0000+[ \t]*(?=[,.!?;:])/g, "");
  out = out.replace(/[ \t]*\u0000+[ \t]*(?=[,.!?;:)]|$)/gm, "");
  out = out.replace(/^[ \t]*\u0000+[ \t]*/gm, "");
  return out.replace(/([ \t]*)\u0000+([ \t]*)/g, (whole, before, after) => (before || after ? " " : ""));
}

export class Pane {
  /**
   * ctx: {connection, outbox, me(), myTeams(), consoleData(), refreshColleagues(), teamName(id),
   *       isAttended(pane), needsConfirmation(pane), sentFrom(pane), activate(pane, how),
   *       remove(pane), changed(pane), setPendingTransfer(pane), sessionLost()}
   */
  constructor(cid, colour, ctx) {
    this.cid = cid;
    this.ctx = ctx;
    this.colour = colour;
    this.initials = "";
    this.view = null;
    this.who = clientIdentity(null);
    this.active = false;
    this.mine = false;
    this.readSent = 0;
    this.readUpTo = 0;
    this.unread = 0;
    this.typingTimer = null;
    this.draftTimer = null;
    this.draftSent = ""; // what the server has as this chat's draft
    this.confirming = false;
    this.switchedAt = null; // a keyboard switch into this pane: the next send asks first
    this.drawer = null;
    this.idPart = cid.replace(/[^A-Za-z0-9_-]/g, "");
    const idPart = this.idPart;

    this.root = el("article", `pane pane-c${colour}`);
    this.root.id = `pane-${idPart}`;
    this.root.tabIndex = -1;
    this.root.dataset.conversationId = cid;
    this.root.setAttribute("aria-labelledby", `pane-title-${idPart}`);

    // --- the identity banner ---
    const head = el("header", "pane-head");
    this.badge = el("span", "pane-badge");
    this.badge.setAttribute("aria-hidden", "true");
    const who = el("div", "pane-who");
    const nameRow = el("div", "pane-name-row");
    this.title = el("h3", "pane-name", "…");
    this.title.id = `pane-title-${idPart}`;
    this.unverified = el("span", "pane-unverified", "not verified");
    this.unverified.hidden = true;
    nameRow.append(this.title, this.unverified);
    this.facts = el("p", "pane-facts");
    this.topic = el("p", "pane-topic");
    this.stateLine = el("p", "pane-state");
    who.append(nameRow, this.facts, this.topic, this.stateLine);
    const marks = el("div", "pane-marks");
    this.triage = el("span", "pane-triage");
    this.triage.hidden = true;
    this.escalated = el("span", "pane-escalated", "Escalated to doctor");
    this.escalated.hidden = true;
    this.unreadBadge = el("span", "unread-count");
    this.unreadBadge.hidden = true;
    marks.append(this.triage, this.escalated, this.unreadBadge);
    head.append(this.badge, who, marks);

    // --- what happened before this nurse: the intake, the bot, the handover ---
    this.context = el("div", "pane-context");
    this.intakeBox = el("details", "pane-intake");
    this.intakeBox.open = true;
    this.intakeSummary = el("summary", "", "Questionnaire");
    this.reasonsList = el("ul", "pane-reasons");
    this.answers = el("dl", "pane-answers");
    this.intakeBox.append(this.intakeSummary, this.reasonsList, this.answers);
    this.intakeBox.hidden = true;
    this.botBox = el("details", "pane-bot");
    this.botSummary = el("summary", "", "Conversation with the advice bot");
    this.botListEl = el("ol", "messages bot-messages");
    this.botListEl.setAttribute("role", "log");
    this.botListEl.setAttribute("aria-label", "Conversation with the advice bot");
    this.botListEl.setAttribute("aria-live", "off"); // history, not news
    this.botBox.append(this.botSummary, this.botListEl);
    this.botBox.hidden = true;
    this.handover = el("p", "pane-handover");
    this.handover.hidden = true;
    this.context.append(this.intakeBox, this.botBox, this.handover);

    const listOptions = {
      isOwn: (m) => this.isOwn(m),
      labels: LABELS,
      describeSender: (m) => {
        if (m.sender_role === "client") return m.sender_name || "Client";
        if (m.sender_id === "p_bot") return `${m.sender_name} (bot)`;
        return `${m.sender_name} (colleague)`;
      },
    };
    this.botList = new MessageList(this.botListEl, listOptions);

    this.listEl = el("ol", "messages");
    this.listEl.setAttribute("role", "log");
    this.listEl.setAttribute("aria-live", "polite");
    this.listEl.setAttribute("aria-labelledby", this.title.id);
    this.listEl.tabIndex = 0;
    this.list = new MessageList(this.listEl, listOptions);
    // The newest message stays in sight when the pane changes size (a form opens, the
    // window shrinks), unless the nurse has scrolled up to read.
    this.stickToBottom = true;
    this.listEl.addEventListener("scroll", () => {
      const list = this.listEl;
      this.stickToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 32;
    });
    this.resizeObserver = new ResizeObserver(() => {
      if (this.stickToBottom) this.listEl.scrollTop = this.listEl.scrollHeight;
    });
    this.resizeObserver.observe(this.listEl);
    this.typingLine = el("p", "typing");
    this.typingLine.setAttribute("aria-live", "polite");

    // --- the composer ---
    this.composer = el("form", "composer");
    this.confirmBar = el("div", "confirm-bar");
    this.confirmBar.setAttribute("role", "alert");
    this.confirmBar.hidden = true;
    this.confirmText = el("p", "confirm-text");
    this.confirmYes = el("button", "primary", "Yes, send");
    this.confirmYes.type = "button";
    this.confirmNo = el("button", "quiet", "Cancel");
    this.confirmNo.type = "button";
    const confirmButtons = el("span", "confirm-buttons");
    confirmButtons.append(this.confirmYes, this.confirmNo);
    this.confirmBar.append(this.confirmText, confirmButtons);
    this.textLabel = el("label", "composer-label");
    this.textLabel.htmlFor = `text-${idPart}`;
    this.text = el("textarea");
    this.text.id = `text-${idPart}`;
    this.text.rows = 2;
    this.text.maxLength = 4000;
    this.sendButton = el("button", "primary send", "Send");
    this.sendButton.type = "submit";
    const row = el("div", "composer-row");
    row.append(this.text, this.sendButton);
    const cannedRow = el("div", "canned-row");
    const cannedLabel = el("label", "", "Ready reply");
    cannedLabel.htmlFor = `canned-${idPart}`;
    this.canned = el("select");
    this.canned.id = `canned-${idPart}`;
    this.cannedInsert = el("button", "quiet small", "Insert");
    this.cannedInsert.type = "button";
    cannedRow.append(cannedLabel, this.canned, this.cannedInsert);
    this.composer.append(this.confirmBar, this.textLabel, row, cannedRow);
    this.typingNotifier = new TypingNotifier(ctx.connection, cid);

    // --- the tools ---
    this.tools = el("div", "pane-tools");
    this.transferButton = this.toolButton("Transfer…");
    this.escalateButton = this.toolButton("Escalate to doctor…");
    this.endButton = this.toolButton("End chat…", "danger");
    this.tools.append(this.transferButton, this.escalateButton, this.endButton);

    this.drawerBox = el("div", "pane-drawer");
    this.drawerBox.hidden = true;
    this.transferPanel = this.buildTransfer(false);
    this.escalatePanel = this.buildTransfer(true);
    this.record = new RecordPanel({
      cid,
      idPart,
      outcomes: () => ctx.consoleData().outcomes,
      onSessionLost: () => ctx.sessionLost(),
    });
    this.record.cancel.addEventListener("click", () => this.openDrawer(null));
    this.drawerBox.append(this.transferPanel.root, this.escalatePanel.root, this.record.root);

    this.endedBox = el("div", "pane-ended");
    this.endedBox.hidden = true;
    this.recordButton = this.toolButton("Record entry…");
    this.dismiss = el("button", "quiet", "Remove from screen");
    this.dismiss.type = "button";
    this.endedBox.append(this.recordButton, this.dismiss);
    this.paneError = el("p", "form-error pane-error");
    this.paneError.setAttribute("role", "alert");

    this.root.append(
      head,
      this.context,
      this.listEl,
      this.typingLine,
      this.composer,
      this.tools,
      this.endedBox,
      this.paneError,
      this.drawerBox,
    );

    // The tab that stands for this pane on a narrow screen.
    this.tab = el("button", `pane-tab pane-c${colour}`);
    this.tab.type = "button";
    this.tab.setAttribute("role", "tab");
    this.tab.setAttribute("aria-controls", this.root.id);
    this.tab.id = `tab-${idPart}`;
    this.tabBadge = el("span", "tab-badge");
    this.tabBadge.setAttribute("aria-hidden", "true");
    this.tabName = el("span", "tab-name");
    this.tabUnread = el("span", "unread-count");
    this.tabUnread.hidden = true;
    this.tab.append(this.tabBadge, this.tabName, this.tabUnread);

    this.wire();
  }

  toolButton(text, kind = "quiet") {
    const button = el("button", `${kind} small`, text);
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    return button;
  }

  /** The transfer form (to a colleague or a team's queue), or the escalation to a doctor. */
  buildTransfer(escalate) {
    const idPart = `${escalate ? "esc" : "tr"}-${this.idPart}`;
    const root = el("section", "transfer-panel");
    const heading = el("h4", "drawer-title", escalate ? "Escalate to a doctor" : "Transfer the chat");
    heading.id = `title-${idPart}`;
    root.setAttribute("aria-labelledby", heading.id);
    const form = el("form", "transfer-form");
    form.noValidate = true; // the pane says what is missing, in its own words
    const targetLabel = el("label", "", escalate ? "Doctor" : "Transfer to");
    const target = el("select");
    target.id = `target-${idPart}`;
    target.required = true;
    targetLabel.htmlFor = target.id;
    const noteLabel = el("label", "", escalate ? "Note for the doctor" : "Note for the receiver");
    const note = el("textarea");
    note.id = `note-${idPart}`;
    note.rows = 2;
    note.maxLength = 500;
    noteLabel.htmlFor = note.id;
    const hint = el("p", "hint", escalate
      ? "The chat is marked as escalated. The doctor sees your note."
      : "The receiver sees your note with the chat.");
    const error = el("p", "form-error");
    error.setAttribute("role", "alert");
    const buttons = el("div", "drawer-buttons");
    const submit = el("button", "primary", escalate ? "Escalate to doctor" : "Transfer");
    submit.type = "submit";
    const cancel = el("button", "quiet", "Cancel");
    cancel.type = "button";
    buttons.append(submit, cancel);
    form.append(targetLabel, target, noteLabel, note, hint, error, buttons);
    root.append(heading, form);
    const panel = { root, heading, form, target, note, error, submit, escalate };
    cancel.addEventListener("click", () => this.openDrawer(null));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendTransfer(panel);
    });
    return panel;
  }

  wire() {
    this.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "Escape" && this.confirming) {
        event.preventDefault();
        event.stopPropagation();
        this.cancelConfirm();
      }
    });
    this.text.addEventListener("input", () => {
      if (this.confirming) this.cancelConfirm();
      if (this.text.value && this.active) this.typingNotifier.input();
      this.scheduleDraft();
    });
    this.text.addEventListener("blur", () => this.flushDraft());
    this.confirmYes.addEventListener("click", () => this.send());
    this.confirmNo.addEventListener("click", () => {
      this.cancelConfirm();
      this.text.focus();
    });
    this.cannedInsert.addEventListener("click", () => this.insertCanned());
    this.canned.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.insertCanned();
      }
    });
    for (const [button, panel] of [
      [this.transferButton, "transfer"],
      [this.escalateButton, "escalate"],
      [this.endButton, "record"],
      [this.recordButton, "record"],
    ]) {
      button.addEventListener("click", () => this.openDrawer(this.drawer === panel ? null : panel));
    }
    this.dismiss.addEventListener("click", () => this.ctx.remove(this));
    this.tab.addEventListener("click", () => this.ctx.activate(this, "pointer", true));
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.drawer && !this.confirming) {
        event.preventDefault();
        this.openDrawer(null);
        (this.active ? this.text : this.dismiss).focus();
      }
    });
  }

  // --- who and what ---------------------------------------------------------------------

  isOwn(m) {
    const me = this.ctx.me();
    if (m.sender_role !== "professional" || !me) return false;
    return m.sender_id ? m.sender_id === me.id : m.sender_name === me.name;
  }

  get name() {
    return this.who.name;
  }

  setInitials(initials) {
    this.initials = initials;
    for (const badge of [this.badge, this.tabBadge]) {
      badge.textContent = initials;
      badge.classList.toggle("badge-long", initials.length > 2);
    }
  }

  update(view) {
    const before = this.who.name;
    this.view = view;
    this.who = clientIdentity(view);
    const who = this.who;
    const name = who.name;
    if (!this.initials || before !== name) this.ctx.changed(this, "name");

    this.title.textContent = name;
    this.unverified.hidden = who.anonymous || who.verified;
    const facts = [];
    if (who.age !== null) facts.push(`${who.age} y`);
    if (who.maskedCode) facts.push(who.maskedCode);
    if (who.verified) facts.push("strongly identified");
    else facts.push(who.identified ? "identity not verified" : "no identity code");
    this.facts.textContent = facts.join(" · ");
    const about = [view.topic || "No topic given"];
    if (view.language) about.push(languageName(view.language));
    about.push(this.ctx.teamName(view.team));
    this.topic.textContent = about.join(" · ");

    const level = view.triage || (view.intake && view.intake.level);
    this.triage.hidden = !level;
    if (level) {
      // In the console's language, whatever language the client answered in.
      this.triage.textContent = TRIAGE[level] || level;
      this.triage.className = `pane-triage triage-${level}`;
    }
    this.escalated.hidden = !view.escalated;
    this.root.classList.toggle("pane-urgent", level === "urgent");

    this.textLabel.textContent = `Message to ${name}`;
    this.text.placeholder = `Reply to ${name}…`;
    this.sendButton.setAttribute("aria-label", `Send to ${name}`);
    this.transferButton.setAttribute("aria-label", `Transfer the chat with ${name}…`);
    this.escalateButton.setAttribute("aria-label", `Escalate the chat with ${name} to a doctor…`);
    this.endButton.setAttribute("aria-label", `End chat with ${name}…`);
    this.confirmText.textContent = `Send to ${name}? Press Enter again to send, Esc to cancel.`;
    this.tabName.textContent = name;
    this.urgent = level === "urgent";
    this.labelTab();

    this.showIntake(view);
    this.showHandover(view);
    this.showContext();
    this.fillCanned();

    const me = this.ctx.me();
    const mine = Boolean(view.professional && me && view.professional.id === me.id);
    this.mine = mine;
    this.stateLine.textContent = this.stateText(view, mine);
    if (this.readUpTo < (view.read_professional_seq || 0)) this.readUpTo = view.read_professional_seq;
    if (this.readSent < (view.read_professional_seq || 0)) this.readSent = view.read_professional_seq;
    this.setActive(view.state === "assigned" && mine);
    this.list.peerRead(view.read_client_seq || 0);
    this.countUnread();
  }

  stateText(view, mine) {
    const pro = view.professional;
    if (view.state === "assigned" && mine) return `Chat started ${clockTime(view.created_at)}`;
    if (view.state === "assigned" && pro) {
      const escalatedByMe =
        view.escalated && view.handover && view.handover.kind === "escalation" &&
        this.ctx.me() && view.handover.from_id === this.ctx.me().id;
      return `${escalatedByMe ? "Escalated" : "Transferred"} to ${pro.name}`;
    }
    if (view.state === "queued" && view.reason === "transferred") {
      return `Sent to the queue of ${this.ctx.teamName(view.team)}`;
    }
    if (view.state === "queued") return "Back in the queue (no longer yours)";
    if (view.state === "closed") {
      if (view.closed_by === "client") return "The client ended the chat";
      if (view.reason === "deleted_by_retention") {
        return "Ended: deleted after no activity for its retention time";
      }
      if (view.closed_by === "server") return "The chat has ended";
      let line = mine || !pro ? "You ended the chat" : `${pro.name} ended the chat`;
      if (view.reason && !view.reason.startsWith("closed_by_")) {
        const outcome = (this.ctx.consoleData().outcomes || []).find((o) => o.value === view.reason);
        line += ` (${outcome ? outcome.label : view.reason.replace(/_/g, " ")})`;
      }
      return line;
    }
    return "";
  }

  showIntake(view) {
    const intake = view.intake;
    this.intakeBox.hidden = !intake;
    if (!intake) return;
    this.intakeSummary.textContent = `Questionnaire: ${intake.title || intake.topic || "answers"}`;
    this.reasonsList.replaceChildren(...(intake.reasons || []).map((r) => el("li", "", r)));
    this.reasonsList.hidden = !(intake.reasons || []).length;
    const rows = [];
    for (const line of intake.lines || []) rows.push(el("dt", "", line.label), el("dd", "", line.answer));
    this.answers.replaceChildren(...rows);
  }

  showHandover(view) {
    const h = view.handover;
    this.handover.hidden = !h;
    if (!h) return;
    const me = this.ctx.me();
    const by = h.from_id && me && h.from_id === me.id ? "you" : h.from_name || "a colleague";
    const what = {
      escalation: "Escalated to doctor",
      team: "Sent to the team's queue",
      transfer: "Transferred",
    }[h.kind] || "Handed over";
    this.handover.className = `pane-handover handover-${h.kind}`;
    this.handover.replaceChildren(el("strong", "", `${what} by ${by}`));
    if (h.at) this.handover.append(el("span", "handover-time", ` (${clockTime(h.at)})`));
    if (h.note) this.handover.append(": ", el("span", "handover-note", h.note));
  }

  showContext() {
    this.context.hidden = this.intakeBox.hidden && this.botBox.hidden && this.handover.hidden;
  }

  fillCanned() {
    const data = this.ctx.consoleData();
    const team = this.view ? this.view.team : null;
    const lang = (this.view && this.view.language) || "fi";
    const entries = (data.canned || []).filter(
      (c) => !c.teams || !c.teams.length || c.teams.includes("*") || c.teams.includes(team),
    );
    const key = JSON.stringify([team, lang, entries.map((c) => c.id)]);
    if (key === this.cannedKey) return;
    this.cannedKey = key;
    const first = el("option", "", entries.length ? "Choose…" : "None for this team");
    first.value = "";
    this.canned.replaceChildren(first);
    for (const c of entries) {
      const option = el("option", "", (c.title && (c.title[lang] || c.title.fi)) || c.id);
      option.value = c.id;
      this.canned.append(option);
    }
    this.canned.disabled = !entries.length;
    this.cannedInsert.disabled = !entries.length;
  }

  /** Put the chosen ready reply, its placeholders filled, into the composer; never send. */
  insertCanned() {
    const data = this.ctx.consoleData();
    const entry = (data.canned || []).find((c) => c.id === this.canned.value);
    if (!entry || !this.active) return;
    const lang = (this.view && this.view.language) || "fi";
    const me = this.ctx.me() || {};
    const text = fillPlaceholders((entry.text && (entry.text[lang] || entry.text.fi)) || "", {
      first_name: this.who.firstName,
      client_name: this.who.anonymous ? "" : this.who.name,
      my_name: me.name || "",
      my_title: me.title || "",
      station: this.ctx.teamName((this.view && this.view.station) || (this.view && this.view.team)),
    });
    const area = this.text;
    const start = area.selectionStart ?? area.value.length;
    const end = area.selectionEnd ?? area.value.length;
    area.setRangeText(text, start, end, "end");
    this.canned.value = "";
    area.focus();
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // --- activity --------------------------------------------------------------------------

  setActive(active) {
    this.active = active;
    this.root.classList.toggle("pane-inactive", !active);
    this.root.classList.toggle("pane-closed", Boolean(this.view && this.view.state === "closed"));
    this.composer.hidden = !active;
    this.tools.hidden = !active;
    this.endedBox.hidden = active;
    // The record entry stays available for a chat that ended while it was ours.
    const mayRecord = active || (this.view && this.view.state === "closed" && this.mine);
    this.recordButton.hidden = !mayRecord;
    this.record.setActive(active);
    if (!active) {
      this.cancelConfirm();
      this.typingNotifier.stop();
      this.typingLine.textContent = "";
      clearTimeout(this.draftTimer);
      if (this.drawer && this.drawer !== "record") this.openDrawer(null);
      if (this.drawer === "record" && !mayRecord) this.openDrawer(null);
    }
  }

  openDrawer(which) {
    this.drawer = which;
    this.drawerBox.hidden = !which;
    this.transferPanel.root.hidden = which !== "transfer";
    this.escalatePanel.root.hidden = which !== "escalate";
    this.record.root.hidden = which !== "record";
    this.transferButton.setAttribute("aria-expanded", String(which === "transfer"));
    this.escalateButton.setAttribute("aria-expanded", String(which === "escalate"));
    this.endButton.setAttribute("aria-expanded", String(which === "record"));
    this.recordButton.setAttribute("aria-expanded", String(which === "record"));
    this.root.classList.toggle("drawer-open", Boolean(which));
    if (which === "transfer" || which === "escalate") {
      const panel = which === "transfer" ? this.transferPanel : this.escalatePanel;
      panel.error.textContent = "";
      this.fillTargets(panel);
      panel.target.focus();
      this.ctx.refreshColleagues().then(() => this.fillTargets(panel));
    } else if (which === "record") {
      this.record.load();
      this.record.outcome.focus();
    }
  }

  fillTargets(panel) {
    const data = this.ctx.consoleData();
    const me = this.ctx.me();
    const chosen = panel.target.value;
    const colleagues = (data.colleagues || [])
      .filter((c) => !me || c.id !== me.id)
      .filter((c) => !panel.escalate || c.role === "doctor")
      .sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name, "fi"));
    const prompt = panel.escalate ? "Choose a doctor…" : "Choose a colleague or a queue…";
    const placeholder = el("option", "", prompt);
    placeholder.value = "";
    const people = el("optgroup");
    people.label = panel.escalate ? "Doctors" : "Colleagues";
    for (const c of colleagues) {
      const role = ROLES[c.role] || c.title || c.role || "";
      const text = `${c.name}${role ? ` (${role})` : ""} – ${c.online ? "online" : "offline"}`;
      const option = el("option", "", text);
      option.value = `p:${c.id}`;
      option.disabled = !c.online;
      people.append(option);
    }
    const queues = el("optgroup");
    queues.label = panel.escalate ? "A doctors' team queue" : "Team queues";
    // The nurse's own teams first, then the others by name; the advice bot last, by its role.
    const own = new Set(this.ctx.myTeams());
    const teams = (data.teams || [])
      .filter((t) => !(this.view && t.id === this.view.team) && !(panel.escalate && t.id === "bot"))
      .sort(
        (a, b) =>
          Number(a.id === "bot") - Number(b.id === "bot") ||
          Number(own.has(b.id)) - Number(own.has(a.id)) ||
          (a.name || a.id).localeCompare(b.name || b.id, "fi"),
      );
    for (const team of teams) {
      const text = team.id === "bot" ? `Advice bot (${team.name || "bot"})` : `Queue of ${team.name || team.id}`;
      const option = el("option", "", text);
      option.value = `t:${team.id}`;
      queues.append(option);
    }
    panel.target.replaceChildren(placeholder);
    if (people.children.length) panel.target.append(people);
    if (queues.children.length) panel.target.append(queues);
    if ([...panel.target.options].some((o) => o.value === chosen && !o.disabled)) panel.target.value = chosen;
  }

  sendTransfer(panel) {
    panel.error.textContent = "";
    const value = panel.target.value;
    if (!value) {
      panel.error.textContent = panel.escalate ? "Choose a doctor." : "Choose who gets the chat.";
      panel.target.focus();
      return;
    }
    const msg = { type: "conversation.transfer", conversation_id: this.cid };
    if (value.startsWith("p:")) msg.to_professional = value.slice(2);
    else msg.to_team = value.slice(2);
    const note = panel.note.value.trim();
    if (note) msg.note = note;
    if (panel.escalate) msg.escalate = true;
    this.paneError.textContent = "";
    if (!this.ctx.connection.send(msg)) {
      panel.error.textContent = "Not connected. Try again when the connection is back.";
      return;
    }
    this.flushDraft();
    this.ctx.setPendingTransfer(this, panel);
  }

  transferFailed(panel, reason) {
    const target = panel || this.transferPanel;
    if (this.drawer) target.error.textContent = `Transfer failed: ${reason}`;
    this.paneError.textContent = `Transfer failed: ${reason}`;
  }

  // --- sending ---------------------------------------------------------------------------

  submit() {
    const text = this.text.value.trim();
    if (!text || !this.active) return;
    if (!this.confirming && this.ctx.needsConfirmation(this)) {
      this.confirming = true;
      this.confirmBar.hidden = false;
      this.root.classList.add("confirming");
      return;
    }
    this.send();
  }

  cancelConfirm() {
    if (!this.confirming) return;
    this.confirming = false;
    this.confirmBar.hidden = true;
    this.root.classList.remove("confirming");
  }

  send() {
    const text = this.text.value.trim();
    this.cancelConfirm();
    if (!text || !this.active) return;
    // `pane` is read from the page, `conversation_id` from this object: the server checks
    // that they agree, so a message can only go to the chat whose pane it was written in.
    const item = this.ctx.outbox.add(this.cid, text, { pane: this.root.dataset.conversationId });
    this.list.addPending(item.msg_id, text);
    this.typingNotifier.stop();
    this.text.value = "";
    this.ctx.sentFrom(this);
    clearTimeout(this.draftTimer);
    this.flushDraft();
    this.text.focus();
  }

  // --- drafts ----------------------------------------------------------------------------

  scheduleDraft() {
    clearTimeout(this.draftTimer);
    this.draftTimer = setTimeout(() => this.flushDraft(), DRAFT_DELAY_MS);
  }

  /** Tell the server the composer's text, if it changed since it last heard. */
  flushDraft() {
    clearTimeout(this.draftTimer);
    if (!this.active) return;
    const text = this.text.value.slice(0, 4000);
    if (text === this.draftSent) return;
    const sent = this.ctx.connection.send({ type: "draft.set", conversation_id: this.cid, text });
    if (sent) this.draftSent = text;
  }

  /**
   * The server's draft (from welcome): shown, unless the composer was changed since the
   * server last heard of it (typed or cleared while the connection was down).
   */
  restoreDraft(text) {
    const draft = String(text || "");
    const changedHere = this.text.value !== this.draftSent;
    this.draftSent = draft;
    if (changedHere) this.flushDraft();
    else if (this.text.value !== draft) this.text.value = draft;
  }

  // --- messages --------------------------------------------------------------------------

  /** A stored message: to the bot's part or to the chat; returns whether it was new. */
  addStored(m) {
    const botSeq = (this.view && this.view.bot_seq) || 0;
    if (m.seq <= botSeq) {
      const added = this.botList.addStored(m);
      const count = this.botList.size;
      this.botBox.hidden = count === 0;
      this.botSummary.textContent = `Conversation with the advice bot (${count} message${count === 1 ? "" : "s"})`;
      this.showContext();
      return added;
    }
    const added = this.list.addStored(m);
    if (added && m.sender_role === "client") this.showTyping(false);
    return added;
  }

  get lastSeq() {
    return Math.max(this.list.lastSeq, this.botList.lastSeq);
  }

  showTyping(typing) {
    clearTimeout(this.typingTimer);
    this.typingLine.textContent = typing ? `${this.name} is typing…` : "";
    if (typing) this.typingTimer = setTimeout(() => (this.typingLine.textContent = ""), 10000);
  }

  /** The nurse is looking at this pane: its messages are read. */
  markRead() {
    if (!this.ctx.isAttended(this)) return;
    const seq = this.list.lastPeerSeq();
    if (seq > this.readUpTo) this.readUpTo = seq;
    if (this.active && seq > this.readSent) {
      if (this.ctx.connection.send({ type: "read.mark", conversation_id: this.cid, seq })) this.readSent = seq;
    }
    this.countUnread();
  }

  countUnread() {
    let count = 0;
    for (const [seq, item] of this.list.bySeq) {
      if (seq > this.readUpTo && item.classList.contains("msg-from-client")) count += 1;
    }
    if (count === this.unread && this.unreadBadge.textContent) return;
    this.unread = count;
    const label = `${count} unread`;
    for (const badge of [this.unreadBadge, this.tabUnread]) {
      badge.hidden = count === 0;
      badge.textContent = String(count);
      badge.setAttribute("aria-label", label);
      badge.title = label;
    }
    this.labelTab();
    this.ctx.changed(this, "unread");
  }

  labelTab() {
    const parts = [this.name];
    if (this.urgent) parts.push("urgent");
    if (this.unread) parts.push(`${this.unread} unread`);
    this.tab.setAttribute("aria-label", parts.join(", "));
  }

  focusComposer() {
    if (this.active) this.text.focus();
    else this.root.focus();
  }

  destroy() {
    this.resizeObserver.disconnect();
    clearTimeout(this.typingTimer);
    clearTimeout(this.draftTimer);
    this.typingNotifier.stop();
    this.root.remove();
    this.tab.remove();
  }
}
