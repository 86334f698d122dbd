// Short messages in a live region: screen readers hear them, and they go away by themselves
// (errors stay longer, and each can be dismissed sooner). At most a few are on screen: a burst
// of failures must not cover the page, so the oldest makes way.
import { h } from "./dom.js";

const MAX_SHOWN = 3;
const ERROR_TIMEOUT = 8000;

export function toast(message, kind = "info", { timeout = kind === "error" ? ERROR_TIMEOUT : 5000 } = {}) {
  const region = document.getElementById("toasts");
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", message), close);
  close.addEventListener("click", () => el.remove());
  region.append(el);
  while (region.children.length > MAX_SHOWN) region.firstElementChild.remove();
  setTimeout(() => el.remove(), timeout);
  return el;
}

// Show an API error the way every view does.
export function toastError(err, what) {
  const text = err && err.message ? err.message : String(err);
  return toast(what ? `${what}: ${text}` : text, "error");
}
