// Short messages in a live region: screen readers hear them, and they go away by themselves
// (errors stay until dismissed).
import { h } from "./dom.js";

export function toast(message, kind = "info", { timeout = 5000 } = {}) {
  const region = document.getElementById("toasts");
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", message), close);
  close.addEventListener("click", () => el.remove());
  region.append(el);
  if (kind !== "error") setTimeout(() => el.remove(), timeout);
  return el;
}

// Show an API error the way every view does.
export function toastError(err, what) {
  const text = err && err.message ? err.message : String(err);
  return toast(what ? `${what}: ${text}` : text, "error");
}
