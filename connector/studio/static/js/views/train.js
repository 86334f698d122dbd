// Train a new version: preset and time budget, live progress (iteration, loss curve, time left)
// by polling the run, cancel, and the result with its score.
import * as api from "../api.js";
import { h, field, fmt } from "../dom.js";
import { pageHeader, card, badge, spinner, confirmAction } from "../shell.js";
import { follow } from "../poll.js";
import { lineChart } from "../chart.js";
import { toast, toastError } from "../toast.js";
import { canTrainBanner, warningList } from "./datacheck.js";

const ACTIVE = new Set(["queued", "training"]);
const LONG_BUDGET_MINUTES = 60;  // a longer run is asked about first: a typo (600 for 60) costs hours
const STATUS_KIND = { queued: "neutral", training: "brand", succeeded: "success", failed: "danger", canceled: "warning" };

export function statusBadge(status) {
  return badge(status, STATUS_KIND[status] || "neutral");
}

export async function trainView(el, params, query, ctx) {
  const m = ctx.model;
  const base = api.paths.model(m.id);
  // The presets come last: the server's first /presets loads its training library (seconds).
  const presetsLoaded = api.get("/presets");
  const [check, runs, datasets, draft] = await Promise.all([
    api.get(`${base}/data-check`), api.get(`${base}/runs`), api.get(`${base}/datasets`),
    api.get(`${base}/draft`).catch((err) => (err.status === 404 ? null : Promise.reject(err))),
  ]);
  if (!ctx.current()) return;
  const settings = (draft && draft.settings) || {};
  let following = null;

  // --- the form ---
  const presetOptions = h("div", { class: "options" }, h("p", { class: "muted", role: "status" }, spinner("Loading presets"), " Loading presets…"));
  const presetField = h("fieldset", { id: "presets" }, h("legend", "Preset"), presetOptions);
  presetsLoaded.then((presets) => {
    const chosen = settings.preset || (presets.find((p) => p.name === "fast") || presets[0] || {}).name;
    presetOptions.replaceChildren(...presets.map((p) => {
      const id = `preset-${p.name}`;
      return h("label", { class: "option", for: id },
        h("input", { type: "radio", name: "preset", id, value: p.name, checked: p.name === chosen }),
        h("div", h("strong", p.name), h("span", p.description)));
    }));
  }, (err) => {
    presetOptions.replaceChildren(h("p", { class: "form-error" }, `Presets: ${err.message}`));
  });
  const budget = h("input", { type: "number", id: "budget", min: 0.1, step: "any", value: String(settings.budgetMinutes || 10), required: true });
  const maxIter = h("input", { type: "number", id: "max-iterations", min: 1, step: 1, value: settings.maxIterations ? String(settings.maxIterations) : "" });
  const evalDs = h("select", { id: "evaluation-dataset" }, h("option", { value: "" }, "A held-out part of the training images"),
    datasets.filter((d) => d.kind === "evaluation").map((d) => h("option", { value: String(d.id), selected: settings.evaluationDatasetId === d.id }, d.name)));
  const startBtn = h("button", { type: "submit", class: "btn primary", id: "start-training", disabled: !check.canTrain }, "Train");
  const draftBtn = h("button", { type: "button", class: "btn", id: "save-draft" }, "Save as draft");
  const form = h("form", { class: "form-narrow", "aria-label": "Training settings" },
    presetField,
    field("Time budget (minutes)", budget, "Training stops when the budget is spent; a longer budget usually scores higher."),
    h("details", h("summary", "Advanced"),
      field("Maximum iterations", maxIter, "Stop earlier, after this many iterations (optional)."),
      field("Evaluate on", evalDs)),
    h("div", { class: "inline" }, startBtn, draftBtn));

  function body() {
    const out = { preset: form.querySelector("input[name=preset]:checked")?.value, budgetMinutes: Number(budget.value) };
    if (maxIter.value) out.maxIterations = Number(maxIter.value);
    if (evalDs.value) out.evaluationDatasetId = Number(evalDs.value);
    return out;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const minutes = Number(budget.value);
    if (minutes > LONG_BUDGET_MINUTES && !(await confirmAction(`Train for ${fmt.duration(minutes * 60)}?`,
      "The run uses the server's cores for all that time unless it is canceled.", "Train", false))) return;
    startBtn.disabled = true;
    try {
      const { body: run, location } = await api.start(`${base}/train`, body());
      toast(`Training run ${run.id} queued.`, "success");
      watch(run, api.apiPath(location));
    } catch (err) {
      if (err.status === 409 && err.body && err.body.detail) toastError(err, "Already training");
      else toastError(err, "Not started");
      startBtn.disabled = !check.canTrain;
    }
  });
  draftBtn.addEventListener("click", async () => {
    try {
      await api.put(`${base}/draft`, { settings: body() });
      toast("Draft saved: the next version will use these settings.", "success");
    } catch (err) {
      toastError(err, "Draft not saved");
    }
  });

  // --- a run in progress ---
  const runArea = h("div", { id: "run-area" });
  const history = h("div");

  function watch(run, path) {
    following?.stop();
    const bar = h("span");
    const progress = h("div", { class: "progress", role: "progressbar", id: "run-progress", "aria-label": "Training progress", "aria-valuemin": 0, "aria-valuemax": 100 }, bar);
    const status = h("span", { id: "run-status" });
    const detail = h("dl", { class: "kv", id: "run-detail" });
    const chartBox = h("div", { id: "loss-chart" });
    const cancel = h("button", { type: "button", class: "btn", id: "cancel-run" }, "Cancel");
    const result = h("div", { id: "run-result" });
    const losses = [];
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await api.post(`${base}/runs/${run.id}/cancel`);
        toast("Cancel requested.", "info");
      } catch (err) {
        toastError(err, "Not canceled");
        cancel.disabled = false;
      }
    });
    runArea.replaceChildren(card(h("span", `Run ${run.id} `, status),
      progress, h("p"), detail, h("h3", "Loss"), chartBox, h("div", { class: "inline" }, cancel), result));

    const update = (r) => {
      const p = r.progress || {};
      status.replaceChildren(statusBadge(r.status));
      const budgetS = (r.settings?.budgetMinutes || 0) * 60;
      let f = p.maxIterations && p.iteration !== null && p.iteration !== undefined ? p.iteration / p.maxIterations : 0;
      if (p.etaSeconds !== null && p.etaSeconds !== undefined && p.elapsedSeconds) f = Math.max(f, p.elapsedSeconds / (p.elapsedSeconds + p.etaSeconds));
      else if (budgetS && p.elapsedSeconds) f = Math.max(f, p.elapsedSeconds / budgetS);
      if (r.status === "succeeded") f = 1;
      bar.style.width = `${Math.round(Math.min(1, f) * 100)}%`;
      progress.setAttribute("aria-valuenow", String(Math.round(Math.min(1, f) * 100)));
      progress.classList.toggle("done", r.status === "succeeded");
      progress.classList.toggle("error", r.status === "failed" || r.status === "canceled");
      detail.replaceChildren(
        h("dt", "Iteration"), h("dd", { id: "run-iteration" }, p.iteration === null || p.iteration === undefined ? "–"
          : `${fmt.num(p.iteration)}${p.maxIterations ? ` of ${fmt.num(p.maxIterations)}` : ""}`),
        h("dt", "Elapsed"), h("dd", fmt.duration(p.elapsedSeconds)),
        h("dt", "Time left"), h("dd", { id: "run-eta" }, ACTIVE.has(r.status) ? fmt.duration(p.etaSeconds) : "–"),
        h("dt", "Loss"), h("dd", { id: "run-loss" }, p.loss === null || p.loss === undefined ? "–" : Number(p.loss).toFixed(3)));
      let points = p.lossHistory;
      if (!points) {
        if (p.loss !== null && p.loss !== undefined && p.iteration && (!losses.length || losses[losses.length - 1][0] !== p.iteration)) losses.push([p.iteration, p.loss]);
        points = losses;
      }
      chartBox.replaceChildren(lineChart(points));
    };
    update(run);
    following = follow(path, { onUpdate: (r) => update(r) });
    following.done.then(async (r) => {
      cancel.remove();
      if (r.status === "succeeded") {
        const version = await api.get(`${base}/versions/${r.version}`);
        result.replaceChildren(h("div", { class: "message success", role: "status" },
          h("strong", `Version ${version.number} is trained`),
          h("div", { class: "cards" },
            h("div", { class: "stat big" }, h("span", { class: "stat-label" }, "Performance score (mAP@50)"),
              h("span", { class: "stat-value", id: "result-score" }, fmt.score(version.performanceScore)))),
          h("p", h("a", { href: `#/models/${m.id}/performance?a=${version.number}` }, "See its performance"), " · ",
            h("a", { href: `#/models/${m.id}/versions` }, "Publish it"), " · ",
            h("a", { href: `#/models/${m.id}/quick-test` }, "Quick test it"))));
        toast(`Version ${version.number} trained: score ${fmt.score(version.performanceScore)}.`, "success");
      } else {
        result.replaceChildren(h("div", { class: `message ${r.status === "canceled" ? "warning" : "error"}`, role: "status" },
          h("strong", `Run ${r.status}`), h("p", r.reason || "")));
      }
      startBtn.disabled = !check.canTrain;
      renderHistory();
    }, (err) => toastError(err, "Training"));
  }

  async function renderHistory() {
    const list = await api.get(`${base}/runs`);
    // Each run names its version's number and score; a server that gives only versionId is
    // answered from the versions list.
    if (list.some((r) => r.versionId && (r.version === undefined || r.performanceScore === undefined))) {
      const byId = new Map((await api.get(`${base}/versions`)).map((v) => [v.id, v]));
      for (const r of list) {
        const v = byId.get(r.versionId);
        if (!v) continue;
        r.version ??= v.number;
        r.performanceScore ??= v.performanceScore;
      }
    }
    if (!ctx.current()) return;
    // .stack, cell classes and data-label: a card per run on a phone (studio.css)
    history.replaceChildren(list.length ? card("Runs", h("div", { class: "table-wrap" }, h("table", { class: "table stack", id: "runs" },
      h("thead", h("tr", h("th", "Run"), h("th", "Status"), h("th", "Started by"), h("th", "Preset"), h("th", "Created"),
        h("th", { class: "num" }, "Iterations"), h("th", "Version"), h("th", { class: "num" }, "Score"))),
      h("tbody", [...list].reverse().map((r) => h("tr",
        h("td", { class: "cell-title" }, `Run ${r.id}`), h("td", { class: "cell-actions" }, statusBadge(r.status), r.reason ? h("div", { class: "muted" }, r.reason) : null),
        h("td", { class: "cell-half", dataset: { label: "Started by" } }, r.trigger),
        h("td", { class: "cell-half", dataset: { label: "Preset" } }, r.settings?.preset || "–"),
        h("td", { class: "cell-half", dataset: { label: "Created" } }, fmt.date(r.created)),
        h("td", { class: "num cell-half", dataset: { label: "Iterations" } }, fmt.num(r.progress?.iteration)),
        h("td", { class: "cell-half", dataset: { label: "Version" } }, r.version ? h("a", { href: `#/models/${m.id}/performance?a=${r.version}` }, `v${r.version}`) : "–"),
        h("td", { class: "num cell-half", dataset: { label: "Score" } }, fmt.score(r.performanceScore)))))))) : "");
  }

  el.append(h("div", { class: "page" },
    pageHeader("Train", { subtitle: "Train a new version on the approved boxes of the training datasets." }),
    canTrainBanner(check, m.id, true),
    check.warnings.some((w) => w.severity === "blocking") ? card("Blocking", warningList(check.warnings.filter((w) => w.severity === "blocking"))) : null,
    h("div", { class: "columns" }, card("New version", form), runArea),
    history));

  const active = [...runs].reverse().find((r) => ACTIVE.has(r.status));
  if (active) {
    startBtn.disabled = true;
    watch(active, `${base}/runs/${active.id}`);
  }
  renderHistory();
  return () => following?.stop();
}
