// Next and previous image in the order and with the filters of the grid the maker came from.
// Pages of ids are fetched as they are needed.
import * as api from "./api.js";
import { apiQuery, PAGE_SIZE } from "./imagequery.js";

export class ImageNavigator {
  constructor(modelId, datasetId, filters) {
    this.path = `${api.paths.dataset(modelId, datasetId)}/images`;
    this.filters = filters;
    this.pages = new Map(); // page number -> Promise<ids>
    this.total = null;
  }

  page(n) {
    if (!this.pages.has(n)) {
      const p = api.get(this.path, apiQuery(this.filters, n, PAGE_SIZE)).then((r) => {
        this.total = r.total;
        return r.items.map((i) => i.id);
      });
      p.catch(() => this.pages.delete(n));
      this.pages.set(n, p);
    }
    return this.pages.get(n);
  }

  async at(index) {
    if (index === null || index < 0) return null;
    if (this.total !== null && index >= this.total) return null;
    const ids = await this.page(Math.floor(index / PAGE_SIZE) + 1);
    return ids[index % PAGE_SIZE] ?? null;
  }

  // Where `imageId` is: its index when the address gave one and it holds there, else a search
  // of the first pages.
  async locate(imageId, hint) {
    if (hint !== undefined && hint !== null && !Number.isNaN(hint) && (await this.at(hint)) === imageId) return hint;
    for (let n = 1; n <= 3; n += 1) {
      const ids = await this.page(n);
      const i = ids.indexOf(imageId);
      if (i >= 0) return (n - 1) * PAGE_SIZE + i;
      if (ids.length < PAGE_SIZE) break;
    }
    return null;
  }
}
