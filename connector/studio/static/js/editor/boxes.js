// The boxes of one image, in fractions of the image (0..1, as the API keeps them), with undo and redo.
// Approved boxes are the maker's own: every change to them is a snapshot Ctrl+Z can return to.
// Suggestions come from a trained version and are accepted or rejected, never edited in place:
// editing one accepts it first. Accepting or rejecting is an undo step too: it records the
// suggestions it took, and undoing puts them back (the saver then unapproves or restores them on
// the server). A suggestion keeps its key for good; its server id lives in `ids`, since restoring
// a rejected suggestion gives it a new one.
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
    this.redoStack = [];
    this.reset(regions);
  }

  // The image's regions as the server gave them.
  reset(regions) {
    this.ids = new Map(); // suggestion key -> its id on the server
    this.touched = new Set(); // keys of suggestions accepted, rejected or put back here
    this.boxes = regions.filter((r) => r.approved).map((r) => ({ ...clampBox(pick(r)), key: key() }));
    this.suggestions = regions.filter((r) => !r.approved).map((r) => this.suggestion(r, key()));
    this.selected = null;
    this.undoStack = [];
    this.redoStack = [];
    this.emit("reset");
  }

  suggestion(r, k) {
    this.ids.set(k, r.id);
    return { ...pick(r), id: r.id, probability: r.probability, key: k };
  }

  // The suggestions the server has, once everything done here is saved: a suggestion keeps its key
  // (and so its selection) while its id lives; ones accepted or rejected here stay out.
  setSuggestions(regions) {
    const keyOf = new Map([...this.ids].map(([k, id]) => [id, k]));
    const pending = new Set(this.suggestions.map((x) => x.key));
    this.suggestions = regions.filter((r) => !r.approved)
      .filter((r) => !(keyOf.has(r.id) && this.touched.has(keyOf.get(r.id)) && !pending.has(keyOf.get(r.id))))
      .map((r) => this.suggestion(r, keyOf.get(r.id) || key()));
    if (this.selected && !this.find(this.selected)) this.selected = null;
    this.emit("render");
  }

  // A suggestion stored again on the server under a new id.
  rebind(k, id) {
    this.ids.set(k, id);
    const s = this.suggestions.find((x) => x.key === k);
    if (s) s.id = id;
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

  // One undo step: the approved boxes before it and the suggestions it took (accepted or rejected).
  record(taken = []) {
    this.undoStack.push({ boxes: this.boxes.map((b) => ({ ...b })), taken: taken.map((s) => ({ ...s })) });
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
  }

  // Replace approved boxes with `next`, recording the state before for undo.
  commit(next, { record = true } = {}) {
    if (record) this.record();
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

  // Suggestions taken off the list as one undo step; accepted ones become approved boxes with the
  // same key, so that a drag on one goes on seamlessly.
  review(taken, accept) {
    if (!taken.length) return;
    this.record(taken);
    const keys = new Set(taken.map((s) => s.key));
    this.suggestions = this.suggestions.filter((x) => !keys.has(x.key));
    keys.forEach((k) => this.touched.add(k));
    if (accept) this.boxes = [...this.boxes, ...taken.map((s) => ({ ...clampBox(pick(s)), key: s.key }))];
    else if (keys.has(this.selected)) this.selected = null;
    this.emit("review");
    this.emit("change-local");
  }

  accept(k) {
    const s = this.suggestions.find((x) => x.key === k);
    this.review(s ? [s] : [], true);
    return s || null;
  }

  acceptAll() {
    this.review(this.suggestions, true);
  }

  reject(k) {
    this.review(this.suggestions.filter((x) => x.key === k), false);
  }

  rejectAll() {
    this.review(this.suggestions, false);
  }

  undo() {
    return this.travel(this.undoStack, this.redoStack, true);
  }

  redo() {
    return this.travel(this.redoStack, this.undoStack, false);
  }

  // Go to the state `from`'s last step holds, leaving the way back on `to`: the approved boxes are
  // swapped, and the step's suggestions return to the list (undo) or leave it again (redo).
  travel(from, to, back) {
    const step = from.pop();
    if (!step) return false;
    to.push({ boxes: this.boxes.map((b) => ({ ...b })), taken: step.taken });
    this.boxes = step.boxes;
    const keys = new Set(step.taken.map((s) => s.key));
    this.suggestions = this.suggestions.filter((x) => !keys.has(x.key));
    if (back) this.suggestions.push(...step.taken.map((s) => ({ ...s, id: this.ids.get(s.key) })));
    keys.forEach((k) => this.touched.add(k));
    if (this.selected && !this.find(this.selected)) this.selected = null;
    if (keys.size) this.emit("review");
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
