// The patient record entry of one chat, inside its pane: outcome, reason for contact,
// symptoms, advice given and follow-up. Prefilled from the server's draft; saving it can also
// end the chat. A saved entry can be downloaded as text and as FHIR JSON.

import { ApiError, get, post } from "/static/pro_api.js";
import { clockTime, el } from "/static/kanava.js";

const FIELDS = [
  ["reason", "Reason for contact", 2],
  ["symptoms", "Symptoms", 3],
  ["advice", "Advice given", 3],
  ["follow_up", "Follow-up", 2],
];
const FALLBACK_OUTCOMES = [
  { value: "resolved", label: "Resolved" },
  { value: "booked_appointment", label: "Appointment booked" },
  { value: "referred", label: "Referred elsewhere" },
  { value: "no_response", label: "No response from client" },
];

/** Only links to this server's own paths become download links. */
function ownPath(url) {
  const text = String(url || "");
  return text.startsWith("/") && !text.startsWith("//") ? text : null;
}

export class RecordPanel {
  /**
   * cid: the conversation; idPart: a safe id fragment; outcomes(): [{value, label}];
   * onSessionLost(): the sign-in expired.
   */
  constructor({ cid, idPart, outcomes, onSessionLost }) {
    this.cid = cid;
    this.outcomes = outcomes;
    this.onSessionLost = onSessionLost;
    this.loaded = false;
    this.loading = null;
    this.active = true;
    this.inputs = {};

    this.root = el("section", "record-panel");
    const headingId = `record-title-${idPart}`;
    this.root.setAttribute("aria-labelledby", headingId);
    this.heading = el("h4", "drawer-title", "Patient record entry");
    this.heading.id = headingId;
    this.heading.tabIndex = -1;

    this.form = el("form", "record-form");
    this.form.noValidate = true;
    const outcomeId = `record-outcome-${idPart}`;
    const outcomeLabel = el("label", "", "Outcome");
    outcomeLabel.htmlFor = outcomeId;
    this.outcome = el("select");
    this.outcome.id = outcomeId;
    this.form.append(outcomeLabel, this.outcome);
    for (const [name, label, rows] of FIELDS) {
      const id = `record-${name.replace("_", "-")}-${idPart}`;
      const fieldLabel = el("label", "", label);
      fieldLabel.htmlFor = id;
      const input = el("textarea");
      input.id = id;
      input.rows = rows;
      input.maxLength = 4000;
      this.inputs[name] = input;
      this.form.append(fieldLabel, input);
    }
    this.error = el("p", "form-error");
    this.error.setAttribute("role", "alert");
    this.status = el("div", "record-status");
    this.status.setAttribute("role", "status");
    const buttons = el("div", "drawer-buttons");
    this.saveClose = el("button", "danger", "Save entry and end chat");
    this.saveClose.type = "submit";
    this.saveOnly = el("button", "quiet", "Save entry");
    this.saveOnly.type = "button";
    this.cancel = el("button", "quiet", "Cancel");
    this.cancel.type = "button";
    buttons.append(this.saveClose, this.saveOnly, this.cancel);
    this.form.append(this.error, buttons);
    this.root.append(this.heading, this.status, this.form);

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save(this.active);
    });
    this.saveOnly.addEventListener("click", () => this.save(false));
  }

  /** While the chat goes on the entry can end it; afterwards it can only be saved again. */
  setActive(active) {
    this.active = active;
    this.saveClose.hidden = !active;
    this.saveOnly.hidden = active;
    this.saveOnly.classList.toggle("primary", !active);
  }

  fillOutcomes(selected) {
    const list = this.outcomes();
    const options = list && list.length ? list : FALLBACK_OUTCOMES;
    const placeholder = el("option", "", "Choose the outcome…");
    placeholder.value = "";
    this.outcome.replaceChildren(placeholder);
    for (const item of options) {
      const option = el("option", "", item.label || item.value);
      option.value = item.value;
      this.outcome.append(option);
    }
    if (selected && [...this.outcome.options].some((o) => o.value === selected)) {
      this.outcome.value = selected;
    }
  }

  /** Fetch the draft (once) and fill the fields. */
  async load() {
    if (this.loaded) return;
    if (this.loading) return this.loading;
    this.fillOutcomes("");
    this.loading = (async () => {
      try {
        const body = await get(`/api/conversations/${encodeURIComponent(this.cid)}/record`);
        // A saved entry is what the professional wrote last: edit that, not a fresh draft.
        const source = body.saved || body.draft || {};
        // What the professional already chose while the draft was on its way stays chosen.
        this.fillOutcomes(this.outcome.value || source.outcome || "");
        for (const [name] of FIELDS) {
          if (!this.inputs[name].value) this.inputs[name].value = source[name] || "";
        }
        if (body.saved) this.showSaved(body.saved, false);
        this.loaded = true;
      } catch (err) {
        this.showError(err, "Could not load the record draft");
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  values() {
    const values = { outcome: this.outcome.value };
    for (const [name] of FIELDS) values[name] = this.inputs[name].value.trim();
    return values;
  }

  async save(close) {
    this.error.textContent = "";
    if (!this.outcome.value) {
      this.error.textContent = "Choose the outcome of the chat.";
      this.outcome.focus();
      return;
    }
    const buttons = [this.saveClose, this.saveOnly];
    for (const b of buttons) b.disabled = true;
    try {
      const body = await post(`/api/conversations/${encodeURIComponent(this.cid)}/record`, {
        ...this.values(),
        close: Boolean(close),
      });
      this.loaded = true;
      if (body.saved) this.showSaved(body.saved, true);
    } catch (err) {
      this.showError(err, "Saving failed");
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  showSaved(saved, justNow) {
    const line = el(
      "p",
      "record-saved",
      justNow
        ? `Record entry saved (version ${saved.version})`
        : `Saved record entry: version ${saved.version}`,
    );
    const when = el("p", "record-time", saved.saved_at ? `Saved at ${clockTime(saved.saved_at)}` : "");
    const links = el("p", "record-links");
    for (const [url, text] of [
      [saved.text_url, "Download as text"],
      [saved.fhir_url, "Download as FHIR JSON"],
    ]) {
      const path = ownPath(url);
      if (!path) continue;
      const link = el("a", "download", text);
      link.href = path;
      link.setAttribute("download", ""); // the server names the file
      links.append(link);
    }
    this.status.replaceChildren(line, when, links);
  }

  showError(err, prefix) {
    if (err instanceof ApiError && err.status === 401) {
      this.onSessionLost();
      return;
    }
    let text = err instanceof ApiError && err.reason ? err.reason : err.message;
    if (err instanceof ApiError && err.code === "not_assigned") {
      text = "This chat is not assigned to you any more.";
    }
    if (err instanceof ApiError && err.status === 409) {
      // Saved, but the chat could not be ended (it ended meanwhile, say).
      this.error.textContent = text.charAt(0).toUpperCase() + text.slice(1);
      return;
    }
    this.error.textContent = `${prefix}: ${text}`;
  }
}
