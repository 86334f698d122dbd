// Upload many images: drop them or pick them, each file its own request so that each gets its
// own progress bar and its own answer (created, duplicate, or rejected with the reason).
import * as api from "./api.js";
import { h, fmt } from "./dom.js";
import { toast } from "./toast.js";

const PARALLEL = 3;

export function uploadPanel(modelId, datasetId, { onDone } = {}) {
  const input = h("input", { type: "file", id: "upload-input", multiple: true, accept: "image/*", hidden: true,
    "aria-label": "Image files" });
  const pick = h("button", { type: "button", class: "btn primary" }, "Choose files");
  pick.addEventListener("click", () => input.click());
  const zone = h("div", { class: "dropzone", id: "dropzone", tabindex: "-1" },
    h("p", h("strong", "Drop images here"), " or ", pick, input),
    h("p", { class: "hint" }, "JPEG, PNG, BMP, GIF or WebP. Each file is checked on its own."));
  const list = h("ul", { class: "uploads", "aria-label": "Uploads", "aria-live": "polite" });
  const summary = h("p", { class: "muted", role: "status" });
  const panel = h("section", { class: "card upload-panel", "aria-label": "Upload images" },
    h("h2", { class: "card-title" }, "Upload images"), zone, summary, list);

  input.addEventListener("change", () => {
    send([...input.files]);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    send(filesOf(e.dataTransfer));
  });

  let running = 0;
  const totals = { created: 0, duplicate: 0, rejected: 0 };
  const queue = [];

  function send(files) {
    for (const file of files) {
      const bar = h("span");
      const status = h("span", { class: "file-status" }, "waiting");
      const row = h("li", h("span", { class: "file-name", title: file.name }, `${file.name} · ${fmt.bytes(file.size)}`),
        h("div", { class: "progress", role: "progressbar", "aria-label": `Upload of ${file.name}`, "aria-valuemin": 0, "aria-valuemax": 100 }, bar),
        status);
      list.append(row);
      queue.push({ file, row, bar, status });
    }
    pump();
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      running += 1;
      one(queue.shift()).finally(() => {
        running -= 1;
        pump();
        if (!running && !queue.length) finished();
      });
    }
  }

  async function one({ file, row, bar, status }) {
    const progress = bar.parentElement;
    const setProgress = (f) => {
      bar.style.width = `${Math.round(f * 100)}%`;
      progress.setAttribute("aria-valuenow", String(Math.round(f * 100)));
    };
    status.textContent = "uploading…";
    const form = new FormData();
    form.append("files", file, file.name);
    let result;
    try {
      const report = await api.upload(`${api.paths.dataset(modelId, datasetId)}/images/files`, form, setProgress);
      result = report.results[0];
    } catch (err) {
      const first = err.body && err.body.results && err.body.results[0];
      result = first || { status: "rejected", reason: err.message };
    }
    setProgress(1);
    totals[result.status] = (totals[result.status] || 0) + 1;
    status.className = `file-status ${result.status}`;
    status.textContent = result.status === "rejected" ? `rejected: ${result.reason}` : result.status;
    progress.classList.add(result.status === "rejected" ? "error" : "done");
    row.dataset.status = result.status;
  }

  function finished() {
    const text = `${totals.created} added, ${totals.duplicate} already there, ${totals.rejected} rejected`;
    summary.textContent = text;
    toast(`Upload finished: ${text}.`, totals.rejected ? "info" : "success");
    onDone && onDone(totals);
  }

  return { panel, send, zone };
}

// Files of a drop, all of them: the server says why one is not an image it takes.
export function filesOf(dataTransfer) {
  return [...(dataTransfer?.files || [])];
}
