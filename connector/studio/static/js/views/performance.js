// Performance of a version: score, AP, AP50, AP75, precision, recall, a per-label table and the
// advice; and two versions side by side.
import * as api from "../api.js";
import { h, fmt, field } from "../dom.js";
import { setQuery } from "../router.js";
import { pageHeader, card, empty, badge } from "../shell.js";
import { stat } from "./datacheck.js";

const METRICS = [["ap", "AP"], ["ap50", "AP50"], ["ap75", "AP75"], ["precision", "Precision"], ["recall", "Recall"]];

function versionOption(v) {
  const tags = [v.published && "published", v.lastTrained && "last trained", v.archived && "archived"].filter(Boolean);
  return `Version ${v.number} · score ${fmt.score(v.performanceScore)}${tags.length ? ` (${tags.join(", ")})` : ""}`;
}

function delta(a, b, digits = 1, scale = 100) {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  const d = (a - b) * scale;
  if (Math.abs(d) < 0.05) return h("span", { class: "delta" }, " ±0");
  return h("span", { class: `delta ${d > 0 ? "up" : "down"}` }, ` ${d > 0 ? "+" : ""}${d.toFixed(digits)}`);
}

export async function performanceView(el, params, query, ctx) {
  const m = ctx.model;
  const base = api.paths.model(m.id);
  const versions = await api.get(`${base}/versions`, { includeArchived: true });
  if (!ctx.current()) return;
  const page = h("div", { class: "page" });
  el.append(page);
  if (!versions.length) {
    page.append(pageHeader("Performance"), card(null, empty("No trained version yet.", h("a", { class: "btn primary", href: `#/models/${m.id}/train` }, "Train one"))));
    return;
  }
  const newest = versions[versions.length - 1];
  const numbers = versions.map((v) => String(v.number));
  const aNum = numbers.includes(query.a) ? query.a : String((versions.find((v) => v.lastTrained) || newest).number);
  const bNum = numbers.includes(query.b) ? query.b : "";
  const selA = h("select", { id: "version-a" }, versions.slice().reverse().map((v) => h("option", { value: String(v.number), selected: String(v.number) === aNum }, versionOption(v))));
  const selB = h("select", { id: "version-b" }, h("option", { value: "" }, "None"),
    versions.slice().reverse().map((v) => h("option", { value: String(v.number), selected: String(v.number) === bNum }, versionOption(v))));
  const body = h("div", { id: "performance" });
  page.append(pageHeader("Performance", { subtitle: "Measured on images the version did not train on." }),
    h("div", { class: "filters" }, field("Version", selA), field("Compare with", selB)), body);

  async function show() {
    setQuery({ a: selA.value, b: selB.value || undefined });
    const [a, b] = await Promise.all([
      api.get(`${base}/versions/${selA.value}`),
      selB.value ? api.get(`${base}/versions/${selB.value}`) : null,
    ]);
    if (!ctx.current()) return;
    body.replaceChildren(b ? compare(a, b) : single(a));
  }
  selA.addEventListener("change", show);
  selB.addEventListener("change", show);
  await show();
}

function single(v) {
  const mt = v.metrics || {};
  return h("div",
    h("div", { class: "cards" },
      h("div", { class: "stat big" }, h("span", { class: "stat-label" }, "Performance score (mAP@50)"),
        h("span", { class: "stat-value", id: "score" }, fmt.score(v.performanceScore)),
        mt.scoreInterval ? h("span", { class: "stat-note", id: "score-interval" },
          `likely between ${fmt.score(mt.scoreInterval.low)} and ${fmt.score(mt.scoreInterval.high)}`) : null),
      METRICS.map(([k, label]) => stat(label, fmt.pct(mt[k], 1)))),
    h("p", { class: "hint", id: "metrics-note" }, "AP ranks every box the version finds. Precision and recall count only the boxes at or above each label's threshold (the Threshold column: where detect counts from when a flow gives none), each matched to a true box at IoU 0.5 or more."),
    h("div", { class: "columns" },
      card("Per label", thresholdControl(mt.perLabel || {})),
      card("About this version", h("dl", { class: "kv" },
        h("dt", "Version"), h("dd", String(v.number), " ", v.published ? badge("published", "success") : null, " ", v.lastTrained ? badge("last trained", "brand") : null),
        h("dt", "Trained"), h("dd", fmt.date(v.created)),
        h("dt", "Preset"), h("dd", v.settings?.preset || "–"),
        h("dt", "Images"), h("dd", fmt.num(v.imageCount)),
        h("dt", "Evaluated on"), h("dd", `${fmt.num(mt.evalImages)} images`),
        h("dt", "Iterations"), h("dd", fmt.num(v.iterations)),
        h("dt", "Training time"), h("dd", fmt.duration(v.durationSeconds)),
        h("dt", "Started from"), h("dd", v.startedFrom || "–")),
      h("h3", "Advice"), adviceList(mt.advice))));
}

function adviceList(advice) {
  return advice && advice.length
    ? h("ul", { class: "advice", id: "advice" }, advice.map((a) => h("li", a)))
    : h("p", { class: "muted", id: "advice" }, "No advice: the evaluation looks sound.");
}

// The per-label table at each label's own threshold, or (the slider, as Custom Vision's
// Performance page has) every label counted from one probability, read off its curve: what a
// flow that gives detect that threshold would get.
function thresholdControl(perLabel) {
  const table = h("div", perLabelTable(perLabel, null));
  const curves = Object.values(perLabel).some((x) => x.curve && x.curve.length);
  if (!curves) return table;
  const slider = h("input", { type: "range", id: "perf-threshold", min: 0.05, max: 0.95, step: 0.05, value: "0.5" });
  const out = h("output", { for: "perf-threshold", id: "perf-threshold-value" }, "0.50");
  const own = h("input", { type: "checkbox", id: "perf-own", checked: true });
  const overall = h("p", { class: "hint", id: "perf-overall" });
  function show() {
    const at = own.checked ? null : Number(slider.value);
    out.textContent = Number(slider.value).toFixed(2);
    table.replaceChildren(perLabelTable(perLabel, at));
    overall.textContent = at === null ? "" : overallAt(perLabel, at);
  }
  slider.addEventListener("input", () => { own.checked = false; show(); });
  own.addEventListener("change", show);
  return h("div",
    h("div", { class: "check" }, own, h("label", { for: "perf-own" }, "Each label's own threshold (what detect uses when a flow gives none)")),
    h("div", { class: "field" }, h("label", { for: "perf-threshold" }, "Probability threshold, every label"),
      h("div", { class: "inline" }, slider, out)),
    overall, table);
}

// A label's figures from probability `at` (its curve's nearest point), or at its own threshold.
function pointAt(x, at) {
  if (at === null || !x.curve || !x.curve.length) return x;
  return x.curve.reduce((best, p) => (Math.abs(p.threshold - at) < Math.abs(best.threshold - at) ? p : best));
}

// Precision and recall over every label from one probability: true positives are recall x boxes,
// predictions true positives / precision (none kept where precision is undefined).
function overallAt(perLabel, at) {
  let tp = 0, predicted = 0, boxes = 0;
  for (const x of Object.values(perLabel)) {
    const p = pointAt(x, at);
    const found = (p.recall || 0) * x.boxes;
    tp += found;
    boxes += x.boxes;
    predicted += p.precision ? found / p.precision : 0;
  }
  return `From probability ${at.toFixed(2)}: precision ${fmt.pct(predicted ? tp / predicted : null, 1)}, recall ${fmt.pct(boxes ? tp / boxes : null, 1)}. Give a flow this threshold to count this way.`;
}

function perLabelTable(perLabel, at) {
  const rows = Object.entries(perLabel).map(([name, x]) => [name, { ...x, ...pointAt(x, at), thresholdFrom: at === null ? x.thresholdFrom : null }]);
  if (!rows.length) return h("p", { class: "muted" }, "No per-label figures.");
  // .stack, cell classes and data-label: a card per label on a phone (studio.css)
  return h("div", { class: "table-wrap" }, h("table", { class: "table stack", id: "per-label-metrics" },
    h("thead", h("tr", h("th", "Label"), h("th", { class: "num" }, "AP50"),
      h("th", { class: "num", title: "Detect counts this label from this probability when no threshold is given" }, "Threshold"),
      h("th", { class: "num" }, "Precision"), h("th", { class: "num" }, "Recall"),
      h("th", { class: "num", title: "Mean absolute count error per image, and that error over the mean true count" }, "Count error"),
      h("th", { class: "num" }, "Images / boxes"))),
    h("tbody", rows.map(([name, x]) => h("tr", h("td", { class: "cell-actions" }, h("strong", name)),
      h("td", { class: "num cell-half", dataset: { label: "AP50" } }, fmt.pct(x.ap50, 1)),
      h("td", { class: "num threshold cell-half", dataset: { label: "Threshold" } }, x.threshold == null ? "–" : x.threshold.toFixed(2),
        x.thresholdFrom === "default" ? h("span", { class: "muted", title: "Too few validation images: the default" }, " (default)") : null),
      h("td", { class: "num cell-half", dataset: { label: "Precision" } }, fmt.pct(x.precision, 1)),
      h("td", { class: "num cell-half", dataset: { label: "Recall" } }, fmt.pct(x.recall, 1)),
      h("td", { class: "num count-error cell-half", dataset: { label: "Count error" } }, x.countError == null ? "–"
        : `${x.countError.toFixed(2)}${x.relativeCountError == null ? "" : ` (${fmt.pct(x.relativeCountError, 0)})`}`),
      h("td", { class: "num cell-half", dataset: { label: "Images / boxes" } }, `${fmt.num(x.images)} / ${fmt.num(x.boxes)}`))))));
}

function compare(a, b) {
  const ma = a.metrics || {};
  const mb = b.metrics || {};
  const head = h("thead", h("tr", h("th", ""), h("th", { class: "num a" }, `Version ${a.number}`), h("th", { class: "num" }, `Version ${b.number}`)));
  const row = (label, va, vb, f, d) => h("tr", h("th", label), h("td", { class: "num a" }, f(va), d || ""), h("td", { class: "num" }, f(vb)));
  const labels = [...new Set([...Object.keys(ma.perLabel || {}), ...Object.keys(mb.perLabel || {})])];
  return h("div", { class: "columns", id: "compare" },
    card("Side by side", h("table", { class: "table compare" }, head, h("tbody",
      row("Score (mAP@50)", a.performanceScore, b.performanceScore, fmt.score, delta(a.performanceScore, b.performanceScore, 1, 1)),
      METRICS.map(([k, label]) => row(label, ma[k], mb[k], (x) => fmt.pct(x, 1), delta(ma[k], mb[k]))),
      row("Images", a.imageCount, b.imageCount, fmt.num),
      row("Preset", a.settings?.preset, b.settings?.preset, (x) => x || "–"),
      row("Iterations", a.iterations, b.iterations, fmt.num),
      row("Trained", a.created, b.created, fmt.date)))),
    card("Per label AP50", h("table", { class: "table compare" }, head, h("tbody", labels.map((name) => {
      const x = (ma.perLabel || {})[name] || {};
      const y = (mb.perLabel || {})[name] || {};
      return row(name, x.ap50, y.ap50, (v) => fmt.pct(v, 1), delta(x.ap50, y.ap50));
    })))),
    card(`Advice, version ${a.number}`, adviceList(ma.advice)),
    card(`Advice, version ${b.number}`, adviceList(mb.advice)));
}
