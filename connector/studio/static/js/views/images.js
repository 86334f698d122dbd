// The images of a dataset: filters, a paged grid of server-made thumbnails, upload, COCO import,
// and ML-assisted suggestions for the whole dataset.
import * as api from "../api.js";
import { h, fmt, field } from "../dom.js";
import { go, href, setQuery } from "../router.js";
import { pageHeader, card, empty, badge } from "../shell.js";
import { ThumbLoader } from "../thumbs.js";
import { uploadPanel, filesOf } from "../upload.js";
import { importDialog, importReport } from "../importer.js";
import { suggestDialog, jobCard, reviewCard } from "../suggest.js";
import { PAGE_SIZE, STATES, SORTS, filtersOf, apiQuery, countBoxes } from "../imagequery.js";
import { bind } from "../keys.js";
import { toastError } from "../toast.js";

function select(id, options, value) {
  return h("select", { id }, options.map(([v, text]) => h("option", { value: v, selected: v === (value || "") }, text)));
}

export async function imagesView(el, params, query, ctx) {
  const m = ctx.model;
  const [datasets, versions] = await Promise.all([
    api.get(`${api.paths.model(m.id)}/datasets`),
    api.get(`${api.paths.model(m.id)}/versions`),
  ]);
  if (!ctx.current()) return;
  const dataset = datasets.find((d) => String(d.id) === query.dataset) || datasets[0];
  const filters = { ...filtersOf(query), dataset: String(dataset.id) };
  let page = Math.max(1, Number(query.page) || 1);
  let thumbs = new ThumbLoader(256);
  const cleanups = [() => thumbs.dispose()];

  // command bar
  const uploadBtn = h("button", { type: "button", class: "btn primary", id: "upload-button", "aria-expanded": "false" }, "Upload images");
  const importBtn = h("button", { type: "button", class: "btn", id: "import-button" }, "Import dataset");
  const suggestBtn = h("button", { type: "button", class: "btn", id: "suggest-button", disabled: !versions.length,
    title: versions.length ? "" : "Train a version first" }, "Suggest boxes");
  const reviewBtn = h("button", { type: "button", class: "btn", id: "review-button", "aria-expanded": "false" }, "Review suggestions");
  const dsSelect = h("select", { id: "dataset-select", "aria-label": "Dataset" },
    datasets.map((d) => h("option", { value: String(d.id), selected: d.id === dataset.id }, `${d.name} (${d.kind})`)));

  // filters
  const labelSelect = select("filter-label", [["", "All labels"], ...m.labels.map((l) => [l.name, l.name])], filters.label);
  const stateSelect = select("filter-state", STATES, filters.state);
  const sortSelect = select("filter-sort", SORTS, filters.sort);
  const total = h("span", { class: "muted", role: "status", id: "image-total" });
  const filterBar = h("div", { class: "filters", role: "search", "aria-label": "Filter images" },
    field("Label", labelSelect), field("Show", stateSelect), field("Order", sortSelect), total);

  const panels = h("div");
  const grid = h("div", { class: "grid", id: "image-grid", "aria-label": "Images" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });

  el.append(h("div", { class: "page" },
    pageHeader("Images", { subtitle: `Dataset ${dataset.name}: draw boxes around each object you want found.`,
      commands: [uploadBtn, importBtn, h("span", { class: "sep" }), suggestBtn, reviewBtn, h("span", { class: "sep" }), dsSelect] }),
    panels, filterBar, grid, pager));

  // upload (also by dropping files anywhere on the page)
  let upload = null;
  const showUpload = () => {
    if (!upload) {
      upload = uploadPanel(m.id, dataset.id, { onDone: () => load() });
      panels.prepend(upload.panel);
    }
    upload.panel.hidden = false;
    uploadBtn.setAttribute("aria-expanded", "true");
    return upload;
  };
  uploadBtn.addEventListener("click", () => {
    if (upload && !upload.panel.hidden) {
      upload.panel.hidden = true;
      uploadBtn.setAttribute("aria-expanded", "false");
    } else {
      showUpload().zone.querySelector("button").focus();
    }
  });
  const onDragOver = (e) => {
    if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
    e.preventDefault();
    showUpload().zone.classList.add("over");
  };
  const onDrop = (e) => {
    if (!e.dataTransfer?.files?.length || e.defaultPrevented) return;
    e.preventDefault();
    const u = showUpload();
    u.zone.classList.remove("over");
    u.send(filesOf(e.dataTransfer));
  };
  el.addEventListener("dragover", onDragOver);
  el.addEventListener("drop", onDrop);

  importBtn.addEventListener("click", async () => {
    const report = await importDialog(m.id, dataset.id);
    if (!report) return;
    panels.querySelector("#import-report")?.remove();
    panels.prepend(importReport(report));
    load();
  });

  suggestBtn.addEventListener("click", async () => {
    const started = await suggestDialog(m, dataset.id, versions);
    if (!started) return;
    panels.querySelector("#suggest-job")?.remove();
    const job = jobCard(started.location, { onDone: () => load() });
    cleanups.push(job.stop);
    panels.prepend(job.card);
  });

  reviewBtn.addEventListener("click", async () => {
    const open = panels.querySelector("#review-card");
    if (open) {
      open.remove();
      reviewBtn.setAttribute("aria-expanded", "false");
      return;
    }
    let pending = null;
    try {
      pending = (await api.get(`${api.paths.model(m.id)}/data-check`, { datasetId: dataset.id })).unapprovedBoxes;
    } catch {
      /* the count is a nicety */
    }
    panels.append(reviewCard(m, dataset.id, pending, { onDone: () => load() }));
    reviewBtn.setAttribute("aria-expanded", "true");
    panels.querySelector("#review-threshold").focus();
  });

  const refilter = () => {
    filters.label = labelSelect.value;
    filters.state = stateSelect.value;
    filters.sort = sortSelect.value;
    page = 1;
    load();
  };
  for (const s of [labelSelect, stateSelect, sortSelect]) s.addEventListener("change", refilter);
  dsSelect.addEventListener("change", () => go(`/models/${m.id}/images`, { dataset: dsSelect.value }));

  let loading = null;
  async function load() {
    const controller = new AbortController();
    loading?.abort();
    loading = controller;
    setQuery({ ...filters, page: page > 1 ? page : undefined });
    let result;
    try {
      result = await api.get(`${api.paths.dataset(m.id, dataset.id)}/images`, apiQuery(filters, page), { signal: controller.signal });
    } catch (err) {
      if (err.name !== "AbortError") toastError(err, "Images");
      return;
    }
    if (controller.signal.aborted || !ctx.current()) return;
    const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
    if (page > pages && result.total) {
      page = pages;
      return load();
    }
    thumbs.dispose();
    thumbs = new ThumbLoader(256);
    total.textContent = `${fmt.num(result.total)} image${result.total === 1 ? "" : "s"}`;
    grid.replaceChildren(...result.items.map((img, i) => tile(img, (page - 1) * PAGE_SIZE + i)));
    if (!result.items.length) {
      grid.replaceChildren(empty(result.total === 0 && !filters.label && !filters.state
        ? "No images yet. Drop image files on this page, or use Upload images or Import dataset (COCO, VOC, YOLO, Label Studio, Custom Vision)."
        : "No image matches these filters."));
    }
    renderPager(pages, result.total);
  }

  function tile(img, index) {
    const { approved, suggested } = countBoxes(img);
    const im = h("img", { alt: "", loading: "lazy", decoding: "async", dataset: { src: `${api.paths.image(m.id, dataset.id, img.id)}/thumbnail` } });
    thumbs.watch(im);
    const link = href(`/models/${m.id}/images/${img.id}`, { ...filters, i: index });
    return h("a", { class: "tile", href: link, dataset: { imageId: img.id },
      "aria-label": `${img.name}: ${approved} boxes${suggested ? `, ${suggested} suggestions` : ""}` },
      h("div", { class: "thumb" }, im),
      h("div", { class: "meta" }, h("span", { class: "name" }, img.name),
        h("span", { class: "counts" },
          approved ? badge(String(approved), "success") : badge("0", "neutral"),
          suggested ? badge(`${suggested}?`, "warning") : null)));
  }

  function renderPager(pages, count) {
    const prev = h("button", { type: "button", class: "btn", disabled: page <= 1, id: "page-prev" }, "← Previous");
    const next = h("button", { type: "button", class: "btn", disabled: page >= pages, id: "page-next" }, "Next →");
    prev.addEventListener("click", () => turn(-1));
    next.addEventListener("click", () => turn(1));
    const first = (page - 1) * PAGE_SIZE + 1;
    // a page number to jump to: 10,000 images are 167 pages
    const jump = h("input", { type: "number", id: "page-jump", min: 1, max: pages, value: String(page), "aria-label": "Page number" });
    jump.addEventListener("change", () => {
      const n = Math.min(pages, Math.max(1, Math.round(Number(jump.value)) || 1));
      if (n !== page) {
        page = n;
        load();
      }
    });
    pager.replaceChildren(prev, h("span", { class: "page-info", id: "page-info" },
      count ? `Page ${page} of ${pages} · ${fmt.num(first)}–${fmt.num(Math.min(count, page * PAGE_SIZE))}` : ""),
    h("label", { class: "inline center" }, "Go to page", jump), next);
    pager.hidden = pages <= 1;
  }

  function turn(delta) {
    page = Math.max(1, page + delta);
    load();
    window.scrollTo({ top: 0 });
  }

  cleanups.push(bind([
    { keys: ["PageDown"], label: "Page Down", help: "Next page of images", run: () => pager.hidden || document.getElementById("page-next").disabled ? false : turn(1) },
    { keys: ["PageUp"], label: "Page Up", help: "Previous page of images", run: () => pager.hidden || page <= 1 ? false : turn(-1) },
    { keys: ["u"], help: "Upload images", run: () => uploadBtn.click() },
  ]));
  await load();
  return () => {
    loading?.abort();
    el.removeEventListener("dragover", onDragOver);
    el.removeEventListener("drop", onDrop);
    for (const c of cleanups) c();
  };
}
