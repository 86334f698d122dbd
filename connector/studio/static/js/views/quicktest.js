// Quick test: drop, paste, pick or photograph an image; the version's boxes are drawn on it with
// label and probability. At first each label's own threshold filters them, as detect does when a
// flow gives none, so the counts are the ones a flow would receive; moving the slider filters
// every label at one probability instead (in the page: no new request).
import * as api from "../api.js";
import { h, s, clear, fmt, field, labelColor } from "../dom.js";
import { pageHeader, card, empty } from "../shell.js";
import { toastError } from "../toast.js";

const DEFAULT_THRESHOLD = 0.5;  // a label the version chose no threshold for (the service's default too)

export async function quickTestView(el, params, query, ctx) {
  const m = ctx.model;
  const base = api.paths.model(m.id);
  const versions = await api.get(`${base}/versions`);
  if (!ctx.current()) return;
  const page = h("div", { class: "page" });
  el.append(page);
  if (!versions.length) {
    page.append(pageHeader("Quick test"), card(null, empty("Train a version first, then test it here on any photo.",
      h("a", { class: "btn primary", href: `#/models/${m.id}/train` }, "Train"))));
    return;
  }
  const colors = new Map(m.labels.map((l, i) => [l.name, labelColor(i)]));
  const version = h("select", { id: "qt-version" }, [...versions].reverse().map((v) =>
    h("option", { value: String(v.number), selected: v.lastTrained },
      `Version ${v.number}${v.published || v.lastTrained ? ` · ${[v.published && "published", v.lastTrained && "last trained"].filter(Boolean).join(", ")}` : ""}`)));
  const input = h("input", { type: "file", id: "qt-file", accept: "image/*", capture: "environment", hidden: true, "aria-label": "Image to test" });
  const pick = h("button", { type: "button", class: "btn primary", id: "qt-pick" }, "Choose or take a photo");
  pick.addEventListener("click", () => input.click());
  const zone = h("div", { class: "dropzone", id: "qt-drop" }, h("p", h("strong", "Drop an image here"), h("span", { class: "keyboard-only" }, ", paste one (Ctrl+V)"), ", or"), pick, input);
  const slider = h("input", { type: "range", id: "qt-threshold", min: 0, max: 1, step: 0.01, value: "0.5" });
  const sliderOut = h("output", { for: "qt-threshold", id: "qt-threshold-value" }, "0.50");
  const own = h("input", { type: "checkbox", id: "qt-own", checked: true });
  const img = h("img", { alt: "", id: "qt-image" });
  const svg = s("svg", { id: "qt-boxes", role: "img", "aria-label": "Objects found" });
  const stageBox = h("div", { class: "qt-stage", id: "qt-stage", hidden: true }, img, svg);
  const status = h("p", { role: "status", class: "muted", id: "qt-status" }, "No image yet.");
  const counts = h("div", { id: "qt-counts" });
  const flow = h("pre", { id: "qt-json", "aria-label": "Counts as a flow receives them" });
  page.append(
    pageHeader("Quick test", { subtitle: "Try a version on a photo. Nothing is stored." }),
    h("div", { class: "qt" },
      h("div", zone, h("p"), stageBox),
      h("div",
        card("Settings", field("Version", version),
          h("div", { class: "check" }, own, h("label", { for: "qt-own" }, "Each label's own threshold (what detect uses when a flow gives none)")),
          h("div", { class: "field" }, h("label", { for: "qt-threshold" }, "Lowest probability shown, every label"), h("div", { class: "inline" }, slider, sliderOut))),
        card("Result", status, counts, h("h3", "As a flow receives it"), flow))));

  let result = null;
  let objectUrl = null;
  let lastFile = null;

  function drawBoxes() {
    clear(svg);
    if (!result) return;
    const threshold = Number(slider.value);
    const perLabel = labelThresholds();
    const cut = (p) => (own.checked ? perLabel.get(p.tagName) ?? DEFAULT_THRESHOLD : threshold);
    const shown = result.predictions.filter((p) => p.probability >= cut(p));
    const W = img.clientWidth || 1;
    const H = img.clientHeight || 1;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    for (const p of shown) {
      const bb = p.boundingBox;
      const color = colors.get(p.tagName) || "#767676";
      const x = bb.left * W;
      const y = bb.top * H;
      const text = `${p.tagName} ${Math.round(p.probability * 100)}%`;
      const tagY = y >= 18 ? y - 18 : y;
      svg.append(s("g", { class: "det", dataset: { label: p.tagName, probability: p.probability } },
        s("rect", { class: "frame", x, y, width: bb.width * W, height: bb.height * H, stroke: color }),
        s("g", { class: "tag" }, s("rect", { x, y: tagY, width: text.length * 7 + 10, height: 18, rx: 2, fill: color }),
          s("text", { x: x + 5, y: tagY + 13 }, text))));
    }
    svg.setAttribute("aria-label", own.checked ? `${shown.length} objects found at each label's own threshold`
      : `${shown.length} objects found at probability ${threshold.toFixed(2)} or more`);
    const found = new Map();
    for (const p of shown) found.set(p.tagName, (found.get(p.tagName) || 0) + 1);
    const countList = [...found].map(([tagName, count]) => ({ tagName, count }));
    counts.replaceChildren(countList.length
      ? h("table", { class: "table" }, h("thead", h("tr", h("th", "Label"), h("th", { class: "num" }, "Count"))),
        h("tbody", countList.map((c) => h("tr", h("td", c.tagName), h("td", { class: "num" }, String(c.count)))),
          h("tr", h("th", "Total"), h("th", { class: "num", id: "qt-total" }, String(shown.length)))))
      : h("p", { id: "qt-total-none" }, own.checked ? "No object at the labels' thresholds." : "No object at this probability."));
    flow.textContent = JSON.stringify({ counts: countList, totalCount: shown.length }, null, 2);
  }
  // The photo as large as its column allows (small ones scaled up), and never taller than the screen.
  const column = stageBox.parentElement;
  function fit() {
    if (!img.naturalWidth) return;
    const maxH = Math.max(240, window.innerHeight - 140);
    const scale = Math.min(column.clientWidth / img.naturalWidth, maxH / img.naturalHeight, 4);
    img.style.width = `${Math.floor(img.naturalWidth * scale)}px`;
    img.style.height = `${Math.floor(img.naturalHeight * scale)}px`;
  }
  img.addEventListener("load", fit);
  const observers = [new ResizeObserver(drawBoxes), new ResizeObserver(fit)];
  observers[0].observe(img);
  observers[1].observe(column);
  // The version's threshold per label (chosen on validation images when it was trained).
  function labelThresholds() {
    const v = versions.find((x) => String(x.number) === version.value);
    const perLabel = (v && v.metrics && v.metrics.perLabel) || {};
    return new Map(Object.entries(perLabel).filter(([, m]) => typeof m.threshold === "number").map(([name, m]) => [name, m.threshold]));
  }
  slider.addEventListener("input", () => {
    sliderOut.textContent = Number(slider.value).toFixed(2);
    own.checked = false;  // the slider sets one probability for every label
    drawBoxes();
  });
  own.addEventListener("change", drawBoxes);

  let testing = 0;
  async function test(file) {
    if (!file) return;
    const ticket = ++testing;
    lastFile = file;
    // the previous result goes at once: nothing of it may stand beside this file's answer
    result = null;
    drawBoxes();
    counts.replaceChildren();
    flow.textContent = "";
    status.classList.remove("form-error");
    status.textContent = "Testing…";
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    const isImage = file.type.startsWith("image/");
    // a file the browser cannot show is not put in the picture (a broken-image icon)
    stageBox.hidden = !isImage;
    if (isImage) img.src = objectUrl;
    else img.removeAttribute("src");
    try {
      // every box the version finds comes back once; the slider only filters them
      const r = await api.send("POST", `${base}/quick-test`, {
        body: file, contentType: isImage ? file.type : "application/octet-stream", accept: "application/json",
        query: { version: version.value, threshold: 0, maxResults: 100 },
      });
      const body = await r.json();
      if (ticket !== testing) return;
      delete body.annotatedImage; // the page draws its own
      if (!isImage) {
        // read by the service although the browser gave it no image type: shown after all
        img.src = objectUrl;
        stageBox.hidden = false;
      }
      result = body;
      status.textContent = `Version ${body.version}: ${body.predictions.length} candidate boxes in ${Math.round(body.durationMs || 0)} ms.`;
      drawBoxes();
    } catch (err) {
      if (ticket !== testing) return;
      status.classList.add("form-error");
      if (err.status === 400 || err.status === 413 || err.status === 415) {
        // the service read the file and refused it: said plainly, beside no picture
        stageBox.hidden = true;
        img.removeAttribute("src");
        status.textContent = `${file.name || "This file"} is not an image the service reads: ${err.message}`;
      } else {
        status.textContent = err.message;
        toastError(err, "Quick test");
      }
    }
  }

  input.addEventListener("change", () => test(input.files[0]));
  version.addEventListener("change", () => lastFile && test(lastFile));
  for (const type of ["dragenter", "dragover"]) zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    test(e.dataTransfer.files[0]);
  });
  const onPaste = (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) {
      e.preventDefault();
      test(file);
    }
  };
  document.addEventListener("paste", onPaste);
  return () => {
    document.removeEventListener("paste", onPaste);
    observers.forEach((o) => o.disconnect());
    if (objectUrl) URL.revokeObjectURL(objectUrl);
  };
}
