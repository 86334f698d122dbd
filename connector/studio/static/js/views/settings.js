// A model's settings: rename, describe, add, rename and delete labels, datasets, archive.
import * as api from "../api.js";
import { h, field, fmt, labelColor, swatch } from "../dom.js";
import { go, render } from "../router.js";
import { pageHeader, card, badge, confirmAction, dialog } from "../shell.js";
import { toast, toastError } from "../toast.js";
import { splitLabels } from "./models.js";

export async function settingsView(el, params, query, ctx) {
  const m = ctx.model;
  const datasets = await api.get(`${api.paths.model(m.id)}/datasets`);
  if (!ctx.current()) return;

  // name and description
  const name = h("input", { type: "text", value: m.name, required: true, maxlength: 128 });
  const description = h("input", { type: "text", value: m.description || "", maxlength: 1024 });
  const general = h("form", { class: "form-narrow", "aria-label": "Name and description" },
    field("Name", name), field("Description", description),
    h("button", { type: "submit", class: "btn primary" }, "Save"));
  general.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.patch(api.paths.model(m.id), { name: name.value.trim(), description: description.value });
      toast("Model saved.", "success");
      render();
    } catch (err) {
      toastError(err, "Not saved");
    }
  });

  // labels: rename in place, delete (a typo, a label given up), add new ones
  const labelRows = m.labels.map((label, i) => {
    const input = h("input", { type: "text", value: label.name, maxlength: 128, "aria-label": `Name of label ${label.name}` });
    const save = h("button", { type: "submit", class: "btn small" }, "Rename");
    const remove = h("button", { type: "button", class: "btn small danger", disabled: m.labels.length < 2,
      "aria-label": `Delete label ${label.name}` }, "Delete");
    remove.addEventListener("click", async () => {
      const ok = await confirmAction(`Delete label ${label.name}?`,
        "Every box of it, approved or suggested, is deleted from all datasets. Versions already trained keep it.", "Delete");
      if (!ok) return;
      try {
        const gone = await api.del(`${api.paths.model(m.id)}/labels/${label.id}`);
        toast(`Deleted ${label.name} and its ${fmt.num(gone.boxesDeleted)} boxes.`, "success");
        render();
      } catch (err) {
        toastError(err, "Not deleted");
      }
    });
    const form = h("form", { class: "inline center" }, swatch(labelColor(i)), input, save, remove);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api.patch(`${api.paths.model(m.id)}/labels/${label.id}`, { name: input.value.trim() });
        toast(`Label renamed to ${input.value.trim()}.`, "success");
        render();
      } catch (err) {
        toastError(err, "Not renamed");
      }
    });
    return h("li", { class: "label-row" }, form);
  });
  const newLabels = h("input", { type: "text", placeholder: "knife, spoon", autocomplete: "off" });
  const addForm = h("form", { class: "inline" }, field("Add labels", newLabels, "Separate names with commas."),
    h("button", { type: "submit", class: "btn" }, "Add"));
  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const names = splitLabels(newLabels.value);
    if (!names.length) return;
    try {
      await api.post(`${api.paths.model(m.id)}/labels`, { names });
      toast(`Added ${names.join(", ")}.`, "success");
      render();
    } catch (err) {
      toastError(err, "Not added");
    }
  });

  // datasets
  const newDataset = h("button", { type: "button", class: "btn" }, "+ New dataset");
  newDataset.addEventListener("click", async () => {
    const dsName = h("input", { type: "text", required: true, maxlength: 128 });
    const kind = h("select", h("option", { value: "training" }, "Training"), h("option", { value: "evaluation" }, "Evaluation"));
    const made = await dialog("New dataset", h("div", field("Name", dsName), field("Kind", kind,
      "An evaluation dataset is never trained on; training can score versions on it.")), {
      submitText: "Create",
      submit: () => api.post(`${api.paths.model(m.id)}/datasets`, { name: dsName.value.trim(), kind: kind.value }),
    });
    if (made) render();
  });

  const archive = h("button", { type: "button", class: "btn danger", disabled: m.archived }, "Archive model");
  archive.addEventListener("click", async () => {
    const ok = await confirmAction(`Archive ${m.name}?`,
      "The model leaves the list and its name becomes free. Its images, versions and history stay on the server.", "Archive");
    if (!ok) return;
    try {
      await api.del(api.paths.model(m.id));
      toast(`${m.name} archived.`, "success");
      go("/models");
    } catch (err) {
      toastError(err, "Not archived");
    }
  });

  el.append(h("div", { class: "page" },
    pageHeader("Settings", { subtitle: m.archived ? "This model is archived." : `Created ${fmt.date(m.created)}` }),
    h("div", { class: "columns" },
      h("div",
        card("Name and description", general),
        card("Labels", h("ul", { class: "plain", id: "label-rows" }, labelRows), addForm)),
      h("div",
        card("Datasets", h("table", { class: "table" },
          h("thead", h("tr", h("th", "Name"), h("th", "Kind"), h("th", { class: "num" }, "Images"))),
          h("tbody", datasets.map((d) => h("tr",
            h("td", h("a", { href: `#/models/${m.id}/images?dataset=${d.id}` }, d.name)),
            h("td", badge(d.kind, d.kind === "evaluation" ? "brand" : "neutral")),
            h("td", { class: "num" }, fmt.num(d.imageCount)))))),
        h("p"), newDataset),
        card("Archive", h("p", { class: "muted" }, "Archiving hides the model; nothing is deleted."), archive)))));
}
