// Versions: the draft of the next one, then every trained version with its state (last trained,
// published, archived); publish (an older one: roll back), unpublish, archive, download exports.
import * as api from "../api.js";
import { h, fmt, saveBlob } from "../dom.js";
import { render } from "../router.js";
import { pageHeader, card, empty, badge, confirmAction } from "../shell.js";
import { toast, toastError } from "../toast.js";

// What serves the version (decided at publish): the engine, int8 when it was quantized; why on hover.
function servedBy(engine) {
  const chip = badge(`served by ${engine.name}${engine.precision === "int8" ? " int8" : ""}`);
  chip.title = engine.reason;
  chip.dataset.engine = engine.name;
  return chip;
}

export async function versionsView(el, params, query, ctx) {
  const m = ctx.model;
  const base = api.paths.model(m.id);
  const [versions, draft] = await Promise.all([
    api.get(`${base}/versions`, { includeArchived: true }),
    api.get(`${base}/draft`).catch((err) => (err.status === 404 ? null : Promise.reject(err))),
  ]);
  if (!ctx.current()) return;
  const published = versions.find((v) => v.published);

  async function act(button, work, done) {
    button.disabled = true;
    const text = button.textContent;
    button.textContent = "Working…";
    try {
      await work();
      if (done) toast(done, "success");
      render();
    } catch (err) {
      toastError(err, text);
      button.disabled = false;
      button.textContent = text;
    }
  }

  async function download(v, format, button) {
    button.disabled = true;
    const text = button.textContent;
    button.textContent = format === "torchscript" ? "Tracing…" : "Preparing…";
    try {
      const blob = await api.blob(`${base}/versions/${v.number}/export`, { format });
      saveBlob(blob, `${m.name}-v${v.number}${format === "torchscript" ? "-torchscript" : ""}.zip`);
    } catch (err) {
      toastError(err, "Export");
    } finally {
      button.disabled = false;
      button.textContent = text;
    }
  }

  const rows = [...versions].reverse().map((v) => {
    const states = [
      v.published && badge("published", "success"),
      v.lastTrained && badge("last trained", "brand"),
      v.archived && badge("archived"),
      v.engine && servedBy(v.engine),
    ].filter(Boolean);
    const publish = h("button", { type: "button", class: `btn small ${v.published ? "" : "primary"}`, disabled: v.published || v.archived,
      dataset: { action: "publish", version: v.number } },
    published && v.number < published.number ? "Roll back to this" : "Publish");
    publish.addEventListener("click", () => act(publish, () => api.post(`${base}/versions/${v.number}/publish`), `Version ${v.number} published.`));
    const unpublish = h("button", { type: "button", class: "btn small", dataset: { action: "unpublish" } }, "Unpublish");
    unpublish.addEventListener("click", async () => {
      if (await confirmAction("Unpublish?", "Flows calling Detect get an error until another version is published.", "Unpublish")) {
        act(unpublish, () => api.post(`${base}/unpublish`), "Nothing is published now.");
      }
    });
    const archive = h("button", { type: "button", class: "btn small subtle", disabled: v.published || v.archived }, "Archive");
    archive.addEventListener("click", async () => {
      if (await confirmAction(`Archive version ${v.number}?`, "It leaves the lists; its files and record are kept.", "Archive")) {
        act(archive, () => api.del(`${base}/versions/${v.number}`), `Version ${v.number} archived.`);
      }
    });
    const d2 = h("button", { type: "button", class: "btn small subtle" }, "Detectron2 zip");
    d2.addEventListener("click", () => download(v, "detectron2", d2));
    const ts = h("button", { type: "button", class: "btn small subtle" }, "TorchScript zip");
    ts.addEventListener("click", () => download(v, "torchscript", ts));
    // data-label and the cell classes lay the row out as a card on a phone (studio.css, .table.stack)
    return h("tr", { dataset: { version: v.number } },
      h("td", { class: "cell-title" }, h("a", { class: "row-title", href: `#/models/${m.id}/performance?a=${v.number}` }, `Version ${v.number}`)),
      h("td", { class: "cell-state" }, h("div", { class: "chips" }, states)),
      h("td", { class: "num cell-half", dataset: { label: "Score" } }, fmt.score(v.performanceScore)),
      h("td", { class: "cell-half", dataset: { label: "Preset" } }, v.settings?.preset || "–"),
      h("td", { class: "num cell-half", dataset: { label: "Images" } }, fmt.num(v.imageCount)),
      h("td", { class: "cell-half", dataset: { label: "Trained" } }, fmt.date(v.created)),
      h("td", { class: "cell-actions" }, h("div", { class: "inline" }, v.published ? unpublish : publish, archive)),
      h("td", { class: "cell-actions", dataset: { label: "Download" } }, h("div", { class: "inline" }, d2, ts)));
  });

  const draftCard = draft
    ? card("Draft of the next version", h("dl", { class: "kv", id: "draft" },
      h("dt", "Preset"), h("dd", draft.settings?.preset || "–"),
      h("dt", "Time budget"), h("dd", draft.settings?.budgetMinutes ? `${draft.settings.budgetMinutes} min` : "–"),
      h("dt", "Based on"), h("dd", draft.baseVersion ? `version ${draft.baseVersion}` : "defaults"),
      h("dt", "Saved"), h("dd", fmt.date(draft.updated))),
    h("div", { class: "inline" }, h("a", { class: "btn primary", href: `#/models/${m.id}/train` }, "Train it"),
      h("button", { type: "button", class: "btn", onclick: (e) => act(e.currentTarget, () => api.del(`${base}/draft`), "Draft discarded.") }, "Discard draft")))
    : null;

  el.append(h("div", { class: "page" },
    pageHeader("Versions", { subtitle: published ? `Version ${published.number} answers Detect calls.` : "No version is published: Detect calls get an error." }),
    draftCard,
    versions.length
      ? card(null, h("div", { class: "table-wrap" }, h("table", { class: "table stack", id: "versions" },
        h("thead", h("tr", h("th", "Version"), h("th", "State"), h("th", { class: "num" }, "Score"), h("th", "Preset"),
          h("th", { class: "num" }, "Images"), h("th", "Trained"), h("th", "Actions"), h("th", "Download"))),
        h("tbody", rows))))
      : card(null, empty("No trained version yet.", h("a", { class: "btn primary", href: `#/models/${m.id}/train` }, "Train one"))),
    published ? predictionCard(m) : null));
}

// Where apps and flows call the published version, with a call to copy (Custom Vision shows its
// "prediction URL" the same way). The key stays a placeholder: it is never written into the page.
function predictionCard(m) {
  const endpoint = location.origin + api.url(`${api.paths.model(m.name)}/detect`);
  const sample = `curl -X POST "${endpoint}" \\\n  -H "X-API-Key: <your key>" -H "Content-Type: image/jpeg" \\\n  --data-binary @photo.jpg`;
  return card("Call the published version",
    h("p", { class: "muted" }, "Send an image; the answer has each object's box and probability, and the count per label."),
    h("dl", { class: "kv" }, h("dt", "Prediction URL"), h("dd", h("code", { id: "prediction-url" }, endpoint))),
    h("pre", { id: "prediction-sample", "aria-label": "A call with curl" }, sample),
    h("p", { class: "hint" }, "Power Automate and Power Apps: the ", h("a", { href: "#/connector" }, "connector"),
      " has this call as \u201cDetect and count objects in an image\u201d."));
}
