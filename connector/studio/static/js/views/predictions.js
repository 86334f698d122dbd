// Predictions: the photos flows sent to detect that capture kept (opt-in per model), with the
// model's boxes as suggestions. Pick some and approve them into a training dataset, fix their
// boxes in the labeling page, or discard them; set what is kept; see what the model answered
// per day and whether it drifts.
import * as api from "../api.js";
import { h, fmt, field } from "../dom.js";
import { href, setQuery } from "../router.js";
import { pageHeader, card, empty, badge, confirmAction, spinner } from "../shell.js";
import { ThumbLoader } from "../thumbs.js";
import { countBoxes } from "../imagequery.js";
import { captureForm, captureSummary, modeBadge } from "../capture.js";
import { monitoringPanel } from "../monitoring.js";
import { toast, toastError } from "../toast.js";

const PAGE_SIZE = 48;
const ORDERS = [["newest", "Newest first"], ["oldest", "Oldest first"], ["uncertain", "Most uncertain first"]];
// the labeling page walks the production dataset in the nearest image-list order
const LABEL_SORT = { newest: "-id", oldest: "", uncertain: "uncertainty" };

function shortTime(iso) {
  return new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

function withTitle(el, title) {
  el.title = title;
  return el;
}

export async function predictionsView(el, params, query, ctx) {
  const m = ctx.model;
  const base = api.paths.model(m.id);
  let [settings, versions, datasets] = await Promise.all([
    api.get(`${base}/capture`), api.get(`${base}/versions`, { includeArchived: true }), api.get(`${base}/datasets`),
  ]);
  if (!ctx.current()) return;
  const training = datasets.filter((d) => d.kind === "training");
  const filters = {
    order: ORDERS.some(([v]) => v === query.order) ? query.order : "newest",
    version: versions.some((v) => String(v.number) === query.version) ? query.version : "",
  };
  let page = Math.max(1, Number(query.page) || 1);
  let thumbs = new ThumbLoader(256);
  const selected = new Set();
  let items = [];

  // --- header, privacy note, capture setting ---
  const settingsBtn = h("button", { type: "button", class: "btn", id: "capture-button", "aria-expanded": "false",
    "aria-controls": "capture-card" }, "Capture setting");
  const refreshBtn = h("button", { type: "button", class: "btn", id: "refresh-button" }, "Refresh");
  const deleteAllBtn = h("button", { type: "button", class: "btn", id: "delete-all" }, "Delete all captured");
  const state = h("p", { class: "capture-state", id: "capture-state", role: "status" });
  const captureCard = card("What to keep", h("p", { class: "muted" },
    "Detect answers first; keeping a photo happens afterwards and never slows or fails a call."));
  captureCard.id = "capture-card";
  captureCard.append(captureForm(m.id, settings, {
    onSaved: (s) => {
      settings = s;
      showState();
      if (s.mode !== "off") toggleSettings(false); // saved: the review comes back into view
      load();
    },
  }));

  function showState() {
    state.replaceChildren(modeBadge(settings.mode), " ", captureSummary(settings));
    deleteAllBtn.disabled = !settings.images;
  }
  function toggleSettings(open) {
    captureCard.hidden = !open;
    settingsBtn.setAttribute("aria-expanded", String(open));
  }
  settingsBtn.addEventListener("click", () => {
    toggleSettings(captureCard.hidden);
    if (!captureCard.hidden) captureCard.querySelector("input:checked")?.focus();
  });
  refreshBtn.addEventListener("click", () => Promise.all([refreshSettings(), load(), loadMonitoring()]));
  toggleSettings(settings.mode === "off");
  showState();

  // --- review toolbar ---
  const versionSelect = h("select", { id: "filter-version" }, h("option", { value: "" }, "All versions"),
    versions.slice().reverse().map((v) => h("option", { value: String(v.number), selected: String(v.number) === filters.version },
      `Version ${v.number}${v.published ? " (published)" : ""}`)));
  const orderSelect = h("select", { id: "filter-order" }, ORDERS.map(([v, text]) => h("option", { value: v, selected: v === filters.order }, text)));
  const pickPage = h("input", { type: "checkbox", id: "select-page" });
  const picked = h("span", { class: "muted", id: "selected-count", role: "status" });
  const target = h("select", { id: "approve-dataset", "aria-label": "Training dataset to approve into" },
    training.map((d) => h("option", { value: String(d.id) }, d.name)));
  const approveBtn = h("button", { type: "button", class: "btn primary", id: "approve-button" }, "Approve into");
  const discardBtn = h("button", { type: "button", class: "btn", id: "discard-button" }, "Discard");
  const total = h("span", { class: "muted", id: "capture-total" });
  const toolbar = h("div", { class: "review-bar" },
    h("div", { class: "filters", role: "search", "aria-label": "Filter captured images" },
      field("Version", versionSelect), field("Order", orderSelect), total),
    h("div", { class: "inline center selection", role: "toolbar", "aria-label": "Selected images" },
      h("div", { class: "check" }, pickPage, h("label", { for: "select-page" }, "Select this page")), picked,
      h("span", { class: "sep" }), approveBtn, target, discardBtn));
  const grid = h("div", { class: "grid", id: "capture-grid", "aria-label": "Captured images" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const monitoring = h("div", { id: "monitoring-slot" }, h("p", { class: "muted" }, spinner(), " Loading…"));
  const days = h("select", { id: "monitoring-days-select" },
    [7, 30, 90].map((d) => h("option", { value: String(d) }, `Last ${d} days`)));

  el.append(h("div", { class: "page" },
    pageHeader("Predictions", { subtitle: "Photos that flows sent to detect, kept for you to review and train on.",
      commands: [settingsBtn, refreshBtn, h("span", { class: "sep" }), deleteAllBtn] }),
    h("div", { class: "message info", id: "privacy-note" },
      h("strong", "Capture is opt-in, and keeps photos"),
      h("p", "Off until you turn it on for this model. When on, the server keeps copies of the photos flows and apps send to detect, " +
        "with the model's boxes as suggestions and the caller's run id, in the model's production dataset. They never train until you " +
        "approve them, they are deleted after the retention days, and Delete all captured removes them at once."),
      state),
    captureCard,
    card("Captured images", toolbar, grid, pager),
    card("Monitoring", h("div", { class: "inline center period" }, h("label", { for: "monitoring-days-select" }, "Period"), days),
      monitoring)));

  // --- selection ---
  function showSelection() {
    const n = selected.size;
    picked.textContent = n ? `${n} selected` : "None selected";
    discardBtn.disabled = !n;
    approveBtn.disabled = !n || !training.length;
    if (!training.length) approveBtn.title = "Create a training dataset first (Settings)";
    const onPage = items.filter((i) => selected.has(i.id)).length;
    pickPage.checked = items.length > 0 && onPage === items.length;
    pickPage.indeterminate = onPage > 0 && onPage < items.length;
    for (const t of grid.querySelectorAll(".tile[data-image-id]")) {
      const on = selected.has(Number(t.dataset.imageId));
      t.classList.toggle("selected", on);
      t.querySelector("input[type=checkbox]").checked = on;
    }
  }
  pickPage.addEventListener("change", () => {
    for (const i of items) pickPage.checked ? selected.add(i.id) : selected.delete(i.id);
    showSelection();
  });

  approveBtn.addEventListener("click", async () => {
    const ids = [...selected];
    const name = target.selectedOptions[0]?.textContent;
    approveBtn.disabled = true;
    try {
      const r = await api.post(`${base}/captures/approve`, { imageIds: ids, datasetId: Number(target.value) });
      toast(`${r.moved} image${r.moved === 1 ? "" : "s"} moved into ${name} with their boxes approved` +
        (r.duplicates ? `; ${r.duplicates} ${name} already had` : "") + ".", "success");
      selected.clear();
      await refreshSettings();
      await load();
    } catch (err) {
      toastError(err, "Not approved");
      showSelection();
    }
  });
  discardBtn.addEventListener("click", async () => {
    const ids = [...selected];
    const ok = await confirmAction(`Discard ${ids.length} image${ids.length === 1 ? "" : "s"}?`,
      "They are deleted for good, with their boxes and files.", "Discard");
    if (!ok) return;
    try {
      const r = await api.post(`${base}/captures/discard`, { imageIds: ids });
      toast(`${r.deleted} image${r.deleted === 1 ? "" : "s"} discarded.`, "success");
      selected.clear();
      await refreshSettings();
      await load();
    } catch (err) {
      toastError(err, "Not discarded");
    }
  });
  deleteAllBtn.addEventListener("click", async () => {
    const ok = await confirmAction("Delete every captured image?",
      `All ${fmt.num(settings.images)} photos kept from detect calls, with their boxes, are deleted now. ` +
      "Images already approved into training stay. Capture keeps its setting.", "Delete all");
    if (!ok) return;
    try {
      const r = await api.del(`${base}/captures`);
      toast(`${fmt.num(r.deleted)} captured image${r.deleted === 1 ? "" : "s"} deleted.`, "success");
      selected.clear();
      await refreshSettings();
      await load();
    } catch (err) {
      toastError(err, "Not deleted");
    }
  });

  async function refreshSettings() {
    settings = await api.get(`${base}/capture`);
    if (ctx.current()) showState();
  }

  // --- the grid ---
  for (const s of [versionSelect, orderSelect]) {
    s.addEventListener("change", () => {
      filters.version = versionSelect.value;
      filters.order = orderSelect.value;
      page = 1;
      load();
    });
  }

  let loading = null;
  async function load() {
    const controller = new AbortController();
    loading?.abort();
    loading = controller;
    setQuery({ order: filters.order === "newest" ? undefined : filters.order, version: filters.version, page: page > 1 ? page : undefined });
    let r;
    try {
      r = await api.get(`${base}/captures`, { order: filters.order, version: filters.version, page, pageSize: PAGE_SIZE },
        { signal: controller.signal });
    } catch (err) {
      if (err.name !== "AbortError") toastError(err, "Captured images");
      return;
    }
    if (controller.signal.aborted || !ctx.current()) return;
    const pages = Math.max(1, Math.ceil(r.total / PAGE_SIZE));
    if (page > pages && r.total) {
      page = pages;
      return load();
    }
    items = r.items;
    const present = new Set(items.map((i) => i.id));
    for (const id of [...selected]) if (!present.has(id)) selected.delete(id); // selection is per page
    thumbs.dispose();
    thumbs = new ThumbLoader(256);
    total.textContent = `${fmt.num(r.total)} image${r.total === 1 ? "" : "s"}`;
    grid.replaceChildren(...items.map((img, i) => tile(img, r.datasetId, (page - 1) * PAGE_SIZE + i)));
    if (!items.length) {
      grid.replaceChildren(empty(filters.version
        ? "No captured image from this version."
        : settings.mode === "off"
          ? "Nothing captured. Turn capture on (Capture setting) to keep the photos flows send to detect."
          : "Nothing captured yet. Photos appear here after flows call detect on the published version."));
    }
    renderPager(pages, r.total);
    showSelection();
  }

  function tile(img, datasetId, index) {
    const { approved, suggested } = countBoxes(img);
    const c = img.capture;
    const im = h("img", { alt: "", loading: "lazy", decoding: "async", dataset: { src: `${api.paths.image(m.id, datasetId, img.id)}/thumbnail` } });
    thumbs.watch(im);
    const check = h("input", { type: "checkbox", "aria-label": `Select ${img.name}` });
    check.addEventListener("change", () => {
      check.checked ? selected.add(img.id) : selected.delete(img.id);
      showSelection();
    });
    const link = href(`/models/${m.id}/images/${img.id}`,
      { dataset: datasetId, sort: LABEL_SORT[filters.order] || undefined, from: "predictions", i: filters.version ? undefined : index });
    const top = c ? c.topProbability : null;
    return h("div", { class: "tile pickable", dataset: { imageId: img.id } },
      h("label", { class: "pick" }, check),
      h("a", { href: link, class: "thumb-link", title: "Open to fix the boxes",
        "aria-label": `${img.name}: ${suggested} suggestions${approved ? `, ${approved} boxes` : ""}; open to fix the boxes` },
        h("div", { class: "thumb" }, im)),
      h("div", { class: "meta" },
        h("span", { class: "name", title: c?.correlationId ? `${img.name}, run ${c.correlationId}` : img.name },
          c ? shortTime(c.captured) : img.name),
        h("span", { class: "counts" },
          suggested ? withTitle(badge(`${suggested}?`, "warning"), `${suggested} suggested boxes to review`) : null,
          approved ? withTitle(badge(String(approved), "success"), `${approved} approved boxes`) : null,
          suggested || approved ? null : withTitle(badge("0", "neutral"), "The model found nothing here"))),
      h("div", { class: "meta sub" },
        h("span", c ? `v${c.version ?? "?"} · ${c.operation}` : "uploaded"),
        h("span", { class: top === null ? "muted" : top < 0.5 ? "top low" : "top", title: "Top probability" },
          top === null ? "" : `top ${fmt.pct(top)}`)));
  }

  function renderPager(pages, count) {
    const prev = h("button", { type: "button", class: "btn", disabled: page <= 1, id: "page-prev" }, "← Previous");
    const next = h("button", { type: "button", class: "btn", disabled: page >= pages, id: "page-next" }, "Next →");
    prev.addEventListener("click", () => { page -= 1; load(); });
    next.addEventListener("click", () => { page += 1; load(); });
    const first = (page - 1) * PAGE_SIZE + 1;
    pager.replaceChildren(prev, h("span", { class: "page-info", id: "page-info" },
      count ? `Page ${page} of ${pages} · ${fmt.num(first)}–${fmt.num(Math.min(count, page * PAGE_SIZE))}` : ""), next);
    pager.hidden = pages <= 1;
  }

  // --- monitoring ---
  async function loadMonitoring() {
    try {
      const panel = await monitoringPanel(m.id, Number(days.value));
      if (ctx.current()) monitoring.replaceChildren(panel);
    } catch (err) {
      monitoring.replaceChildren(h("p", { class: "form-error" }, `Monitoring: ${err.message}`));
    }
  }
  days.addEventListener("change", loadMonitoring);

  await Promise.all([load(), loadMonitoring()]);
  return () => {
    loading?.abort();
    thumbs.dispose();
  };
}
