// Next and previous image in the order and with the filters of the grid the maker came from.
// The walk is the run of ids seen so far, fetched a page at a time as it is needed. Labeling
// takes images out of a filter such as "Unlabeled" while it is walked, which moves the later
// images forward in the server's list: so more of the walk is read after the last image of it
// the server still lists, never at the old offset (that would skip images).
import * as api from "./api.js";
import { apiQuery, PAGE_SIZE } from "./imagequery.js";

export class ImageNavigator {
  constructor(modelId, datasetId, filters) {
    this.path = `${api.paths.dataset(modelId, datasetId)}/images`;
    this.filters = filters;
    this.ids = []; // the walk, in order
    this.start = 0; // the list index of ids[0] when it was read
    this.seen = new Set(); // every id the walk has held
    this.total = null; // images in the walk: those behind plus those the server has ahead
    this.queue = Promise.resolve(); // one read at a time, so that no page is added twice
  }

  get end() {
    return this.start + this.ids.length;
  }

  async fetch(n) {
    const r = await api.get(this.path, apiQuery(this.filters, n, PAGE_SIZE));
    return { ids: r.items.map((i) => i.id), total: r.total };
  }

  serial(fn) {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => {});
    return p;
  }

  // The walk starts over with page n.
  async load(n) {
    const { ids, total } = await this.fetch(n);
    this.ids = ids;
    this.start = (n - 1) * PAGE_SIZE;
    this.seen = new Set(ids);
    this.total = total;
  }

  async at(index) {
    if (index === null || index < 0) return null;
    while (index < this.start) await this.serial(() => (index < this.start ? this.before() : null));
    while (index >= this.end) {
      if (this.total !== null && index >= this.total) return null;
      if (!(await this.serial(() => (index < this.end ? true : this.after())))) return null;
    }
    return this.ids[index - this.start];
  }

  // The images before the walk: the walk changes nothing in front of it, so their places hold.
  async before() {
    const n = Math.floor((this.start - 1) / PAGE_SIZE) + 1;
    const { ids } = await this.fetch(n);
    const fresh = ids.slice(0, this.start - (n - 1) * PAGE_SIZE).filter((id) => !this.seen.has(id));
    fresh.forEach((id) => this.seen.add(id));
    this.ids = [...fresh, ...this.ids];
    this.start = fresh.length ? this.start - fresh.length : 0;
  }

  // More of the walk: the images after the latest image of the walk that the server still lists.
  // False when there is none.
  async after() {
    const behind = this.end;
    let n = Math.floor(behind / PAGE_SIZE) + 1; // where they would be, had nothing left the filter
    let follows = false; // the page before n ended with images of the walk
    for (;;) {
      const { ids, total } = await this.fetch(n);
      const first = (n - 1) * PAGE_SIZE;
      const place = new Map(ids.map((id, k) => [id, k]));
      let last = -1;
      for (let w = this.ids.length - 1; w >= 0 && last < 0; w -= 1) last = place.get(this.ids[w]) ?? -1;
      // none of the walk on this page: images before it left the filter, so it is further back
      if (last < 0 && !follows && first > this.start) {
        n -= 1;
        continue;
      }
      const ahead = ids.slice(last + 1).filter((id) => !this.seen.has(id));
      this.total = behind + Math.max(0, total - first - last - 1);
      if (ahead.length) {
        ahead.forEach((id) => this.seen.add(id));
        this.ids.push(...ahead);
        return true;
      }
      if (ids.length < PAGE_SIZE) {
        this.total = behind;
        return false;
      }
      n += 1;
      follows = true;
    }
  }

  // Where `imageId` is: at its index when the address gave one and it holds there, else
  // searched for on that page and on the first pages.
  locate(imageId, hint) {
    return this.serial(async () => {
      const n = hint !== undefined && hint !== null && !Number.isNaN(hint) && hint >= 0 ? Math.floor(hint / PAGE_SIZE) + 1 : 1;
      await this.load(n);
      let i = this.ids.indexOf(imageId);
      if (i < 0 && n > 1) {
        await this.load(1);
        i = this.ids.indexOf(imageId);
      }
      while (i < 0 && this.ids.length < 3 * PAGE_SIZE && (await this.after())) i = this.ids.indexOf(imageId);
      return i < 0 ? null : this.start + i;
    });
  }

  // An image removed from the dataset leaves the walk: the one after it takes its place.
  drop(imageId) {
    const i = this.ids.indexOf(imageId);
    if (i < 0) return;
    this.ids.splice(i, 1);
    if (this.total !== null) this.total -= 1;
  }
}
