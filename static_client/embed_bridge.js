// The chat page's side of the widget (widget.js): active only in its frame (?embed=1).
//
// From the framing page it takes exactly two messages, and only from window.parent (which the
// server's frame-ancestors policy has already limited to the configured host pages):
//   {kanava: "set-language", lang: "fi" | "sv" | "en"}  switches the page's language
//   {kanava: "panel", open: true | false}               the widget's panel was opened or closed
// To the framing page it sends {kanava: "unread", count} (messages that arrived while the
// panel was closed) and {kanava: "close"} (Esc in the chat), but only to an origin it trusts:
// the origin of a message that came from window.parent (the browser tells it), when that is this
// server's own or listed in <meta name="kanava-widget-origins" content="ORIGIN ORIGIN …">.
// Never to "*": a conversation's activity is not told to any page that happens to frame it.

const LANGS = ["fi", "sv", "en"];

const params = new URLSearchParams(location.search);
const embedded = params.get("embed") === "1" && window.parent !== window;

if (embedded) start();

function trustedOrigins() {
  const origins = new Set([location.origin]);
  const meta = document.querySelector('meta[name="kanava-widget-origins"]');
  for (const item of (meta?.getAttribute("content") || "").split(/[\s,]+/)) {
    if (!item) continue;
    try {
      const url = new URL(item);
      if (url.protocol === "https:" || url.protocol === "http:") origins.add(url.origin);
    } catch {
      // not an origin: ignored
    }
  }
  return origins;
}

function isPlainObject(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    Object.getPrototypeOf(value) === Object.prototype
  );
}

function hasExactly(data, keys) {
  const own = Object.keys(data);
  return own.length === keys.length && keys.every((key) => own.includes(key));
}

function start() {
  document.documentElement.classList.add("embedded");
  const trusted = trustedOrigins();
  let parentOrigin = null; // learnt from the first trusted message of the parent
  let panelOpen = true;
  let unread = 0;

  function tell(message) {
    if (parentOrigin) window.parent.postMessage(message, parentOrigin);
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const data = event.data;
    if (!isPlainObject(data)) return;
    if (data.kanava === "set-language" && hasExactly(data, ["kanava", "lang"])) {
      if (!LANGS.includes(data.lang)) return;
      learn(event.origin);
      const select = document.getElementById("ui-language");
      if (select && select.value !== data.lang) {
        select.value = data.lang;
        select.dispatchEvent(new Event("change", { bubbles: true }));
      }
    } else if (data.kanava === "panel" && hasExactly(data, ["kanava", "open"])) {
      if (typeof data.open !== "boolean") return;
      learn(event.origin);
      panelOpen = data.open;
      if (panelOpen) unread = 0;
      tell({ kanava: "unread", count: unread });
    }
  });

  /** The parent's origin, as the browser reports it, once it is one this page may tell. */
  function learn(origin) {
    if (trusted.has(origin)) parentOrigin = origin;
  }

  // Esc in the chat closes the widget's panel, unless the chat used it for something itself.
  window.addEventListener("keydown", (event) => {
    if ((event.key === "Escape" || event.key === "Esc") && !event.defaultPrevented && !event.isComposing) {
      tell({ kanava: "close" });
    }
  });

  // Counts messages from the health station that arrive while the panel is closed.
  const observer = new MutationObserver((records) => {
    if (panelOpen) return;
    let added = 0;
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (
          node.nodeType === Node.ELEMENT_NODE &&
          node.matches(".msg") &&
          !node.matches(".msg-own") &&
          node.closest('[role="log"]')
        ) {
          added += 1;
        }
      }
    }
    if (added) {
      unread += added;
      tell({ kanava: "unread", count: unread });
    }
  });
  observer.observe(document.body, { childList: true, subtree: true });
}
