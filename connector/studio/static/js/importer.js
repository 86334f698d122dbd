// Import a labeled dataset in any format the API reads (COCO, Pascal VOC, YOLO, Label Studio,
// Custom Vision): a zip uploaded from this computer, or, for COCO, a folder on the server (under
// its configured import root). The report says what came in and what was skipped, and why.
import * as api from "./api.js";
import { h, field, fmt } from "./dom.js";
import { dialog } from "./shell.js";

// What each format's zip holds, and what may be sent beside it (the API's `annotations` field).
const FORMATS = {
  coco: { name: "COCO", zip: "The images; it may hold the COCO JSON too.", annotations: "The COCO JSON, when it is not in the zip.", accept: ".json" },
  voc: { name: "Pascal VOC", zip: "The images and their .xml files (e.g. JPEGImages/ and Annotations/).", annotations: "A zip of the .xml files, or one .xml, when they are not in the zip.", accept: ".zip,.xml" },
  yolo: { name: "YOLO", zip: "images/ and labels/ (one .txt per image), with data.yaml, obj.names or classes.txt.", annotations: "The class names file, when it is not in the zip.", accept: ".yaml,.yml,.names,.txt" },
  labelstudio: { name: "Label Studio", zip: "The images; it may hold the JSON (or JSON-MIN) export too.", annotations: "Label Studio's JSON export, when it is not in the zip.", accept: ".json" },
  customvision: { name: "Custom Vision", zip: "The images, named as the JSON names them (or <id>.<ext>).", annotations: "The tagged images JSON (GetTaggedImages), when it is not in the zip.", accept: ".json" },
};

export async function importDialog(modelId, datasetId) {
  const format = h("select", { id: "import-format" },
    Object.entries(FORMATS).map(([value, f]) => h("option", { value }, f.name)));
  const zip = h("input", { type: "file", accept: ".zip,application/zip", required: false });
  const annotations = h("input", { type: "file" });
  const folder = h("input", { type: "text", autocomplete: "off", placeholder: "fork-scissors" });
  const folderAnn = h("input", { type: "text", autocomplete: "off", value: "coco.json" });
  const addLabels = h("input", { type: "checkbox", id: "import-add-labels", checked: true });
  const fromZip = h("option", { value: "zip" }, "A zip from this computer");
  const fromFolder = h("option", { value: "folder" }, "A COCO folder on the server");
  const from = h("select", fromZip, fromFolder);
  const zipHint = h("span");
  const annotationsHint = h("span");
  const zipPart = h("div", field("Images (zip)", zip, zipHint), field("Annotations (optional)", annotations, annotationsHint));
  const folderPart = h("div", { hidden: true },
    field("Folder", folder, "Relative to the server's import root (setting storage.import_root; off unless set)."),
    field("Annotations file", folderAnn));
  const show = () => {
    const f = FORMATS[format.value];
    zipHint.textContent = f.zip;
    annotationsHint.textContent = f.annotations;
    annotations.accept = f.accept;
    fromFolder.disabled = format.value !== "coco";  // the server reads COCO folders only
    if (fromFolder.disabled) from.value = "zip";
    zipPart.hidden = from.value !== "zip";
    folderPart.hidden = from.value !== "folder";
  };
  format.addEventListener("change", show);
  from.addEventListener("change", show);
  show();
  const body = h("div", { class: "form-narrow" },
    field("Format", format), field("Import from", from), zipPart, folderPart,
    h("div", { class: "check" }, addLabels, h("label", { for: "import-add-labels" }, "Add the file's labels that the model lacks")),
    h("p", { class: "hint" }, "Images already in the dataset are not added twice. What cannot be used (a missing file, a box outside its picture) is skipped and listed with why; the rest is saved at once."));
  return dialog("Import a labeled dataset", body, {
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
      return api.upload(`${api.paths.dataset(modelId, datasetId)}/import/${format.value}`, form);
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
