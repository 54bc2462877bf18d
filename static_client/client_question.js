// One question of the intake as a form: its progress, the question as the fieldset's legend,
// its help, and the answer as choices (single, multi, yes/no) or a field (number, text); and
// the answer read back from the form as the protocol wants it.
//
// The form is only built here; client_intake.js sends the answer and shows a refusal (the
// server checks every answer and explains a refusal in the person's language).

import { el } from "/static/kanava.js";
import { lang, t } from "/static/client_i18n.js";
import { stepHeading } from "/static/client_screen.js";

/** The question's form and its legend (the heading that takes focus). */
export function questionForm(q, progress) {
  const form = el("form", "question");
  form.noValidate = true; // the server checks the answer and explains a refusal
  form.dataset.question = q.id;
  const base = `q-${q.id}`;
  const parts = [];

  if (progress && progress.total) {
    const wrap = el("div", "progress");
    const label = el("p", "progress-text", t("progress", { i: progress.index, n: progress.total }));
    label.id = `${base}-progress`;
    const bar = el("progress");
    bar.max = progress.total;
    bar.value = progress.index;
    bar.setAttribute("aria-labelledby", label.id);
    wrap.append(label, bar);
    parts.push(wrap);
  }

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
  } else {
    fieldset.append(field(q, base, legend));
  }
  fieldset.setAttribute("aria-describedby", described.join(" "));
  for (const input of fieldset.querySelectorAll("input, textarea")) {
    input.setAttribute("aria-describedby", described.join(" "));
  }
  fieldset.append(error);

  const actions = el("div", "step-actions");
  const next = el("button", "primary", t("next"));
  next.type = "submit";
  actions.append(next);
  form.append(...parts, fieldset, actions);
  return { form, legend };
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
