// Full-size images for labeling: the image's boxes and its bytes (fetched with the key, shown
// through a blob: URL). A few are kept so that the next and the previous image open at once;
// the URL of one that falls out is revoked.
import * as api from "./api.js";

export class ImageCache {
  constructor(modelId, datasetId, size = 5) {
    this.modelId = modelId;
    this.datasetId = datasetId;
    this.size = size;
    this.entries = new Map(); // imageId -> Promise<{meta, url, bitmap ready}>
    this.pinned = new Set();
  }

  get(imageId) {
    let entry = this.entries.get(imageId);
    if (entry) {
      this.entries.delete(imageId); // most recent last
      this.entries.set(imageId, entry);
      return entry;
    }
    const path = api.paths.image(this.modelId, this.datasetId, imageId);
    entry = Promise.all([api.get(path), api.blob(`${path}/content`)]).then(async ([meta, blob]) => {
      const url = URL.createObjectURL(blob);
      const img = new Image();
      img.src = url;
      try {
        await img.decode(); // decoded before it is shown: no half-drawn frame when it opens
      } catch {
        /* shown anyway; the browser reports what is wrong with it */
      }
      return { meta, url };
    });
    entry.catch(() => this.entries.delete(imageId));
    this.entries.set(imageId, entry);
    this.trim();
    return entry;
  }

  // The boxes may have changed since the image was prefetched: read them again, keep the bytes.
  async fresh(imageId) {
    const entry = await this.get(imageId);
    const meta = await api.get(api.paths.image(this.modelId, this.datasetId, imageId));
    return { ...entry, meta };
  }

  prefetch(imageId) {
    if (imageId !== null && imageId !== undefined) this.get(imageId).catch(() => {});
  }

  pin(ids) {
    this.pinned = new Set(ids.filter((x) => x !== null && x !== undefined));
  }

  trim() {
    for (const [id, entry] of this.entries) {
      if (this.entries.size <= this.size) break;
      if (this.pinned.has(id)) continue;
      this.entries.delete(id);
      entry.then((e) => URL.revokeObjectURL(e.url), () => {});
    }
  }

  dispose() {
    for (const entry of this.entries.values()) entry.then((e) => URL.revokeObjectURL(e.url), () => {});
    this.entries.clear();
  }
}
