// One question of the intake as a form: the progress by sections ("Osio 2/5: Oireet"), the
// question as the fieldset's legend, its help, and the answer as choices (single, multi,
// yes/no), a row of buttons (a 0–10 scale) or a field (number, text); Back and Next; and the
// answer read back from the form as the protocol wants it.
//
// The form is only built here; client_intake.js sends the answer and shows a refusal (the
// server checks every answer and explains a refusal in the person's language).

import { el } from "/static/kanava.js";
import { lang, t } from "/static/client_i18n.js";
import { stepHeading } from "/static/client_screen.js";

/**
 * The progress of a step: the section it is in, of how many, and its title, with a bar.
 * Older servers send only the question's number: then "Question 3 of 12".
 */
export function progressBar(progress, id) {
  if (!progress || !(progress.sections || progress.total)) return null;
  const sections = Boolean(progress.sections);
  const wrap = el("div", "progress");
  const text = sections
    ? t("section", { i: progress.section, n: progress.sections, title: progress.title || "" })
    : t("progress", { i: progress.index, n: progress.total });
  const label = el("p", "progress-text", text);
  label.id = id;
  const bar = el("progress");
  bar.max = sections ? progress.sections : progress.total;
  bar.value = sections ? progress.section : progress.index;
  bar.setAttribute("aria-labelledby", label.id);
  wrap.append(label, bar);
  return wrap;
}

/** A Back button for a step that can go back (the server says so with `back`). */
export function backButton() {
  const back = el("button", "secondary step-back", t("back"));
  back.type = "button";
  return back;
}

/** The question's form, its legend (the heading that takes focus) and its Back button. */
export function questionForm(q, progress, { back = false } = {}) {
  const form = el("form", "question");
  form.noValidate = true; // the server checks the answer and explains a refusal
  form.dataset.question = q.id;
  const base = `q-${q.id}`;
  const parts = [];

  const bar = progressBar(progress, `${base}-progress`);
  if (bar) parts.push(bar);

  const fieldset = el("fieldset", "question-set");
  const legend = stepHeading("legend", q.text, "question-text");
  legend.id = `${base}-legend`;
  fieldset.append(legend);
  const described = [];
  if (q.help) {
    const help = el("p", "hint", q.help);
    help.id = `${base}-help`;
    described.push(help.id);
    fieldset.append(help);
  }
  if (!q.required) {
    const optional = el("p", "hint", t("optional"));
    optional.id = `${base}-optional`;
    described.push(optional.id);
    fieldset.append(optional);
  }
  const error = el("p", "form-error question-error");
  error.id = `${base}-error`;
  error.setAttribute("aria-live", "assertive");
  described.push(error.id);

  if (q.kind === "single" || q.kind === "multi" || q.kind === "yes_no") {
    fieldset.append(choices(q, base));
  } else if (q.kind === "number" && q.scale) {
    fieldset.append(scale(q, base));
  } else {
    fieldset.append(field(q, base, legend));
  }
  fieldset.setAttribute("aria-describedby", described.join(" "));
  for (const input of fieldset.querySelectorAll("input, textarea")) {
    input.setAttribute("aria-describedby", described.join(" "));
  }
  fieldset.append(error);

  const actions = el("div", "step-actions");
  let backTo = null;
  if (back) {
    backTo = backButton();
    actions.append(backTo);
  }
  const next = el("button", "primary", t("next"));
  next.type = "submit";
  actions.append(next);
  form.append(...parts, fieldset, actions);
  return { form, legend, back: backTo };
}

/** Radio buttons or check boxes, the earlier answer checked. */
function choices(q, base) {
  const answer = q.answer;
  const multi = q.kind === "multi";
  const options =
    q.kind === "yes_no"
      ? (q.choices || []).map((c) => ({ id: String(c.value), label: c.label }))
      : q.options || [];
  const chosen = new Set(
    Array.isArray(answer) ? answer.map(String) : answer == null ? [] : [String(answer)]
  );
  const group = el("div", "choices");
  for (const option of options) {
    const label = el("label", "choice");
    const input = el("input");
    input.type = multi ? "checkbox" : "radio";
    input.name = base;
    input.value = option.id;
    input.checked = chosen.has(option.id);
    input.dataset.exclusive = option.exclusive ? "1" : "";
    label.append(input, el("span", "", option.label));
    group.append(label);
  }
  if (multi) group.addEventListener("change", (event) => keepExclusive(group, event.target));
  return group;
}

/**
 * A short whole-number range (0–10) as a row of radio buttons: one press on a phone, the arrow
 * keys on a keyboard; each button is labelled by its number, the legend and the help say what
 * the ends mean.
 */
function scale(q, base) {
  const group = el("div", "scale");
  for (let value = q.min; value <= q.max; value += 1) {
    const label = el("label", "scale-option");
    const input = el("input");
    input.type = "radio";
    input.name = base;
    input.value = String(value);
    input.checked = q.answer === value;
    label.append(input, el("span", "scale-number", String(value)));
    group.append(label);
  }
  return group;
}

/** A text field (a number, with its unit, or a text), the earlier answer in it. */
function field(q, base, legend) {
  const answer = q.answer;
  const row = el("div", "answer-row");
  let input;
  if (q.kind === "text" && q.multiline) {
    input = el("textarea");
    input.rows = 4;
  } else {
    input = el("input");
    input.type = "text";
    input.autocomplete = "off";
  }
  input.id = `${base}-input`;
  input.name = base;
  const labelled = [legend.id];
  if (q.kind === "number") {
    // A text field: "38,5" is how a Finn or a Swede writes it, and the server says why a
    // value is refused in the person's language.
    input.inputMode = q.integer ? "numeric" : "decimal";
    input.className = "number-input";
    if (answer != null) input.value = formatNumber(answer);
    row.append(input);
    if (q.unit) {
      const unit = el("span", "unit", q.unit);
      unit.id = `${base}-unit`;
      labelled.push(unit.id);
      row.append(unit);
    }
  } else {
    if (q.max_length) input.maxLength = q.max_length;
    if (answer != null) input.value = String(answer);
    input.className = "text-input";
    row.append(input);
  }
  input.setAttribute("aria-labelledby", labelled.join(" "));
  return row;
}

/** "None of these" and the symptoms exclude each other. */
function keepExclusive(group, changed) {
  if (!changed || !changed.checked) return;
  for (const other of group.querySelectorAll("input")) {
    if (other === changed) continue;
    if (changed.dataset.exclusive || other.dataset.exclusive) other.checked = false;
  }
}

function formatNumber(value) {
  const text = String(value);
  return lang === "en" ? text : text.replace(".", ",");
}

/** The answer as the protocol wants it; an empty optional answer is null (skipped). */
export function readAnswer(form, q) {
  const checked = [...form.querySelectorAll("input:checked")].map((i) => i.value);
  switch (q.kind) {
    case "single":
      return checked[0] ?? null;
    case "yes_no":
      return checked.length ? checked[0] === "true" : null;
    case "multi":
      return checked.length ? checked : null;
    case "number": {
      if (q.scale) return checked.length ? Number(checked[0]) : null;
      const raw = form.querySelector("input").value.trim();
      if (!raw) return null;
      const plain = raw.replace(/\s/g, "").replace(",", ".");
      // Something that is not a number goes as it is: the server explains what it expects.
      return /^[-+]?\d+(\.\d+)?$/.test(plain) ? Number(plain) : raw;
    }
    default: {
      const text = form.querySelector("input, textarea").value.trim();
      return text || null;
    }
  }
}
