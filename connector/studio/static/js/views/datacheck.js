// The data check: images and boxes per label, each warning with its severity, and whether
// training can start.
import * as api from "../api.js";
import { h, fmt, labelColor, swatch } from "../dom.js";
import { pageHeader, card, badge } from "../shell.js";

export function stat(label, value, extra) {
  return h("div", { class: `stat ${extra || ""}` }, h("span", { class: "stat-label" }, label), h("span", { class: "stat-value" }, value));
}

export function warningList(warnings, modelId) {
  if (!warnings.length) return h("p", { class: "muted" }, "No warnings.");
  const order = { blocking: 0, advice: 1 };
  return h("ul", { class: "plain warnings", id: "warnings" }, [...warnings].sort((a, b) => order[a.severity] - order[b.severity]).map((w) =>
    h("li", { class: `message ${w.severity === "blocking" ? "error" : "warning"}`, dataset: { severity: w.severity, code: w.code } },
      h("strong", badge(w.severity === "blocking" ? "Blocking" : "Advice", w.severity === "blocking" ? "danger" : "warning"), " ", w.label ? w.label : ""),
      h("p", w.message),
      modelId && w.images && w.images.length ? h("p", { class: "warning-images" }, "Open: ", w.images.map((img, i) => [i ? ", " : "",
        h("a", { href: `#/models/${modelId}/images/${img.id}?dataset=${img.datasetId}` }, `image ${img.id}`)])) : null)));
}

// `onTrain`: the banner sits on the Train page itself, which needs no link to it.
export function canTrainBanner(check, modelId, onTrain = false) {
  return check.canTrain
    ? h("div", { class: "message success", id: "can-train", role: "status" }, h("strong", "Ready to train"),
      h("p", "Nothing blocks training.", onTrain ? null : [" ", h("a", { href: `#/models/${modelId}/train` }, "Go to Train")]))
    : h("div", { class: "message error", id: "can-train", role: "status" }, h("strong", "Training cannot start yet"),
      h("p", "Fix the blocking warnings below first."));
}

export async function dataCheckView(el, params, query, ctx) {
  const m = ctx.model;
  const check = await api.get(`${api.paths.model(m.id)}/data-check`);
  if (!ctx.current()) return;
  const order = new Map(m.labels.map((l, i) => [l.name, i]));
  el.append(h("div", { class: "page" },
    pageHeader("Data check", { subtitle: `Training data: ${check.datasets.map((d) => d.name).join(", ")}`,
      commands: [h("a", { class: "btn", href: `#/models/${m.id}/images` }, "Images"), h("a", { class: "btn primary", href: `#/models/${m.id}/train` }, "Train")] }),
    canTrainBanner(check, m.id),
    h("div", { class: "cards" },
      stat("Images", fmt.num(check.images)), stat("With boxes", fmt.num(check.imagesWithBoxes)),
      stat("Without boxes", fmt.num(check.imagesWithoutBoxes)), stat("Boxes", fmt.num(check.boxes)),
      stat("Suggestions to review", fmt.num(check.unapprovedBoxes))),
    h("div", { class: "columns" },
      card("Per label", h("table", { class: "table", id: "per-label" },
        h("thead", h("tr", h("th", "Label"), h("th", { class: "num" }, "Images"), h("th", { class: "num" }, "Boxes"))),
        h("tbody", check.labels.map((l) => h("tr",
          h("td", swatch(labelColor(order.get(l.name) ?? 0)), " ", l.name),
          h("td", { class: "num" }, fmt.num(l.images)), h("td", { class: "num" }, fmt.num(l.boxes))))))),
      card("Warnings", warningList(check.warnings, m.id)))));
}
