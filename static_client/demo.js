// The demo station page: its buttons call the chat widget's API (window.Kanava, from widget.js).
// The page's policy allows no inline script, so the buttons are wired here.

const box = document.getElementById("widget-demo");

function wire() {
  if (!window.Kanava || !box) return;
  box.hidden = false;
  for (const button of box.querySelectorAll("button[data-kanava]")) {
    button.addEventListener("click", () => {
      const action = button.dataset.kanava;
      if (action === "open") {
        window.Kanava.open();
      } else {
        window.Kanava.setLanguage(action);
        window.Kanava.open();
      }
    });
  }
}

// widget.js loads with `async`: it may run before or after this module.
if (window.Kanava) wire();
else document.addEventListener("kanava:ready", wire, { once: true });
