// What a model answered in production, per day and version (GetModelMonitoring): requests, the
// share with no detection, the mean top probability, the drift test against the version's
// evaluation images, and the reasons the model needed attention.
import * as api from "./api.js";
import { h, fmt } from "./dom.js";
import { badge, empty } from "./shell.js";
import { stat } from "./views/datacheck.js";

function totals(figures) {
  let requests = 0, none = 0, top = 0;
  for (const f of figures) {
    requests += f.requests;
    none += f.noDetection;
    top += (f.meanTopProbability || 0) * f.requests;
  }
  return { requests, noRate: requests ? none / requests : null, meanTop: requests ? top / requests : null };
}

function driftCell(d) {
  if (!d) return "–";
  if (d.needsAttention) return badge(`drift: D ${d.statistic.toFixed(2)}, p ${d.pValue}`, "danger");
  if (d.statistic !== null && d.statistic !== undefined) return h("span", { class: "muted" }, `no drift (p ${d.pValue})`);
  return h("span", { class: "muted" }, d.note || "not tested");
}

// The panel's content for `days` days; resolves to an element.
export async function monitoringPanel(modelId, days = 7) {
  const r = await api.get(`${api.paths.model(modelId)}/monitoring`, { days });
  const t = totals(r.figures);
  const baseline = r.baselines.find((b) => b.version === r.publishedVersion) || r.baselines[0];
  const parts = [];
  if (r.attention.length) {
    parts.push(h("div", { class: "message warning", id: "attention", role: "status" },
      h("strong", "Needs attention"),
      h("ul", { class: "plain" }, r.attention.map((a) => h("li", h("span", { class: "muted" }, `${a.day}, version ${a.version}: `), a.reason)))));
  }
  parts.push(h("div", { class: "cards small", id: "monitoring-totals" },
    stat("Requests", fmt.num(t.requests)),
    stat("No detection", fmt.pct(t.noRate, 0)),
    stat("Mean top probability", t.meanTop === null ? "–" : t.meanTop.toFixed(2))));
  if (baseline) {
    parts.push(h("p", { class: "hint", id: "baseline" },
      `On its ${fmt.num(baseline.images)} evaluation images, version ${baseline.version} found nothing in `,
      `${fmt.pct(baseline.noDetectionRate, 0)} and had a mean top probability of `,
      `${baseline.meanTopProbability === null ? "–" : baseline.meanTopProbability.toFixed(2)}.`));
  }
  if (!r.figures.length) {
    parts.push(empty(r.publishedVersion
      ? "No detect calls in these days."
      : "Nothing is published: detect answers nothing, so there is nothing to count."));
  } else {
    parts.push(h("div", { class: "table-wrap" }, h("table", { class: "table", id: "monitoring-days" },
      h("thead", h("tr", h("th", "Day (UTC)"), h("th", { class: "num" }, "Version"), h("th", { class: "num" }, "Requests"),
        h("th", { class: "num" }, "No detection"), h("th", { class: "num" }, "Mean top prob."), h("th", "Drift test"))),
      h("tbody", r.figures.map((f) => h("tr", { class: f.drift?.needsAttention ? "attention" : null },
        h("td", f.day), h("td", { class: "num" }, String(f.version)), h("td", { class: "num" }, fmt.num(f.requests)),
        h("td", { class: "num" }, `${fmt.num(f.noDetection)} (${fmt.pct(f.noDetectionRate, 0)})`),
        h("td", { class: "num" }, f.meanTopProbability === null ? "–" : f.meanTopProbability.toFixed(2)),
        h("td", driftCell(f.drift))))))));
  }
  parts.push(h("p", { class: "hint" },
    `Drift: ${r.driftTest.statistic} against the version's evaluation images, flagged at p < ${r.driftTest.alpha} ` +
    `once a day has ${r.driftTest.minImages} images.`));
  return h("div", { id: "monitoring" }, parts);
}
