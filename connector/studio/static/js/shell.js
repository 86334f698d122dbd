// The frame around every view: top bar state, the left navigation of the open model, the page
// header with its command bar, and small shared pieces (cards, empty states, confirm dialogs).
import { h, clear } from "./dom.js";

export const MODEL_PAGES = [
  ["images", "Images"],
  ["data-check", "Data check"],
  ["train", "Train"],
  ["performance", "Performance"],
  ["versions", "Versions"],
  ["quick-test", "Quick test"],
  ["predictions", "Predictions"],
  ["schedule", "Schedule"],
  ["settings", "Settings"],
];

export function setTop(active, signedIn) {
  for (const a of document.querySelectorAll(".topnav a")) {
    if (a.dataset.top === active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.querySelector(".topnav").hidden = !signedIn;
  document.getElementById("signout-button").hidden = !signedIn;
  document.getElementById("shortcuts-button").hidden = !signedIn;
}

export function sideNav(model, page) {
  const nav = document.getElementById("sidenav");
  // on a narrow screen the list is a strip that scrolls sideways: the next page of the same model
  // starts where the strip was, not back at its left end
  const before = nav.querySelector("ul");
  const scrolled = before && nav.dataset.model === String(model?.id) ? before.scrollLeft : 0;
  clear(nav);
  if (!model) {
    nav.hidden = true;
    delete nav.dataset.model;
    return;
  }
  nav.hidden = false;
  nav.dataset.model = model.id;
  const list = h("ul", MODEL_PAGES.map(([key, text]) =>
    h("li", h("a", { href: `#/models/${model.id}/${key}`, "aria-current": key === page ? "page" : false }, text))));
  nav.append(
    h("div", { class: "sidenav-model" },
      h("span", { class: "sidenav-caption" }, "Model"),
      h("strong", { title: model.name }, model.name)),
    list,
  );
  list.scrollLeft = scrolled;
  revealCurrent(list);
}

// Scroll the strip (only the strip: scrollIntoView would scroll the page up to it too) so that the
// current page's tab is in view, with a little of its neighbour showing: the strip visibly goes on.
function revealCurrent(list) {
  const current = list.querySelector('[aria-current="page"]');
  if (!current || list.scrollWidth <= list.clientWidth) return;
  const strip = list.getBoundingClientRect();
  const tab = current.getBoundingClientRect();
  const peek = Math.min(32, Math.max(0, (strip.width - tab.width) / 2));
  if (tab.left < strip.left + peek) list.scrollLeft -= strip.left + peek - tab.left;
  else if (tab.right > strip.right - peek) list.scrollLeft += tab.right - (strip.right - peek);
}

// The page header: the title (text, or an h1 the view keeps to update), optional subtitle, and the
// command bar.
export function pageHeader(title, { subtitle, commands = [] } = {}) {
  return h("header", { class: "page-header" },
    h("div", { class: "page-title" }, title instanceof HTMLHeadingElement ? title : h("h1", title),
      subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    commands.length ? h("div", { class: "commandbar", role: "toolbar", "aria-label": `${title} commands` }, commands) : null);
}

export function card(title, ...children) {
  return h("section", { class: "card", "aria-label": typeof title === "string" ? title : undefined },
    title ? h("h2", { class: "card-title" }, title) : null, ...children);
}

export function empty(text, action) {
  return h("div", { class: "empty" }, h("p", text), action || null);
}

export function badge(text, kind = "neutral") {
  return h("span", { class: `badge ${kind}` }, text);
}

export function spinner(label = "Loading") {
  return h("span", { class: "spinner", role: "progressbar", "aria-label": label });
}

// A modal dialog; resolves with the value `submit` returns, or null when dismissed.
export function dialog(title, body, { submitText = "OK", danger = false, submit } = {}) {
  return new Promise((resolve) => {
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const ok = h("button", { type: "submit", class: `btn ${danger ? "danger" : "primary"}` }, submitText);
    const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
    const form = h("form", { method: "dialog" }, h("h2", { class: "dialog-title" }, title), body, error,
      h("div", { class: "dialog-actions" }, ok, cancel));
    const dlg = h("dialog", { class: "dialog" }, form);
    let result = null;
    cancel.addEventListener("click", () => dlg.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      ok.disabled = true;
      try {
        result = submit ? await submit() : true;
        dlg.close();
      } catch (err) {
        error.textContent = err.message || String(err);
        error.hidden = false;
      } finally {
        ok.disabled = false;
      }
    });
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

export function confirmAction(title, text, submitText, danger = true) {
  return dialog(title, h("p", text), { submitText, danger });
}
