// Labeling one image at full size: draw, move, resize and delete boxes; pick labels with 1-9 or by
// typing; accept or reject suggestions; next and previous image with the arrow keys (prefetched);
// every change saved through the API with its state in view; Ctrl+Z undoes and Ctrl+Y redoes within
// the image, accepting and rejecting suggestions included.
import * as api from "../api.js";
import { h, labelColor, fmt } from "../dom.js";
import { href } from "../router.js";
import { pageHeader, confirmAction, sideNav } from "../shell.js";
import { bind } from "../keys.js";
import { toast, toastError } from "../toast.js";
import { filtersOf } from "../imagequery.js";
import { ImageCache } from "../imagecache.js";
import { ImageNavigator } from "../navigator.js";
import { BoxSet } from "../editor/boxes.js";
import { DrawLayer } from "../editor/layer.js";
import { PointerTool } from "../editor/pointer.js";
import { Saver } from "../editor/saver.js";
import { LabelPicker } from "../editor/labelpicker.js";
import { renderBoxList } from "../editor/boxlist.js";

let lastLabelId = null; // the label new boxes get, kept from image to image

export async function labelView(el, params, query, ctx) {
  const m = ctx.model;
  const imageId = Number(params.image);
  let datasetId = Number(query.dataset);
  if (!datasetId) datasetId = (await api.get(`${api.paths.model(m.id)}/datasets`))[0].id;
  const cache = new ImageCache(m.id, datasetId);
  // a missing or removed image fails here, before the page is built: the router's "Not found"
  const [versions] = await Promise.all([api.get(`${api.paths.model(m.id)}/versions`), cache.get(imageId)]);
  if (!ctx.current()) {
    cache.dispose();
    return;
  }
  const filters = { ...filtersOf(query), dataset: String(datasetId) };
  // opened from the Predictions page (a captured image): back leads there
  const from = query.from === "predictions" ? "predictions" : undefined;
  const backPath = from ? `/models/${m.id}/predictions` : `/models/${m.id}/images`;
  if (from) sideNav(m, "predictions");
  const labels = new Map(m.labels.map((l, i) => [l.id, { ...l, index: i, color: labelColor(i) }]));
  if (!labels.has(lastLabelId)) lastLabelId = m.labels.length ? m.labels[0].id : null;

  const nav = new ImageNavigator(m.id, datasetId, filters);
  const savers = new Map();
  const visited = new Set();
  let state = null; // {id, index, meta, boxes, saver, layer, tool}
  let live = null;

  // --- page ---
  const gridLink = h("a", { class: "btn", href: from ? href(backPath) : href(backPath, filters) }, from ? "← Predictions" : "← All images");
  const prevBtn = h("button", { type: "button", class: "btn", id: "prev-image", "aria-keyshortcuts": "ArrowLeft" }, "‹ Previous");
  const nextBtn = h("button", { type: "button", class: "btn", id: "next-image", "aria-keyshortcuts": "ArrowRight" }, "Next ›");
  const position = h("span", { class: "position", id: "image-position" });
  const saveState = h("span", { class: "save-state saved", id: "save-state", role: "status", "aria-live": "polite" }, "Saved");
  const retry = h("button", { type: "button", class: "btn small", hidden: true }, "Retry");
  const title = h("h1", "Label");
  const subtitle = h("p", { class: "subtitle", id: "image-name" });

  const img = h("img", { alt: "", id: "label-image", draggable: "false" });
  const help = h("p", { id: "surface-help", class: "sr-only" },
    "Drag on the image to draw a box with the current label. Drag a box to move it, drag its handles to resize it. " +
    "Keys: 1 to 9 pick a label, type to filter labels, Delete removes the selected box, Enter accepts a selected suggestion, " +
    "Escape deselects, Control+Z undoes (also an accept or a reject), Control+Y redoes, Shift+arrows nudge the selected box, arrows go to the next or previous image.");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "overlay");
  svg.setAttribute("tabindex", "0");
  svg.setAttribute("role", "application");
  svg.setAttribute("aria-roledescription", "box drawing surface");
  svg.setAttribute("aria-describedby", "surface-help");
  svg.id = "surface";
  const stage = h("div", { class: "stage", id: "stage" }, img, svg);
  const announcer = h("div", { class: "sr-only", "aria-live": "polite", id: "announcer" });

  const picker = new LabelPicker([...labels.values()], lastLabelId, { onPick: pickLabel, onLeave: () => svg.focus() });
  const boxList = h("ul", { class: "box-list", id: "box-list", "aria-label": "Boxes on this image" });
  const boxCount = h("span", { class: "muted" });
  const acceptAll = h("button", { type: "button", class: "btn small", id: "accept-all" }, "Accept all");
  const rejectAll = h("button", { type: "button", class: "btn small", id: "reject-all" }, "Reject all");
  const suggestionActions = h("div", { class: "inline", id: "suggestion-actions", hidden: true }, acceptAll, rejectAll);
  const undoBtn = h("button", { type: "button", class: "btn small", id: "undo", "aria-keyshortcuts": "Control+Z", title: "Undo (Ctrl+Z)", disabled: true }, "Undo");
  const redoBtn = h("button", { type: "button", class: "btn small", id: "redo", "aria-keyshortcuts": "Control+Y", title: "Redo (Ctrl+Y)", disabled: true }, "Redo");
  const suggestBtn = h("button", { type: "button", class: "btn", id: "suggest-image", disabled: !versions.length,
    title: versions.length ? "Ask the last trained version for boxes" : "Train a version first" }, "Suggest boxes");
  const suggestMin = h("input", { type: "number", id: "suggest-min", min: 0, max: 1, step: "any", value: "0.5",
    title: "Lowest probability of a suggested box" });
  const deleteBtn = h("button", { type: "button", class: "btn subtle", id: "delete-image" }, "Remove image from dataset");

  el.append(h("div", { class: "page" },
    pageHeader(title, { commands: [gridLink, h("span", { class: "sep" }), prevBtn, position, nextBtn, h("span", { class: "sep" }), saveState, retry] }),
    subtitle,
    h("div", { class: "labeler" },
      h("div", { class: "stage-wrap" }, stage),
      h("aside", { class: "side", "aria-label": "Labels and boxes" },
        h("section", { class: "card" }, h("h2", "Labels"), picker.filter, picker.list),
        h("section", { class: "card" }, h("h2", "Boxes ", boxCount), boxList,
          suggestionActions, h("div", { class: "inline" }, undoBtn, redoBtn)),
        h("section", { class: "card" }, h("h2", "Assist"),
          h("div", { class: "inline center" }, suggestBtn, h("label", { for: "suggest-min" }, "at least"), suggestMin),
          h("p"), deleteBtn))),
    help, announcer));
  title.textContent = "Label";

  const layer = new DrawLayer(svg, labels);
  const wrap = stage.parentElement;
  // The picture as large as the space allows (small images scaled up, up to 4x), all of it in view.
  function fit() {
    if (!state) return;
    const { width: W, height: H } = state.meta;
    const aw = wrap.clientWidth - 24;
    const ah = Math.max(320, window.innerHeight - wrap.getBoundingClientRect().top - 40);
    const scale = Math.max(0.05, Math.min(aw / W, ah / H, 4));
    img.style.width = `${Math.floor(W * scale)}px`;
    img.style.height = `${Math.floor(H * scale)}px`;
  }
  const resize = new ResizeObserver(() => {
    layer.resize(img.clientWidth, img.clientHeight);
    draw();
  });
  resize.observe(img);
  const refit = new ResizeObserver(() => fit());
  refit.observe(wrap);

  function announce(text) {
    announcer.textContent = text;
  }

  // --- labels ---
  // Picking a label: new boxes get it, and the selected box (if any) changes to it.
  function pickLabel(labelId) {
    lastLabelId = labelId;
    const b = state && state.boxes;
    if (b && b.selected) {
      const key = b.selected;
      if (b.isSuggestion(key)) b.accept(key);
      const box = b.find(key);
      if (box && box.labelId !== labelId) b.update(key, () => ({ labelId }));
      b.select(key);
    }
    announce(`Label ${labels.get(labelId).name}`);
  }

  // --- boxes ---
  function draw() {
    if (!state) return;
    const b = state.boxes;
    layer.render(b.all(), b.selected, live);
    const counts = renderBoxList(boxList, b, labels, () => svg.focus());
    const suggestions = counts.suggestions;
    boxCount.textContent = `${counts.boxes}${suggestions ? ` + ${suggestions} suggested` : ""}`;
    suggestionActions.hidden = suggestions === 0;
    undoBtn.disabled = !b.undoStack.length;
    redoBtn.disabled = !b.redoStack.length;
    const sel = b.find(b.selected);
    svg.setAttribute("aria-label", `${state.meta.name}: ${counts.boxes} boxes, ${suggestions} suggestions` +
      (sel ? `. Selected: ${(labels.get(sel.labelId) || {}).name}` : ""));
  }

  acceptAll.addEventListener("click", () => state && state.boxes.acceptAll());
  rejectAll.addEventListener("click", () => state && state.boxes.rejectAll());
  // the history is the image's own: an accept or a reject goes back like any edit
  function undo() {
    if (state) announce(state.boxes.undo() ? "Undone" : "Nothing to undo");
  }
  function redo() {
    if (state) announce(state.boxes.redo() ? "Redone" : "Nothing to redo");
  }
  undoBtn.addEventListener("click", undo);
  redoBtn.addEventListener("click", redo);

  function showSaveState(e) {
    const { state: s, error } = e.detail;
    saveState.dataset.saves = String(state ? state.saver.saves : 0);
    saveState.className = `save-state ${s === "pending" ? "saving" : s}`;
    saveState.textContent = s === "error" ? `Not saved: ${error.message}` : s === "saved" ? "Saved" : "Saving…";
    retry.hidden = s !== "error";
  }
  retry.addEventListener("click", () => state && state.saver.retry().catch(() => {}));

  // --- opening images ---
  let opening = 0;
  async function open(imageId, index) {
    const ticket = ++opening;
    let entry;
    try {
      const previous = savers.get(imageId);
      if (previous && previous.busy) await previous.flush().catch(() => {});
      entry = visited.has(imageId) ? await cache.fresh(imageId) : await cache.get(imageId);
    } catch (err) {
      if (ticket === opening) toastError(err, "Image");
      return;
    }
    if (ticket !== opening || !ctx.current()) return;
    visited.add(imageId);
    if (state) state.dispose();
    const boxes = new BoxSet(entry.meta.regions);
    const saver = new Saver(m.id, datasetId, imageId, boxes, entry.meta.regions);
    savers.set(imageId, saver);
    const tool = new PointerTool(svg, boxes, {
      getLabel: () => lastLabelId,
      onLive: (box) => {
        live = box;
        draw();
      },
      onNeedLabel: () => toast("Pick a label first (1-9, or click one).", "info"),
    });
    const onState = (e) => {
      if (state && state.saver === saver) showSaveState(e);
      else if (e.detail.state === "error") toastError(e.detail.error, `Boxes of ${entry.meta.name} not saved`);
    };
    saver.addEventListener("state", onState);
    saver.addEventListener("dropped", (e) => toast(
      `Saving your boxes cleared ${e.detail.count} suggestion${e.detail.count === 1 ? "" : "s"} still to review on ${entry.meta.name}. ` +
      "Accept or reject suggestions before drawing, or ask for them again.", "info", { timeout: 9000 }));
    const events = ["reset", "change", "change-local", "select", "render"];
    const redraw = () => draw();
    events.forEach((t) => boxes.addEventListener(t, redraw));
    boxes.addEventListener("change", () => announce("Boxes changed"));
    state = {
      id: imageId, index, meta: entry.meta, boxes, saver,
      dispose() {
        tool.dispose();
        events.forEach((t) => boxes.removeEventListener(t, redraw));
        if (saver.busy) saver.flush().catch(() => {});
      },
    };
    img.src = entry.url;
    img.alt = entry.meta.name;
    fit();
    subtitle.textContent = `${entry.meta.name} · ${entry.meta.width} × ${entry.meta.height} px`;
    title.textContent = index === null ? "Label image" : `Image ${fmt.num(index + 1)}${nav.total !== null ? ` of ${fmt.num(nav.total)}` : ""}`;
    position.textContent = "";
    showSaveState({ detail: { state: "saved" } });
    layer.resize(img.clientWidth, img.clientHeight);
    draw();
    // read by bench/studio_bench.py: the frame with the new image is about to be painted
    requestAnimationFrame(() => performance.mark("studio:image-open", { detail: imageId }));
    history.replaceState(null, "", href(`/models/${m.id}/images/${imageId}`, { ...filters, from, i: index ?? undefined }));
    document.title = `${entry.meta.name} · odconnect studio`;
    // what comes next is fetched now, so that it opens at once
    const [next, prev] = await Promise.all([nav.at(index === null ? null : index + 1), nav.at(index === null ? null : index - 1)]);
    if (ticket !== opening) return;
    cache.pin([imageId, next, prev]);
    cache.prefetch(next);
    cache.prefetch(prev);
    nextBtn.disabled = next === null;
    prevBtn.disabled = prev === null;
    position.textContent = index === null ? "" : `${fmt.num(index + 1)} / ${fmt.num(nav.total)}`;
    title.textContent = index === null ? "Label image" : `Image ${fmt.num(index + 1)} of ${fmt.num(nav.total)}`;
  }

  async function step(delta) {
    if (!state || state.index === null) return;
    const index = state.index + delta;
    const id = await nav.at(index);
    if (id === null) {
      announce(delta > 0 ? "This is the last image." : "This is the first image.");
      return;
    }
    await open(id, index);
  }
  prevBtn.addEventListener("click", () => step(-1));
  nextBtn.addEventListener("click", () => step(1));

  suggestBtn.addEventListener("click", async () => {
    if (!state) return;
    suggestBtn.disabled = true;
    const s = state;
    try {
      await s.saver.flush();
      const threshold = suggestMin.checkValidity() && suggestMin.value !== "" ? Number(suggestMin.value) : undefined;
      const image = await api.post(`${api.paths.image(m.id, datasetId, s.id)}/suggest`, undefined, { query: { threshold } });
      if (state === s) s.saver.adopt(image);
      const n = image.regions.filter((r) => !r.approved).length;
      toast(n ? `${n} suggested box${n === 1 ? "" : "es"}: accept or reject them.` : "No suggestion for this image.", "info");
    } catch (err) {
      toastError(err, "Suggest");
    } finally {
      suggestBtn.disabled = false;
    }
  });

  deleteBtn.addEventListener("click", async () => {
    if (!state) return;
    const s = state;
    const ok = await confirmAction("Remove this image?", `${s.meta.name} leaves the dataset. Versions trained on it keep their record of it.`, "Remove");
    if (!ok) return;
    try {
      await api.del(api.paths.image(m.id, datasetId, s.id));
      toast(`${s.meta.name} removed.`, "success");
      nav.drop(s.id);
      const id = await nav.at(s.index);
      if (id !== null) open(id, s.index);
      else location.hash = from ? href(backPath) : href(backPath, filters);
    } catch (err) {
      toastError(err, "Not removed");
    }
  });

  // --- keyboard ---
  const selected = () => state && state.boxes.selected;
  const nudge = (dx, dy) => {
    const b = state.boxes;
    const key = b.selected;
    if (b.isSuggestion(key)) b.accept(key);
    b.update(key, (box) => {
      const left = Math.min(Math.max(box.left + dx / layer.width, 0), 1 - box.width);
      const top = Math.min(Math.max(box.top + dy / layer.height, 0), 1 - box.height);
      return { left, top };
    });
    b.select(key);
  };
  const unbind = bind([
    ...m.labels.slice(0, 9).map((l, i) => ({ keys: [String(i + 1)], help: i === 0 ? "Pick label 1-9 (and relabel the selected box)" : undefined,
      label: "1 … 9", run: () => picker.pick(l.id) })),
    { keys: ["ArrowRight"], help: "Next image", run: () => step(1) },
    { keys: ["ArrowLeft"], help: "Previous image", run: () => step(-1) },
    { keys: ["ArrowRight", "ArrowLeft", "ArrowUp", "ArrowDown"], shift: true, label: "Shift + arrows", help: "Nudge the selected box",
      when: selected, run: (e) => nudge(e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0, e.key === "ArrowDown" ? 1 : e.key === "ArrowUp" ? -1 : 0) },
    { keys: ["Delete", "Backspace"], label: "Delete", help: "Delete the selected box (reject a suggestion)", when: selected,
      run: () => {
        const b = state.boxes;
        if (b.isSuggestion(b.selected)) b.reject(b.selected);
        else b.remove(b.selected);
        announce("Box deleted");
      } },
    { keys: ["Enter"], help: "Accept the selected suggestion",
      when: (e) => (e.target === svg || e.target === document.body) && selected() && state.boxes.isSuggestion(state.boxes.selected),
      run: () => state.boxes.accept(state.boxes.selected) },
    { keys: ["z", "Z"], ctrl: true, shift: false, label: "Ctrl + Z", help: "Undo (within this image; accepts and rejects too)", run: undo },
    { keys: ["y", "Y", "z", "Z"], ctrl: true, label: "Ctrl + Y", help: "Redo", when: (e) => e.key.toLowerCase() === "y" || e.shiftKey, run: redo },
    { keys: ["Escape"], label: "Esc", help: "Deselect", when: selected, run: () => state.boxes.select(null) },
    { keys: "abcdefghijklmnopqrstuvwxyz".split(""), label: "a … z", help: "Filter labels by typing (Enter picks the first)",
      run: (e) => picker.type(e.key) },
  ]);

  // A box drawn just before a reload or a closed tab is kept: a save still waiting out its delay
  // goes now, as a keepalive request that outlives the page.
  const leave = () => savers.forEach((s) => s.leave());
  const onVisibility = () => document.visibilityState === "hidden" && leave();
  window.addEventListener("pagehide", leave);
  document.addEventListener("visibilitychange", onVisibility);

  const index = await nav.locate(imageId, query.i === undefined ? null : Number(query.i));
  if (!ctx.current()) return;
  await open(imageId, index);
  svg.focus({ preventScroll: true });

  return () => {
    unbind();
    window.removeEventListener("pagehide", leave);
    document.removeEventListener("visibilitychange", onVisibility);
    resize.disconnect();
    refit.disconnect();
    if (state) state.dispose();
    state = null;
    // leave the bytes of images still being saved until their saves end
    Promise.allSettled([...savers.values()].map((s) => s.running)).then(() => cache.dispose());
  };
}
