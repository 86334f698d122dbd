// All models: a table with labels, image counts, last score and published version; create one;
// restore an archived one.
import * as api from "../api.js";
import { h, fmt, field, labelColor, swatch } from "../dom.js";
import { go } from "../router.js";
import { pageHeader, card, empty, badge, dialog } from "../shell.js";
import { toast, toastError } from "../toast.js";

export function labelChips(labels) {
  return h("div", { class: "chips" }, labels.map((l, i) =>
    h("span", { class: "chip" }, swatch(labelColor(i)), l.name)));
}

export function splitLabels(text) {
  return [...new Set(text.split(/[,\n]/).map((s) => s.trim()).filter(Boolean))];
}

export async function createModelDialog() {
  const name = h("input", { type: "text", required: true, maxlength: 128, autocomplete: "off" });
  const labels = h("input", { type: "text", required: true, autocomplete: "off", placeholder: "fork, scissors" });
  const description = h("input", { type: "text", maxlength: 1024, autocomplete: "off" });
  const body = h("div", { class: "form-narrow" },
    field("Name", name, "Unique; flows can call the model by this name."),
    field("Labels", labels, "The objects the model will find, separated by commas."),
    field("Description (optional)", description));
  setTimeout(() => name.focus(), 0);
  return dialog("Create a model", body, {
    submitText: "Create",
    submit: async () => {
      const list = splitLabels(labels.value);
      if (!list.length) throw new Error("Give at least one label.");
      const json = { name: name.value.trim(), labels: list };
      if (description.value.trim()) json.description = description.value.trim();
      return api.post("/models", json);
    },
  });
}

export async function modelsView(el, params, query, ctx) {
  const includeArchived = query.archived === "1";
  const models = await api.get("/models", { includeArchived });
  if (!ctx.current()) return;
  const create = h("button", { type: "button", class: "btn primary", id: "create-model" }, "+ New model");
  create.addEventListener("click", async () => {
    const model = await createModelDialog();
    if (model) go(`/models/${model.id}/images`);
  });
  const toggle = h("a", { class: "btn subtle", href: includeArchived ? "#/models" : "#/models?archived=1" },
    includeArchived ? "Hide archived" : "Show archived");
  const rows = models.map((m) => {
    // an archived model's pages answer 404 until it is restored: its name is no link, its row has Restore
    const title = m.archived ? h("strong", { class: "row-title" }, m.name)
      : h("a", { class: "row-title", href: `#/models/${m.id}/images` }, m.name);
    const restore = m.archived ? h("button", { type: "button", class: "btn small", "aria-label": `Restore ${m.name}` }, "Restore") : null;
    restore?.addEventListener("click", async () => {
      restore.disabled = true;
      try {
        await api.post(`${api.paths.model(m.id)}/restore`);
        toast(`${m.name} restored.`, "success");
        go(`/models/${m.id}/images`);
      } catch (err) {
        toastError(err, "Not restored");
        restore.disabled = false;
      }
    });
    // data-label and the cell classes lay the row out as a card on a phone (studio.css, .table.stack)
    return h("tr", { dataset: { model: m.name } },
      h("td", { class: "cell-title" }, title, m.description ? h("div", { class: "muted" }, m.description) : null, restore),
      h("td", { class: "cell-state" }, labelChips(m.labels)),
      h("td", { class: "num cell-half", dataset: { label: "Images" } }, fmt.num(m.imageCount)),
      h("td", { class: "num cell-half", dataset: { label: "Last score" } }, m.lastScore === null || m.lastScore === undefined ? "–" : fmt.score(m.lastScore)),
      h("td", { class: "cell-half", dataset: { label: "Published" } }, m.publishedVersion ? badge(`v${m.publishedVersion}`, "success") : h("span", { class: "muted" }, "not published")),
      h("td", { class: "cell-half", dataset: { label: includeArchived ? "State" : "Updated" } }, m.archived ? badge("archived") : fmt.date(m.updated)));
  });
  el.append(h("div", { class: "page" },
    pageHeader("Models", { subtitle: "Each model finds the objects its labels name.", commands: [create, toggle] }),
    models.length
      ? card(null, h("div", { class: "table-wrap" }, h("table", { class: "table stack", id: "models-table" },
        h("thead", h("tr", h("th", "Name"), h("th", "Labels"), h("th", { class: "num" }, "Images"),
          h("th", { class: "num" }, "Last score"), h("th", "Published"), h("th", includeArchived ? "State" : "Updated"))),
        h("tbody", rows))))
      : card(null, empty("No models yet. Create one with the labels it should find.",
        h("button", { type: "button", class: "btn primary", onclick: () => create.click() }, "Create your first model")))));
}
