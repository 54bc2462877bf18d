// The last page of the identification pop-up: tells the chat page that opened it how it went.
// The one-time code goes only to a page of this server's own origin (postMessage's target
// origin), whose websocket redeems it for its own intake. Opened any other way, nothing is
// sent anywhere and the person is told to identify from the chat itself.
const meta = document.querySelector('meta[name="kanava-identification"]');
let result = { ok: false, code: null, alone: null };
try {
  if (meta) result = { ...result, ...JSON.parse(meta.content) };
} catch {
  // A page without a result says only what its text says.
}
const message = { kanava: "identified", ok: Boolean(result.ok), code: result.code || null };
if (window.opener && !window.opener.closed) {
  window.opener.postMessage(message, window.location.origin);
  if (result.ok) setTimeout(() => window.close(), 1500);
} else if ("BroadcastChannel" in window && result.ok) {
  // The provider's pages may have cut this window off from its opener: a chat page of this
  // origin in this browser still hears it. Only the page that holds this intake can use the
  // code; one that takes it says so, and this window closes as after a pop-up.
  const channel = new BroadcastChannel("kanava-identification");
  let taken = false;
  channel.addEventListener("message", (event) => {
    if (event.data && event.data.kanava === "identification-taken") {
      taken = true;
      setTimeout(() => window.close(), 1500);
    }
  });
  channel.postMessage(message);
  setTimeout(() => {
    if (!taken && result.alone) document.querySelector('[role="status"]').textContent = result.alone;
  }, 1500);
} else if (result.ok && result.alone) {
  document.querySelector('[role="status"]').textContent = result.alone;
}
