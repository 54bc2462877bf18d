// The citizen page's own words in Finnish, Swedish and English: /static/i18n/fi.json, sv.json
// and en.json (the same keys in each file), each fetched once. `lang` is the page's language;
// `setLanguage` changes it and then calls what client.js registered with `onLanguageChange`,
// which shows the page again in it. Messages and the server's texts stay as they were written.
//
// Also the words built from the server's data: a professional's role, a time of day, the text
// for a refusal by a limit.

import { el } from "/static/kanava.js";
import { KEY, params, store } from "/static/client_state.js";

export const LANGS = ["fi", "sv", "en"];
export const LOCALES = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" };

/** The person's choice in this tab, else ?lang=, else the browser's first of fi/sv/en. */
function initialLanguage() {
  const candidates = [store.getItem(KEY.ui), params.get("lang")];
  for (const tag of navigator.languages || [navigator.language]) {
    candidates.push(String(tag || "").split("-")[0].toLowerCase());
  }
  return candidates.find((c) => LANGS.includes(c)) || "fi";
}

const texts = new Map(); // language -> its words
export let lang = initialLanguage();

/** The word `key` in the page's language; `{name}` placeholders filled from `vars`. */
export function t(key, vars = null) {
  const words = texts.get(lang) || texts.get("fi") || {};
  let text = words[key] ?? (texts.get("fi") || {})[key];
  if (text === undefined) return key;
  if (vars) text = text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  return text;
}

/** The word `key` if the language has one, else null (for optional words such as roles). */
export function maybe(key) {
  const words = texts.get(lang) || {};
  return words[key] ?? null;
}

/** Fetch a language's words once (retrying while the server does not answer). */
export async function loadWords(language) {
  if (texts.has(language)) return texts.get(language);
  for (let attempt = 0; ; attempt += 1) {
    try {
      const response = await fetch(`/static/i18n/${language}.json`, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const words = await response.json();
        texts.set(language, words);
        return words;
      }
    } catch (err) {
      console.debug("kanava: words", language, err);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 8000)));
  }
}

let languageTicket = 0; // a quicker later choice wins over a slower earlier one
let languageChanged = () => {};

/** What shows the page again in a newly chosen language (client.js gives it). */
export function onLanguageChange(callback) {
  languageChanged = callback;
}

export async function setLanguage(value) {
  const wanted = LANGS.includes(value) ? value : "fi";
  const ticket = ++languageTicket;
  store.setItem(KEY.ui, wanted);
  await loadWords(wanted);
  if (ticket !== languageTicket) return;
  lang = wanted;
  languageChanged();
}

/** Show a word of the page that follows a change of language (null: nothing). */
export function setWord(node, key) {
  if (key) {
    node.dataset.t = key;
    node.textContent = t(key);
  } else {
    delete node.dataset.t;
    node.textContent = "";
  }
}

// The round-the-clock numbers the page's own words offer, as shown and as tel: links.
export const NUMBERS = {
  helpline: { text: "116 117", href: "tel:116117" },
  emergency: { text: "112", href: "tel:112" },
};

/** The word `key` with its {helpline} and {emergency} as tel: links (`node` gets them). */
export function setLinkedWord(node, key) {
  const parts = t(key).split(/\{(\w+)\}/);
  const children = parts.map((part, i) => {
    const number = i % 2 === 1 && Object.hasOwn(NUMBERS, part) ? NUMBERS[part] : null;
    if (!number) return i % 2 === 1 ? `{${part}}` : part;
    const link = el("a", "tel", number.text);
    link.href = number.href;
    return link;
  });
  node.replaceChildren(...children);
}

/** The word `key` as plain text, its numbers written out (a transcript). */
export function plainWord(key) {
  return t(key, { helpline: NUMBERS.helpline.text, emergency: NUMBERS.emergency.text });
}

/** "15:30" from the server as the language writes a time of day (15.30 in Finnish). */
export function clock(hhmm) {
  return String(hhmm || "").replace(":", t("timeSeparator"));
}

/** A professional's role in the page's language ("sairaanhoitaja"); the title if unknown. */
export function roleOf(pro) {
  return maybe(`roles.${pro.role}`) ?? maybe(`roles.${pro.title}`) ?? (pro.title || "");
}

/** "Hanna Hoitaja, sairaanhoitaja", or the bot said to be a bot. */
export function describePro(pro) {
  if (pro.bot) return t("botName");
  const role = roleOf(pro);
  return role ? `${pro.name}, ${role}` : pro.name;
}

/** The text for a refusal by a limit (too much from one network, or a full server), else null. */
export function limitText(err) {
  if (err.code === "rate_limited" || err.code === "address_limit" || err.code === "busy") {
    const minutes = Math.max(1, Math.ceil((err.retry_after_ms || 60000) / 60000));
    return t("tooMany").replace("{minutes}", String(minutes));
  }
  return null;
}
