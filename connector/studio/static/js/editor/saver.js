// Saves one image's boxes through the API, one request at a time, and says where it stands
// (saving…, saved, not saved). Each request brings what the server has closer to what the page
// shows, checked against the image the server last answered with: approved boxes go whole with PUT
// regions; suggestions accepted, rejected or put back by undo use the review calls (approve,
// reject, unapprove, restore), so that the other suggestions stay on the server. Every save is a
// keepalive request: one under way when the page goes away still reaches the server.
import * as api from "../api.js";
import { clampBox } from "./boxes.js";

const KEEP = { keepalive: true };
const EPS = 1e-6;

export class Saver extends EventTarget {
  constructor(modelId, datasetId, imageId, boxes, regions = []) {
    super();
    this.path = api.paths.image(modelId, datasetId, imageId);
    this.boxes = boxes;
    this.server = regions; // the image's regions as the server last answered
    this.stale = false; // after a failed request: read the image again before going on
    this.again = false; // a request was refused since the image was last read
    this.dirty = false; // approved boxes changed here
    this.running = null;
    this.state = "saved";
    this.saves = 0; // finished saves, for anyone waiting on one
    this.timer = null;
    boxes.addEventListener("change", () => this.schedule(() => (this.dirty = true)));
    boxes.addEventListener("review", () => this.schedule(() => {}, 0));
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
      for (;;) {
        if (this.stale) {
          this.set("saving");
          this.server = (await api.get(this.path)).regions;
          this.stale = false;
        }
        const request = this.next();
        if (!request) break;
        this.set("saving");
        const image = await request.send().catch((err) => {
          // the server's boxes changed meanwhile (another tab, a suggestion job): read them again, once
          if (err.status !== 400 || request.again) throw err;
          return null;
        });
        if (!image) {
          this.stale = this.again = this.dirty = true;
          continue;
        }
        const before = this.server;
        this.server = image.regions;
        if (request.done) request.done(image, before);
      }
      this.again = false;
      this.boxes.setSuggestions(this.server);
      this.saves += 1;
      this.set("saved");
    } catch (err) {
      this.again = false;
      this.stale = true; // the next change or a retry starts from what the server has
      this.dirty = true;
      this.set("error", err);
      throw err;
    }
  }

  // The next request that brings the server closer to the page, or null when they agree. Approvals
  // taken back go before PUT regions (which would replace those boxes), restored suggestions after
  // it (so that a box accepted and then edited is off the server before its suggestion is back).
  next() {
    const b = this.boxes;
    const server = new Map(this.server.map((r) => [r.id, r]));
    const pending = new Set(b.suggestions.map((s) => s.key));
    const accepted = new Set(b.boxes.map((x) => x.key));
    const unapprove = [];
    const approve = [];
    const reject = [];
    const restore = [];
    for (const k of b.touched) {
      const id = b.ids.get(k);
      const r = server.get(id);
      if (pending.has(k)) {
        if (!r) restore.push(b.suggestions.find((s) => s.key === k));
        else if (r.approved) unapprove.push(id);
      } else if (r && !r.approved) (accepted.has(k) ? approve : reject).push(id);
      else if (!r && accepted.has(k)) this.dirty = true; // accepted before its restore was sent: saved whole
    }
    const again = this.again;
    const post = (what, body, done) => ({ again, done, send: () => api.post(`${this.path}/regions/${what}`, body, KEEP) });
    if (unapprove.length) return post("unapprove", { regionIds: unapprove });
    if (approve.length) return post("approve", { regionIds: approve });
    if (reject.length) return post("reject", { regionIds: reject });
    if (this.dirty) {
      this.dirty = false;
      // the page holds the server's boxes kept inside the image and above the smallest size
      if (!sameBoxes(b.boxes, this.server.filter((r) => r.approved).map(clampBox))) return this.put(again);
    }
    if (restore.length) {
      const suggestions = restore.map((s) => ({ ...pick(s), probability: s.probability }));
      // the new suggestions are the answer's new ids, in the order sent
      return post("restore", { suggestions }, (image, before) => {
        const old = new Set(before.map((r) => r.id));
        const added = image.regions.filter((r) => !r.approved && !old.has(r.id)).map((r) => r.id).sort((x, y) => x - y);
        restore.forEach((s, i) => added[i] !== undefined && b.rebind(s.key, added[i]));
      });
    }
    return null;
  }

  put(again) {
    const regions = this.boxes.boxes.map(pick);
    // PUT regions keeps the suggestions still to review; should any be gone, the page says so
    const waiting = new Set(this.server.filter((r) => !r.approved).map((r) => r.id));
    const shown = this.boxes.suggestions.filter((s) => waiting.has(s.id)).map((s) => s.id);
    return {
      again,
      send: () => api.put(`${this.path}/regions`, { regions }, KEEP),
      done: (image) => {
        const kept = new Set(image.regions.filter((r) => !r.approved).map((r) => r.id));
        const lost = shown.filter((id) => !kept.has(id)).length;
        if (lost) this.dispatchEvent(new CustomEvent("dropped", { detail: { count: lost } }));
      },
    };
  }

  // An answer that replaced the image's suggestions (Suggest boxes): the server's now.
  adopt(image) {
    this.server = image.regions;
    this.boxes.setSuggestions(image.regions);
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

function pick(b) {
  return { labelId: b.labelId, left: b.left, top: b.top, width: b.width, height: b.height };
}

// The same approved boxes (label and place), in any order.
function sameBoxes(a, b) {
  if (a.length !== b.length) return false;
  const order = (x, y) => x.labelId - y.labelId || x.left - y.left || x.top - y.top || x.width - y.width || x.height - y.height;
  const [sa, sb] = [a.map(pick).sort(order), b.map(pick).sort(order)];
  return sa.every((x, i) => x.labelId === sb[i].labelId &&
    ["left", "top", "width", "height"].every((f) => Math.abs(x[f] - sb[i][f]) < EPS));
}
