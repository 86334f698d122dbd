// Saves one image's boxes through the API, one request at a time, and says where it stands
// (saving…, saved, not saved). Approved boxes go whole with PUT regions; accepting or rejecting
// suggestions uses their own calls so that the other suggestions stay on the server. Every save
// is a keepalive request: one under way when the page goes away still reaches the server.
import * as api from "../api.js";

const KEEP = { keepalive: true };

export class Saver extends EventTarget {
  constructor(modelId, datasetId, imageId, boxes) {
    super();
    this.path = api.paths.image(modelId, datasetId, imageId);
    this.boxes = boxes;
    this.dirty = false;
    this.approve = null; // Set of region ids
    this.reject = null;
    this.handled = new Set(); // suggestion ids accepted or rejected here
    this.running = null;
    this.state = "saved";
    this.saves = 0; // finished saves, for anyone waiting on one
    this.timer = null;
    boxes.addEventListener("change", () => this.schedule(() => (this.dirty = true)));
    boxes.addEventListener("accept", (e) => this.schedule(() => (this.approve = this.merge(this.approve, e.detail.ids)), 0));
    boxes.addEventListener("reject", (e) => this.schedule(() => (this.reject = this.merge(this.reject, e.detail.ids)), 0));
  }

  schedule(mark, delay = 250) {
    mark();
    this.set("pending");
    clearTimeout(this.timer);
    // a short delay gathers a burst of keyboard nudges into one request
    this.timer = setTimeout(() => this.flush(), delay);
  }

  set(state, error) {
    this.state = state;
    this.error = error;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, error } }));
  }

  get busy() {
    return this.state === "pending" || this.state === "saving";
  }

  // Runs until nothing is left to send; resolves when saved (or rejects with the error).
  flush() {
    clearTimeout(this.timer);
    if (!this.running) {
      this.running = this.loop().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  async loop() {
    try {
      while (this.dirty || this.approve || this.reject) {
        this.set("saving");
        let image = null;
        if (this.approve) {
          const ids = this.approve;
          this.approve = null;
          try {
            image = await api.post(`${this.path}/regions/approve`, { regionIds: [...ids] }, KEEP);
          } catch (err) {
            // a suggestion the server no longer has: the accepted box is saved whole instead
            if (err.status !== 400) throw err;
            this.dirty = true;
          }
        }
        if (this.reject) {
          const ids = this.reject;
          this.reject = null;
          image = await api.post(`${this.path}/regions/reject`, { regionIds: [...ids] }, KEEP);
        }
        if (this.dirty) {
          this.dirty = false;
          const regions = this.boxes.boxes.map((b) => ({
            labelId: b.labelId, left: b.left, top: b.top, width: b.width, height: b.height,
          }));
          const pending = this.boxes.suggestions.length;
          image = await api.put(`${this.path}/regions`, { regions }, KEEP);
          // PUT regions keeps the suggestions still to review; should any be gone, the page says so
          const kept = image.regions.filter((r) => !r.approved && !this.handled.has(r.id)).length;
          if (kept < pending) this.dispatchEvent(new CustomEvent("dropped", { detail: { count: pending - kept } }));
        }
        if (image) this.boxes.setSuggestions(image.regions, this.handled);
      }
      this.saves += 1;
      this.set("saved");
    } catch (err) {
      this.dirty = true; // the next change or a retry sends the whole set again
      this.set("error", err);
      throw err;
    }
  }

  // Ids to send; handled at once, so that an answer still in flight cannot bring them back.
  merge(current, ids) {
    const out = new Set(current || []);
    for (const id of ids) {
      out.add(id);
      this.handled.add(id);
    }
    return out;
  }

  // The page is going away (reload, closed tab, hidden): a save still waiting out its delay is sent
  // now; its request starts before this returns. One already under way goes on by itself.
  leave() {
    if (this.state === "pending" && !this.running) this.flush().catch(() => {});
  }

  retry() {
    this.dirty = true;
    return this.flush();
  }
}
