// The boxes of one image, in fractions of the image (0..1, as the API keeps them), with undo.
// Approved boxes are the maker's own: every change to them is a snapshot Ctrl+Z can return to.
// Suggestions come from a trained version and are accepted or rejected, never edited in place:
// editing one accepts it first. The API cannot turn an accepted box back into a suggestion nor
// bring a rejected one back, so accepting or rejecting clears the undo history: undoing a step
// from before it would put back approved boxes without those, and delete them on the server.
export const MIN_SIZE = 0.004; // a box smaller than this (fraction of a side) is a click, not a box

let seq = 0;
const key = () => `b${++seq}`;

export function clampBox(b) {
  const width = Math.min(Math.max(b.width, MIN_SIZE), 1);
  const height = Math.min(Math.max(b.height, MIN_SIZE), 1);
  return {
    ...b,
    width,
    height,
    left: Math.min(Math.max(b.left, 0), 1 - width),
    top: Math.min(Math.max(b.top, 0), 1 - height),
  };
}

// The box spanned by two points (any drag direction), clamped to the image.
export function spanBox(x0, y0, x1, y1) {
  const cx0 = Math.min(Math.max(Math.min(x0, x1), 0), 1);
  const cy0 = Math.min(Math.max(Math.min(y0, y1), 0), 1);
  const cx1 = Math.min(Math.max(Math.max(x0, x1), 0), 1);
  const cy1 = Math.min(Math.max(Math.max(y0, y1), 0), 1);
  return { left: cx0, top: cy0, width: cx1 - cx0, height: cy1 - cy0 };
}

// Move a box by (dx, dy), keeping its size and keeping it inside the image.
export function moveBox(b, dx, dy) {
  return {
    ...b,
    left: Math.min(Math.max(b.left + dx, 0), 1 - b.width),
    top: Math.min(Math.max(b.top + dy, 0), 1 - b.height),
  };
}

// Resize by dragging handle `edge` (n, s, e, w, ne, nw, se, sw) to the point (x, y).
export function resizeBox(b, edge, x, y) {
  let x0 = b.left;
  let y0 = b.top;
  let x1 = b.left + b.width;
  let y1 = b.top + b.height;
  x = Math.min(Math.max(x, 0), 1);
  y = Math.min(Math.max(y, 0), 1);
  if (edge.includes("w")) x0 = Math.min(x, x1 - MIN_SIZE);
  if (edge.includes("e")) x1 = Math.max(x, x0 + MIN_SIZE);
  if (edge.includes("n")) y0 = Math.min(y, y1 - MIN_SIZE);
  if (edge.includes("s")) y1 = Math.max(y, y0 + MIN_SIZE);
  return clampBox({ ...b, left: x0, top: y0, width: x1 - x0, height: y1 - y0 });
}

export class BoxSet extends EventTarget {
  constructor(regions = []) {
    super();
    this.boxes = [];
    this.suggestions = [];
    this.selected = null;
    this.undoStack = [];
    this.reset(regions);
  }

  // The image's regions as the server gave them.
  reset(regions) {
    this.boxes = regions.filter((r) => r.approved).map((r) => ({ ...clampBox(pick(r)), key: key() }));
    this.suggestions = regions.filter((r) => !r.approved).map((r) => ({ ...pick(r), id: r.id, probability: r.probability, key: key() }));
    this.selected = null;
    this.undoStack = [];
    this.sealed = false; // the history was cleared by an accept or a reject
    this.emit("reset");
  }

  // Suggestions as the server has them after a save; ones handled here meanwhile stay out, and a
  // suggestion keeps its key (and so its selection) while its id lives.
  setSuggestions(regions, handled) {
    const keys = new Map(this.suggestions.map((x) => [x.id, x.key]));
    this.suggestions = regions.filter((r) => !r.approved && !handled.has(r.id))
      .map((r) => ({ ...pick(r), id: r.id, probability: r.probability, key: keys.get(r.id) || key() }));
    if (this.selected && !this.find(this.selected)) this.selected = null;
    this.emit("render");
  }

  all() {
    return [...this.boxes.map((b) => ({ ...b, suggested: false })), ...this.suggestions.map((s) => ({ ...s, suggested: true }))];
  }

  find(k) {
    return this.boxes.find((b) => b.key === k) || this.suggestions.find((s) => s.key === k) || null;
  }

  isSuggestion(k) {
    return this.suggestions.some((s) => s.key === k);
  }

  select(k) {
    this.selected = k;
    this.emit("select");
  }

  seal() {
    this.undoStack = [];
    this.sealed = true;
  }

  snapshot() {
    this.undoStack.push(this.boxes.map((b) => ({ ...b })));
    if (this.undoStack.length > 200) this.undoStack.shift();
  }

  // Replace approved boxes with `next`, recording the state before for undo.
  commit(next, { record = true } = {}) {
    if (record) this.snapshot();
    this.boxes = next;
    this.emit("change");
  }

  add(labelId, rect) {
    const box = { ...clampBox({ labelId, ...rect }), key: key() };
    this.commit([...this.boxes, box]);
    this.selected = box.key;
    this.emit("select");
    return box;
  }

  // Update an approved box (geometry or label) as one undo step.
  update(k, fn) {
    const i = this.boxes.findIndex((b) => b.key === k);
    if (i < 0) return;
    const next = this.boxes.slice();
    next[i] = { ...next[i], ...fn(next[i]) };
    this.commit(next);
  }

  remove(k) {
    if (!this.boxes.some((b) => b.key === k)) return;
    this.commit(this.boxes.filter((b) => b.key !== k));
    if (this.selected === k) this.selected = null;
    this.emit("select");
  }

  // A suggestion becomes an approved box (same key, so a drag on it goes on seamlessly).
  accept(k) {
    const s = this.suggestions.find((x) => x.key === k);
    if (!s) return null;
    this.suggestions = this.suggestions.filter((x) => x.key !== k);
    this.seal();
    this.boxes = [...this.boxes, { ...clampBox(pick(s)), key: s.key, acceptedFrom: s.id }];
    this.emit("accept", { ids: [s.id] });
    this.emit("change-local");
    return s;
  }

  acceptAll() {
    if (!this.suggestions.length) return [];
    const ids = this.suggestions.map((s) => s.id);
    this.seal();
    this.boxes = [...this.boxes, ...this.suggestions.map((s) => ({ ...clampBox(pick(s)), key: s.key, acceptedFrom: s.id }))];
    this.suggestions = [];
    this.emit("accept", { ids });
    this.emit("change-local");
    return ids;
  }

  reject(k) {
    const s = this.suggestions.find((x) => x.key === k);
    if (!s) return;
    this.suggestions = this.suggestions.filter((x) => x.key !== k);
    this.seal();
    if (this.selected === k) this.selected = null;
    this.emit("reject", { ids: [s.id] });
    this.emit("change-local");
  }

  rejectAll() {
    if (!this.suggestions.length) return;
    const ids = this.suggestions.map((s) => s.id);
    this.suggestions = [];
    this.seal();
    this.selected = null;
    this.emit("reject", { ids });
    this.emit("change-local");
  }

  undo() {
    if (!this.undoStack.length) return false;
    this.boxes = this.undoStack.pop();
    if (this.selected && !this.find(this.selected)) this.selected = null;
    this.emit("change");
    return true;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function pick(r) {
  return { labelId: r.labelId, left: r.left, top: r.top, width: r.width, height: r.height };
}
