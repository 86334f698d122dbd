// ML-assisted labeling for a whole dataset: ask a trained version for boxes (a job the server
// runs; we follow its progress), then accept every suggestion above a probability at once.
import * as api from "./api.js";
import { h, field, fmt } from "./dom.js";
import { dialog } from "./shell.js";
import { follow } from "./poll.js";
import { toast, toastError } from "./toast.js";

export async function suggestDialog(model, datasetId, versions) {
  const which = h("select", { id: "suggest-images" },
    h("option", { value: "unlabeled" }, "Unlabeled images"), h("option", { value: "all" }, "All images"));
  const threshold = h("input", { type: "number", id: "suggest-threshold", min: 0, max: 1, step: "any", value: "0.3",
    placeholder: "each label's own" });
  const version = h("select", { id: "suggest-version" },
    versions.filter((v) => !v.archived).reverse().map((v) =>
      h("option", { value: String(v.number) }, `Version ${v.number}${v.lastTrained ? " (last trained)" : ""}${v.published ? " (published)" : ""}`)));
  const body = h("div", { class: "form-narrow" },
    field("Images", which, "Suggestions replace earlier suggestions on those images; boxes you drew or accepted stay. On labeled images only the objects their boxes miss are suggested."),
    field("Version", version),
    field("Lowest probability", threshold,
      "Suggest only boxes the version is at least this sure of (0..1). Empty: each label's own threshold, chosen when the version was trained."));
  return dialog("Suggest boxes", body, {
    submitText: "Start",
    submit: () => {
      const request = { images: which.value, version: version.value };
      // an empty field is no threshold at all (the API then uses each label's), never 0
      if (threshold.value.trim() !== "") request.threshold = Number(threshold.value);
      return api.start(`${api.paths.dataset(model.id, datasetId)}/suggest`, request);
    },
  });
}

// A card that follows a suggestion job until it ends.
export function jobCard(location, { onDone } = {}) {
  const bar = h("span");
  const text = h("p", { role: "status" }, "Queued…");
  const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
  const progress = h("div", { class: "progress", role: "progressbar", "aria-label": "Suggestion progress", "aria-valuemin": 0, "aria-valuemax": 100 }, bar);
  const card = h("section", { class: "card", id: "suggest-job", "aria-label": "Suggestions" },
    h("h2", "Suggesting boxes"), progress, text, cancel);
  const path = api.apiPath(location);
  const job = follow(path, {
    onUpdate(body) {
      const p = body.progress || {};
      const f = p.total ? p.done / p.total : 0;
      bar.style.width = `${Math.round(f * 100)}%`;
      progress.setAttribute("aria-valuenow", String(Math.round(f * 100)));
      text.textContent = body.status === "queued" ? "Queued…" : `${body.status}: ${fmt.num(p.done || 0)} of ${fmt.num(p.total || 0)} images`;
    },
  });
  cancel.addEventListener("click", async () => {
    try {
      await api.post(`${path.split("?")[0]}/cancel`);
    } catch (err) {
      toastError(err, "Not canceled");
    }
  });
  job.done.then((body) => {
    cancel.remove();
    const r = body.result || {};
    progress.classList.add(body.status === "succeeded" ? "done" : "error");
    bar.style.width = "100%";
    text.textContent = body.status === "succeeded"
      ? `Done: ${fmt.num(r.suggestions)} suggestions on ${fmt.num(r.images)} images.`
      : `${body.status}${body.reason ? ": " + body.reason : ""}`;
    card.querySelector("h2").textContent = "Suggestions";
    toast(text.textContent, body.status === "succeeded" ? "success" : "error");
    onDone && onDone(body);
  }, (err) => {
    text.textContent = err.message;
    toastError(err, "Suggestions");
  });
  return { card, stop: () => job.stop() };
}

// Accept every suggestion at or above a probability, across the dataset.
export function reviewCard(model, datasetId, pending, { onDone } = {}) {
  const slider = h("input", { type: "range", id: "review-threshold", min: 0, max: 1, step: 0.01, value: "0.8",
    "aria-label": "Lowest probability to accept" });
  // the slider for a quick pick, the number for an exact value; each follows the other
  const exact = h("input", { type: "number", id: "review-value", min: 0, max: 1, step: "any", value: "0.8",
    "aria-label": "Lowest probability to accept, exact" });
  const reject = h("input", { type: "checkbox", id: "review-reject" });
  const apply = h("button", { type: "button", class: "btn primary", id: "review-apply" }, "Accept");
  const result = h("p", { role: "status", id: "review-result" });
  let value = 0.8;
  const label = () => `Accept suggestions at or above ${value}`;
  slider.addEventListener("input", () => {
    value = Number(slider.value);
    exact.value = String(value);
    apply.textContent = label();
  });
  exact.addEventListener("input", () => {
    if (exact.value === "" || !exact.checkValidity()) return;
    value = Number(exact.value);
    slider.value = String(value);
    apply.textContent = label();
  });
  apply.textContent = label();
  apply.addEventListener("click", async () => {
    apply.disabled = true;
    try {
      const r = await api.post(`${api.paths.dataset(model.id, datasetId)}/suggestions/review`,
        { approveAbove: value, rejectRest: reject.checked });
      result.textContent = `${fmt.num(r.approved)} accepted, ${fmt.num(r.rejected)} rejected, on ${fmt.num(r.images)} images.`;
      toast(result.textContent, "success");
      onDone && onDone(r);
    } catch (err) {
      toastError(err, "Review");
    } finally {
      apply.disabled = false;
    }
  });
  return h("section", { class: "card", id: "review-card", "aria-label": "Review suggestions" },
    h("h2", "Accept suggestions in bulk"),
    h("p", { class: "muted" }, pending === null || pending === undefined ? "Suggestions waiting for review in this model."
      : `${fmt.num(pending)} suggested boxes wait for review in this model's training data.`),
    h("div", { class: "field" }, h("span", { class: "label" }, "Lowest probability to accept"),
      h("div", { class: "inline center" }, slider, exact)),
    h("div", { class: "check" }, reject, h("label", { for: "review-reject" }, "Reject the suggestions below it")),
    apply, result);
}
