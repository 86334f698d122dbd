// Keyboard shortcuts of the current view. A view binds its keys and gets a function that unbinds
// them; keys typed into a text field are left to the field unless a binding says otherwise.
import { h } from "./dom.js";

let bindings = [];

function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  if (target.tagName !== "INPUT") return false;
  return !["checkbox", "radio", "button", "range", "submit", "file", "color"].includes(target.type);
}

function matches(b, e) {
  if (b.ctrl !== undefined && b.ctrl !== (e.ctrlKey || e.metaKey)) return false;
  if (b.ctrl === undefined && (e.ctrlKey || e.metaKey || e.altKey)) return false;
  if (b.shift !== undefined && b.shift !== e.shiftKey) return false;
  return b.keys.includes(e.key);
}

document.addEventListener("keydown", (e) => {
  // a modal dialog has the keyboard to itself: nothing happens behind it
  if (e.defaultPrevented || document.querySelector("dialog[open]")) return;
  for (const b of [...bindings].reverse()) {
    if (!matches(b, e)) continue;
    if (typing(e.target) && !b.inFields) continue;
    if (b.when && !b.when(e)) continue;
    if (b.run(e) !== false) {
      e.preventDefault();
      return;
    }
  }
});

// bind([{keys: ["ArrowRight"], help: "Next image", run}]) -> unbind
export function bind(list) {
  const added = list.map((b) => ({ ...b, keys: Array.isArray(b.keys) ? b.keys : [b.keys] }));
  bindings.push(...added);
  return () => {
    bindings = bindings.filter((b) => !added.includes(b));
  };
}

// The "Keyboard shortcuts" dialog lists what the current view has bound.
export function helpDialog() {
  const rows = bindings.filter((b) => b.help).map((b) =>
    h("tr", h("td", h("kbd", b.label || b.keys.join(" / "))), h("td", b.help)));
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "kbd-title" },
    h("h2", { id: "kbd-title" }, "Keyboard shortcuts"),
    rows.length ? h("table", { class: "table" }, h("tbody", rows)) : h("p", "This page has no shortcuts."),
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn primary", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
