/*
 * Kanava chat widget: one tag on a health station's page adds a chat button.
 *
 *   <script src="https://CHAT-HOST/widget.js" data-team-or-station="kallio" data-lang="fi" async></script>
 *
 * The chat itself runs in an iframe served from the chat server's own origin, so the host
 * page's scripts cannot read the conversation; this script only shows the button and the
 * panel around the frame. It never reads anything from the frame but two small messages
 * ({kanava: "close"} and {kanava: "unread", count}) and only from the frame itself; it tells
 * the frame {kanava: "set-language", lang} and {kanava: "panel", open}, to the chat's origin
 * only (static_client/embed_bridge.js is the other end).
 *
 * Options (data-* attributes of the script tag):
 *   data-team-or-station  team id (such as "kallio") or station id of the chat's queue; the
 *                         chat page preselects that station when the intake asks for one
 *   data-lang             fi, sv or en (default: the page's <html lang>, else fi)
 *   data-position         bottom-right (default) or bottom-left
 *   data-color            accent colour (any CSS colour), data-text-color its text colour
 *   data-topic            start topic id
 *   data-label            the button's text in the tag's language (default: "Chat – kysy
 *                         hoitajalta" and so on; after setLanguage, that language's default)
 *
 * The host page's JavaScript API: Kanava.open(), Kanava.close(), Kanava.toggle(),
 * Kanava.setLanguage("sv"), Kanava.isOpen(). When the API is ready, the document gets a
 * "kanava:ready" event.
 *
 * A host page with a Content-Security-Policy needs the chat server in its script-src and
 * frame-src. The widget injects no <style> elements and no style attributes: it styles its
 * elements through the CSSOM (element.style), which a policy without 'unsafe-inline' allows.
 * The chat server lets only the host origins in its widget_origins setting frame the chat.
 *
 * A classic script on purpose (it runs on foreign pages): no modules, no dependencies, and
 * no globals but window.Kanava.
 */
(function () {
  "use strict";

  if (window.Kanava && window.Kanava.version) return; // the tag is on the page twice

  var LANGS = ["fi", "sv", "en"];
  var TEXT = {
    fi: {
      label: "Chat – kysy hoitajalta",
      frameTitle: "Chat hoitajan kanssa",
      close: "Sulje",
      closeName: "Sulje chat",
      unread: function (n) {
        return n === 1 ? "1 uusi viesti" : n + " uutta viestiä";
      },
    },
    sv: {
      label: "Chatt – fråga en skötare",
      frameTitle: "Chatt med en skötare",
      close: "Stäng",
      closeName: "Stäng chatten",
      unread: function (n) {
        return n === 1 ? "1 nytt meddelande" : n + " nya meddelanden";
      },
    },
    en: {
      label: "Chat – ask a nurse",
      frameTitle: "Chat with a nurse",
      close: "Close",
      closeName: "Close chat",
      unread: function (n) {
        return n === 1 ? "1 new message" : n + " new messages";
      },
    },
  };
  var DEFAULT_COLOR = "#0b5f8a";
  var DEFAULT_TEXT_COLOR = "#ffffff";
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif';
  var Z = "2147483000";
  // Full screen on a phone, and on any screen too low for the panel (a zoomed-in desktop).
  var FULL_SCREEN = "(max-width: 480px), (max-height: 500px)";

  // --- the script tag and its options -------------------------------------------------------

  function ownScript() {
    var current = document.currentScript;
    if (current && current.src) return current;
    var scripts = document.getElementsByTagName("script");
    for (var i = scripts.length - 1; i >= 0; i--) {
      var src = scripts[i].getAttribute("src") || "";
      if (/\/widget\.js(?:[?#].*)?$/.test(src)) return scripts[i];
    }
    return null;
  }

  var script = ownScript();
  if (!script) return;
  var ORIGIN;
  try {
    ORIGIN = new URL(script.src, document.baseURI).origin;
  } catch (err) {
    return;
  }
  if (!/^https?:\/\//.test(ORIGIN)) return;

  function option(name) {
    var value = script.getAttribute("data-" + name);
    return value === null ? "" : String(value).trim();
  }

  function pickLanguage(value) {
    var tag = String(value || "").trim().toLowerCase().split("-")[0];
    return LANGS.indexOf(tag) >= 0 ? tag : "";
  }

  function validColor(value, fallback) {
    if (!value) return fallback;
    try {
      if (window.CSS && CSS.supports && CSS.supports("color", value)) return value;
    } catch (err) {
      /* fall through */
    }
    warn("data-color and data-text-color take a CSS colour; ignored: " + value);
    return fallback;
  }

  function safeId(value) {
    // Team, station and topic ids: letters, digits, - and _ only.
    return /^[A-Za-z0-9_-]{1,64}$/.test(value) ? value : "";
  }

  function warn(text) {
    if (window.console && console.warn) console.warn("Kanava widget: " + text);
  }

  var team = safeId(option("team-or-station"));
  if (option("team-or-station") && !team) warn("data-team-or-station is not a valid id");
  var topic = safeId(option("topic"));
  var initialLang =
    pickLanguage(option("lang")) || pickLanguage(document.documentElement.lang) || "fi";
  var lang = initialLang;
  var customLabel = option("label");
  var left = option("position") === "bottom-left";
  var accent = validColor(option("color"), DEFAULT_COLOR);
  var accentText = validColor(option("text-color"), DEFAULT_TEXT_COLOR);

  // --- building the elements ------------------------------------------------------------------

  // Text spacing stays adjustable by the reader's own style sheet (WCAG 1.4.12).
  var ADJUSTABLE = { "line-height": true, "letter-spacing": true, "word-spacing": true };

  /** Sets styles through the CSSOM, !important so that the host page's rules keep off. */
  function css(element, styles) {
    for (var name in styles) {
      if (Object.prototype.hasOwnProperty.call(styles, name)) {
        element.style.setProperty(name, styles[name], ADJUSTABLE[name] ? "" : "important");
      }
    }
  }

  function make(tag, styles) {
    var element = document.createElement(tag);
    css(element, RESET);
    if (styles) css(element, styles);
    return element;
  }

  var RESET = {
    "box-sizing": "border-box",
    margin: "0",
    "font-family": FONT,
    "font-size": "max(16px, 1rem)",
    "line-height": "1.3",
    "letter-spacing": "normal",
    "text-transform": "none",
    "text-align": "left",
    "text-decoration": "none",
    float: "none",
  };
  var VISUALLY_HIDDEN = {
    position: "absolute",
    width: "1px",
    height: "1px",
    padding: "0",
    overflow: "hidden",
    clip: "rect(0 0 0 0)",
    "clip-path": "inset(50%)",
    "white-space": "nowrap",
    border: "0",
  };

  /** A focus ring seen on any background: dark, with a white ring around it. */
  function focusRing(element) {
    function show() {
      var keyboard = true;
      try {
        keyboard = element.matches(":focus-visible");
      } catch (err) {
        /* an old browser: always show it */
      }
      if (keyboard) {
        css(element, {
          outline: "3px solid #1d2330",
          "outline-offset": "0",
          "box-shadow": "0 0 0 6px #ffffff",
        });
      }
    }
    element.addEventListener("focus", show);
    element.addEventListener("blur", function () {
      css(element, { outline: "none", "box-shadow": element === launcher ? SHADOW : "none" });
    });
  }

  var SHADOW = "0 2px 10px rgba(0, 0, 0, 0.3)";
  var side = left ? "left" : "right";

  var root = make("div", { position: "static" });
  root.className = "kanava-widget";

  var launcher = make("button", {
    position: "fixed",
    bottom: "16px",
    display: "inline-flex",
    "align-items": "center",
    gap: "8px",
    "min-width": "44px",
    "min-height": "44px",
    "max-width": "calc(100vw - 32px)",
    padding: "10px 18px",
    border: "2px solid " + accentText,
    "border-radius": "999px",
    background: accent,
    color: accentText,
    "font-weight": "700",
    cursor: "pointer",
    "box-shadow": SHADOW,
    "z-index": Z,
    width: "auto",
    height: "auto",
  });
  launcher.style.setProperty(side, "16px", "important");
  launcher.type = "button";
  launcher.id = "kanava-widget-launcher";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "kanava-widget-panel");
  launcher.appendChild(bubbleIcon());
  var launcherText = make("span", { color: "inherit", "font-weight": "inherit" });
  launcher.appendChild(launcherText);
  var badge = make("span", {
    display: "none",
    "min-width": "24px",
    height: "24px",
    padding: "0 6px",
    "border-radius": "12px",
    background: "#a12622",
    color: "#ffffff",
    border: "2px solid #ffffff",
    "font-size": "14px",
    "line-height": "20px",
    "text-align": "center",
    "font-weight": "700",
  });
  var badgeCount = make("span", { color: "inherit", "font-size": "inherit", "line-height": "inherit" });
  badgeCount.setAttribute("aria-hidden", "true");
  var badgeText = make("span", VISUALLY_HIDDEN);
  badge.appendChild(badgeCount);
  badge.appendChild(badgeText);
  launcher.appendChild(badge);
  focusRing(launcher);

  // Focus is kept in the panel while it covers the whole screen: these two catch Tab at its ends.
  var firstGuard = make("span", VISUALLY_HIDDEN);
  var lastGuard = make("span", VISUALLY_HIDDEN);

  var panel = make("div", {
    position: "fixed",
    display: "none",
    "flex-direction": "column",
    overflow: "hidden",
    background: "#ffffff",
    color: "#1d2330",
    border: "1px solid rgba(0, 0, 0, 0.25)",
    "box-shadow": "0 6px 28px rgba(0, 0, 0, 0.35)",
    "z-index": Z,
    padding: "0",
  });
  panel.id = "kanava-widget-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "kanava-widget-title");

  var head = make("div", {
    display: "flex",
    "align-items": "center",
    "justify-content": "space-between",
    gap: "8px",
    padding: "6px 6px 6px 14px",
    background: accent,
    color: accentText,
    "border-bottom": "1px solid rgba(0, 0, 0, 0.3)",
    "flex": "0 0 auto",
  });
  var title = make("span", { color: "inherit", "font-weight": "700", "min-width": "0" });
  title.id = "kanava-widget-title";
  var closeButton = make("button", {
    display: "inline-flex",
    "align-items": "center",
    gap: "6px",
    "min-width": "44px",
    "min-height": "44px",
    padding: "6px 12px",
    border: "2px solid " + accentText,
    "border-radius": "6px",
    background: "transparent",
    color: accentText,
    "font-weight": "600",
    cursor: "pointer",
    "flex": "0 0 auto",
    width: "auto",
    height: "auto",
  });
  closeButton.type = "button";
  closeButton.id = "kanava-widget-close";
  var cross = make("span", { color: "inherit", "font-size": "20px", "line-height": "1" });
  cross.setAttribute("aria-hidden", "true");
  cross.textContent = "×";
  var closeText = make("span", { color: "inherit", "font-weight": "inherit" });
  closeButton.appendChild(cross);
  closeButton.appendChild(closeText);
  focusRing(closeButton);
  head.appendChild(title);
  head.appendChild(closeButton);

  var frameBox = make("div", {
    display: "flex",
    flex: "1 1 auto",
    "min-height": "0",
    background: "#ffffff",
    padding: "0",
  });
  panel.appendChild(firstGuard);
  panel.appendChild(head);
  panel.appendChild(frameBox);
  panel.appendChild(lastGuard);

  // New messages while the panel is closed are told to screen readers too.
  var announcer = make("div", VISUALLY_HIDDEN);
  announcer.setAttribute("role", "status");

  root.appendChild(launcher);
  root.appendChild(panel);
  root.appendChild(announcer);

  function bubbleIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "22");
    svg.setAttribute("height", "22");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    css(svg, { display: "block", "flex-shrink": "0", fill: "currentColor" });
    var path = document.createElementNS(ns, "path");
    path.setAttribute(
      "d",
      "M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z"
    );
    svg.appendChild(path);
    return svg;
  }

  // --- state ----------------------------------------------------------------------------------

  var iframe = null; // created on the first open and kept, so the conversation survives a close
  var frameLang = lang; // the language the frame was opened with
  var loaded = false;
  var open = false;
  var unread = 0;
  var fullScreen = window.matchMedia ? window.matchMedia(FULL_SCREEN) : null;
  var savedOverflow = null;

  function t() {
    return TEXT[lang];
  }

  function applyTexts() {
    var text = t();
    launcherText.textContent = customLabel && lang === initialLang ? customLabel : text.label;
    title.textContent = launcherText.textContent;
    closeText.textContent = text.close;
    closeButton.setAttribute("aria-label", text.closeName);
    root.setAttribute("lang", lang);
    if (iframe) iframe.title = text.frameTitle;
    showUnread();
  }

  function showUnread() {
    var visible = unread > 0 && !open;
    css(badge, { display: visible ? "inline-block" : "none" });
    badgeCount.textContent = visible ? String(unread) : "";
    badgeText.textContent = visible ? ", " + t().unread(unread) : "";
  }

  function layout() {
    var full = fullScreen ? fullScreen.matches : false;
    if (full) {
      css(panel, {
        top: "0",
        left: "0",
        right: "0",
        bottom: "0",
        width: "100%",
        height: "100%",
        "max-width": "none",
        "max-height": "none",
        "border-radius": "0",
        border: "0",
      });
    } else {
      css(panel, {
        top: "auto",
        bottom: "84px",
        left: left ? "16px" : "auto",
        right: left ? "auto" : "16px",
        width: "380px",
        height: "600px",
        "max-width": "calc(100vw - 32px)",
        "max-height": "calc(100vh - 100px)",
        "border-radius": "12px",
        border: "1px solid rgba(0, 0, 0, 0.25)",
      });
    }
    // While it covers the page, the panel is modal: Tab stays in it, the page does not scroll.
    panel.setAttribute("aria-modal", full ? "true" : "false");
    firstGuard.tabIndex = full ? 0 : -1;
    lastGuard.tabIndex = full ? 0 : -1;
    var html = document.documentElement;
    if (open && full) {
      if (savedOverflow === null) savedOverflow = html.style.getPropertyValue("overflow");
      html.style.setProperty("overflow", "hidden");
    } else if (savedOverflow !== null) {
      if (savedOverflow) html.style.setProperty("overflow", savedOverflow);
      else html.style.removeProperty("overflow");
      savedOverflow = null;
    }
  }

  function frameUrl() {
    var query = "embed=1&lang=" + encodeURIComponent(lang);
    if (team) query += "&team=" + encodeURIComponent(team);
    if (topic) query += "&topic=" + encodeURIComponent(topic);
    return ORIGIN + "/client?" + query;
  }

  function createFrame() {
    iframe = make("iframe", {
      display: "block",
      flex: "1 1 auto",
      width: "100%",
      height: "100%",
      border: "0",
      background: "#ffffff",
      padding: "0",
    });
    iframe.title = t().frameTitle;
    iframe.setAttribute("referrerpolicy", "no-referrer");
    frameLang = lang;
    iframe.addEventListener("load", function () {
      loaded = true;
      // The frame learns from this message (its origin, told by the browser) whom it may tell
      // about unread messages; a language chosen while the frame was loading is sent again.
      post({ kanava: "panel", open: open });
      if (lang !== frameLang) post({ kanava: "set-language", lang: lang });
    });
    iframe.src = frameUrl();
    frameBox.appendChild(iframe);
  }

  function post(message) {
    if (iframe && iframe.contentWindow) {
      try {
        iframe.contentWindow.postMessage(message, ORIGIN);
      } catch (err) {
        /* the frame is gone */
      }
    }
  }

  // --- the API --------------------------------------------------------------------------------

  function openPanel() {
    if (!iframe) createFrame();
    open = true;
    panel.hidden = false;
    css(panel, { display: "flex" });
    launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    showUnread();
    layout();
    if (loaded) post({ kanava: "panel", open: true });
    iframe.focus();
  }

  function closePanel(returnFocus) {
    if (!open) return;
    var focusWasInside = panel.contains(document.activeElement);
    open = false;
    panel.hidden = true;
    css(panel, { display: "none" });
    launcher.setAttribute("aria-expanded", "false");
    layout();
    post({ kanava: "panel", open: false });
    if (returnFocus !== false || focusWasInside) launcher.focus();
  }

  function setLanguage(value) {
    var chosen = pickLanguage(value);
    if (!chosen) {
      warn("setLanguage takes fi, sv or en; ignored: " + value);
      return;
    }
    lang = chosen;
    applyTexts();
    if (loaded) post({ kanava: "set-language", lang: lang });
  }

  // --- events ---------------------------------------------------------------------------------

  launcher.addEventListener("click", function () {
    if (open) closePanel();
    else openPanel();
  });
  closeButton.addEventListener("click", function () {
    closePanel();
  });
  firstGuard.addEventListener("focus", function () {
    if (iframe) iframe.focus();
  });
  lastGuard.addEventListener("focus", function () {
    closeButton.focus();
  });

  document.addEventListener("keydown", function (event) {
    if (!open || event.defaultPrevented || (event.key !== "Escape" && event.key !== "Esc")) return;
    var active = document.activeElement;
    // Esc anywhere in the widget; elsewhere on the page only while the panel covers it.
    if (root.contains(active) || !active || active === document.body || panel.getAttribute("aria-modal") === "true") {
      event.preventDefault();
      closePanel();
    }
  });

  window.addEventListener("message", function (event) {
    // Only the chat's own frame, on the chat's own origin; only these two small messages.
    if (!iframe || event.origin !== ORIGIN || event.source !== iframe.contentWindow) return;
    var data = event.data;
    if (!data || typeof data !== "object") return;
    if (data.kanava === "close") {
      closePanel();
    } else if (data.kanava === "unread") {
      var count = Number(data.count);
      if (!isFinite(count) || count < 0) return;
      count = Math.min(Math.floor(count), 999);
      var more = count > unread;
      unread = open ? 0 : count;
      showUnread();
      if (more && !open) announcer.textContent = t().label + ": " + t().unread(unread);
    }
  });

  if (fullScreen) {
    var onChange = function () {
      layout();
    };
    if (fullScreen.addEventListener) fullScreen.addEventListener("change", onChange);
    else if (fullScreen.addListener) fullScreen.addListener(onChange);
  }

  // --- start ----------------------------------------------------------------------------------

  warnAboutContrast();
  applyTexts();
  layout();

  function warnAboutContrast() {
    // Resolves both colours through the browser and warns when the text is hard to read.
    try {
      var probe = document.createElement("span");
      probe.style.setProperty("color", accent);
      probe.style.setProperty("background-color", accentText);
      document.documentElement.appendChild(probe);
      var style = getComputedStyle(probe);
      var ratio = contrast(style.color, style.backgroundColor);
      probe.remove();
      if (ratio && ratio < 4.5) {
        warn("data-color and data-text-color contrast " + ratio.toFixed(2) + ":1, below 4.5:1");
      }
    } catch (err) {
      /* only a warning */
    }
  }

  function contrast(a, b) {
    function luminance(rgb) {
      var parts = rgb.match(/[\d.]+/g);
      if (!parts || parts.length < 3) return null;
      var channels = parts.slice(0, 3).map(function (value) {
        var c = Number(value) / 255;
        return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
      });
      return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
    }
    var la = luminance(a);
    var lb = luminance(b);
    if (la === null || lb === null) return null;
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  function mount() {
    (document.body || document.documentElement).appendChild(root);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  window.Kanava = Object.freeze({
    version: 1,
    open: function () {
      openPanel();
    },
    close: function () {
      closePanel(false);
    },
    toggle: function () {
      if (open) closePanel(false);
      else openPanel();
    },
    setLanguage: setLanguage,
    isOpen: function () {
      return open;
    },
  });
  try {
    document.dispatchEvent(new CustomEvent("kanava:ready"));
  } catch (err) {
    /* an old browser */
  }
})();
