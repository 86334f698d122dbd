// Thumbnails for the grid: server-made (small, cached by the browser: they are content-addressed),
// fetched with the key only when a tile scrolls into view, a few at a time, shown through blob:
// URLs that are revoked when the grid is left. Never the full-size image.
import * as api from "./api.js";

const PARALLEL = 6;

export class ThumbLoader {
  constructor(size = 256) {
    this.size = size;
    this.urls = new Set();
    this.queue = [];
    this.active = 0;
    this.controller = new AbortController();
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        this.observer.unobserve(entry.target);
        this.queue.push(entry.target);
      }
      this.pump();
    }, { rootMargin: "300px 0px" });
  }

  // img.dataset.src: the API path of the thumbnail
  watch(img) {
    this.observer.observe(img);
  }

  pump() {
    while (this.active < PARALLEL && this.queue.length) {
      const img = this.queue.shift();
      if (!img.isConnected) continue;
      this.active += 1;
      api.blob(img.dataset.src, { size: this.size }, this.controller.signal)
        .then((blob) => {
          if (this.controller.signal.aborted) return;
          const u = URL.createObjectURL(blob);
          this.urls.add(u);
          img.src = u;
          img.closest(".thumb")?.classList.add("loaded");
        })
        .catch((err) => {
          if (err.name !== "AbortError") img.closest(".thumb")?.classList.add("failed");
        })
        .finally(() => {
          this.active -= 1;
          this.pump();
        });
    }
  }

  dispose() {
    this.controller.abort();
    this.observer.disconnect();
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls.clear();
    this.queue = [];
  }
}
