// The capture setting of a model: which photos sent to detect are kept for review (off by
// default), the uncertain band, the sample rate and the caps. Used by the Predictions page.
import * as api from "./api.js";
import { h, field, fmt } from "./dom.js";
import { badge } from "./shell.js";
import { toast, toastError } from "./toast.js";

export const MODES = [
  ["off", "Off", "Keep nothing. Detect answers and forgets the photo."],
  ["uncertain", "Uncertain", "Keep photos with no detection, or with a box whose probability falls in the band."],
  ["sample", "Sample", "Keep a random share of the photos."],
  ["all", "All", "Keep every photo."],
];

export function modeBadge(mode) {
  return mode === "off" ? badge("capture off") : badge(`capture on: ${mode}`, "success");
}

function number(id, value, attrs) {
  return h("input", { type: "number", id, value: String(value), required: true, step: "any", ...attrs });
}

// The form; `onSaved(settings)` runs after each save with the server's answer.
export function captureForm(modelId, settings, { onSaved } = {}) {
  const path = `${api.paths.model(modelId)}/capture`;
  const modes = h("div", { class: "options compact" }, MODES.map(([value, title, text]) => {
    const id = `capture-${value}`;
    return h("label", { class: "option", for: id },
      h("input", { type: "radio", name: "capture-mode", id, value, checked: settings.mode === value }),
      h("div", h("strong", title), h("span", text)));
  }));
  const bandLow = number("band-low", settings.bandLow, { min: 0, max: 1 });
  const bandHigh = number("band-high", settings.bandHigh, { min: 0, max: 1 });
  // the API takes a share (0..1]; people think of a sample rate in percent
  const rate = number("sample-rate", +(settings.sampleRate * 100).toFixed(4), { min: 0.01, max: 100 });
  const maxImages = number("max-images", settings.maxImages, { min: 1, step: 1 });
  const retention = number("retention-days", settings.retentionDays, { min: 1, step: 1 });
  const save = h("button", { type: "submit", class: "btn primary", id: "save-capture" }, "Save");
  const bandFields = h("div", { class: "inline" }, field("Band from", bandLow), field("to", bandHigh));
  const rateField = field("Sample rate (%)", rate);
  const form = h("form", { id: "capture-form", "aria-label": "Capture setting" },
    h("fieldset", h("legend", "Keep"), modes),
    h("div", { class: "inline" }, bandFields, rateField),
    h("p", { class: "hint", id: "band-hint" },
      "Band: probabilities between these count as uncertain; boxes from the lower end up are kept as suggestions."),
    h("div", { class: "inline" },
      field("Keep at most (images)", maxImages), field("Delete after (days)", retention)),
    h("p", { class: "hint" }, "Over the maximum, the oldest photos nobody has reviewed go first."),
    h("div", { class: "inline" }, save));

  const mode = () => form.querySelector("input[name='capture-mode']:checked")?.value || "off";
  const showFields = () => {
    const m = mode();
    bandFields.classList.toggle("dim", m !== "uncertain");
    rateField.classList.toggle("dim", m !== "sample");
  };
  form.addEventListener("change", showFields);
  showFields();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const saved = await api.put(path, {
        mode: mode(), bandLow: Number(bandLow.value), bandHigh: Number(bandHigh.value),
        sampleRate: Number(rate.value) / 100, maxImages: Number(maxImages.value), retentionDays: Number(retention.value),
      });
      toast(saved.mode === "off" ? "Capture is off." : `Capture is on: ${saved.mode}.`, "success");
      if (onSaved) onSaved(saved);
    } catch (err) {
      toastError(err, "Not saved");
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

// What happened to the photos chosen for capture, in one line.
export function captureSummary(settings) {
  const o = settings.outcomes || {};
  const parts = [`${fmt.num(settings.images)} kept now`];
  if (o.kept || o.duplicate || o.evicted || o.dropped || o.failed) {
    parts.push(`since the server started: ${fmt.num(o.kept)} kept, ${fmt.num(o.duplicate)} already known, ` +
      `${fmt.num(o.evicted)} over the cap, ${fmt.num(o.dropped)} dropped, ${fmt.num(o.failed)} failed`);
  }
  return parts.join(" · ");
}
