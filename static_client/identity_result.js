// The identification pop-up's last page: tells the chat that opened it (this origin only)
// whether identification succeeded, and closes itself after a success. A file of its own,
// because the page's Content-Security-Policy runs no inline script.
const ok = document.body.dataset.ok === "true";
if (window.opener) {
  window.opener.postMessage({ kanava: "identified", ok }, window.location.origin);
  if (ok) setTimeout(() => window.close(), 1500);
}
