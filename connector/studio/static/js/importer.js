// Import a labeled dataset: a COCO zip uploaded from this computer, or a COCO folder on the
// server (under its configured import root). The report says what came in and what was skipped.
import * as api from "./api.js";
import { h, field, fmt } from "./dom.js";
import { dialog } from "./shell.js";

export async function importDialog(modelId, datasetId) {
  const zip = h("input", { type: "file", accept: ".zip,application/zip", required: false });
  const annotations = h("input", { type: "file", accept: ".json,application/json" });
  const folder = h("input", { type: "text", autocomplete: "off", placeholder: "fork-scissors" });
  const folderAnn = h("input", { type: "text", autocomplete: "off", value: "coco.json" });
  const addLabels = h("input", { type: "checkbox", id: "import-add-labels", checked: true });
  const from = h("select", h("option", { value: "zip" }, "A zip from this computer"),
    h("option", { value: "folder" }, "A folder on the server"));
  const zipPart = h("div", field("Images (zip)", zip, "A zip of the images; it may hold the COCO annotations JSON too."),
    field("Annotations (optional)", annotations, "The COCO JSON, when it is not inside the zip."));
  const folderPart = h("div", { hidden: true },
    field("Folder", folder, "Relative to the server's import root (setting storage.import_root)."),
    field("Annotations file", folderAnn));
  from.addEventListener("change", () => {
    zipPart.hidden = from.value !== "zip";
    folderPart.hidden = from.value !== "folder";
  });
  const body = h("div", { class: "form-narrow" },
    field("Import from", from), zipPart, folderPart,
    h("div", { class: "check" }, addLabels, h("label", { for: "import-add-labels" }, "Add COCO categories that are not labels yet")),
    h("p", { class: "hint" }, "Format: COCO object detection (images, annotations with bbox, categories). The import is one transaction: all or nothing."));
  return dialog("Import a COCO dataset", body, {
    submitText: "Import",
    submit: async () => {
      if (from.value === "folder") {
        return api.post(`${api.paths.dataset(modelId, datasetId)}/import/coco-folder`,
          { folder: folder.value.trim(), annotations: folderAnn.value.trim() || "coco.json", addLabels: addLabels.checked });
      }
      if (!zip.files.length) throw new Error("Choose the zip of images.");
      const form = new FormData();
      form.append("images", zip.files[0]);
      if (annotations.files.length) form.append("annotations", annotations.files[0]);
      form.append("addLabels", addLabels.checked ? "true" : "false");
      return api.upload(`${api.paths.dataset(modelId, datasetId)}/import/coco`, form);
    },
  });
}

export function importReport(report) {
  const perLabel = Object.entries(report.boxesPerLabel || {});
  return h("section", { class: "card", id: "import-report", "aria-label": "Import report" },
    h("h2", "Import report"),
    h("dl", { class: "kv" },
      h("dt", "Images added"), h("dd", fmt.num(report.images)),
      h("dt", "Already there"), h("dd", fmt.num(report.duplicates)),
      h("dt", "Boxes"), h("dd", fmt.num(report.boxes)),
      h("dt", "Labels added"), h("dd", (report.labelsAdded || []).join(", ") || "none")),
    perLabel.length ? h("table", { class: "table" }, h("caption", "Boxes per label"),
      h("tbody", perLabel.map(([k, v]) => h("tr", h("td", k), h("td", { class: "num" }, fmt.num(v)))))) : null,
    (report.skipped || []).length
      ? h("details", h("summary", `${report.skipped.length} skipped`),
        h("ul", report.skipped.map((s) => h("li", h("code", s.item), ": ", s.reason))))
      : h("p", { class: "muted" }, "Nothing was skipped."));
}
