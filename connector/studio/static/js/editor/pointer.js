// Pointer input on the drawing layer (mouse, touchpad and touch alike, through Pointer Events):
// drag to draw, tap a box to select it, drag the selected box to move it, drag a handle to resize.
// The gesture shows live; the box set changes once, when the pointer is released.
import { spanBox, moveBox, resizeBox, clampBox } from "./boxes.js";

const CLICK_PX = 4; // a drag shorter than this is a click

export class PointerTool {
  // getLabel(): the label a new box gets; onLive(box|null): redraw with a gesture in progress
  constructor(svg, boxes, { getLabel, onLive, onNeedLabel }) {
    this.svg = svg;
    this.boxes = boxes;
    this.getLabel = getLabel;
    this.onLive = onLive;
    this.onNeedLabel = onNeedLabel;
    this.gesture = null;
    this.handlers = {
      pointerdown: (e) => this.down(e),
      pointermove: (e) => this.move(e),
      pointerup: (e) => this.up(e),
      pointercancel: () => this.cancel(),
      lostpointercapture: () => this.gesture && this.cancel(),
    };
    for (const [type, fn] of Object.entries(this.handlers)) svg.addEventListener(type, fn);
  }

  point(e) {
    const r = this.svg.getBoundingClientRect();
    return { x: (e.clientX - r.left) / r.width, y: (e.clientY - r.top) / r.height, px: e.clientX, py: e.clientY };
  }

  down(e) {
    if (e.button !== 0 || this.gesture) return;
    e.preventDefault();
    this.svg.focus({ preventScroll: true });
    const p = this.point(e);
    const target = e.target.closest ? e.target.closest("[data-key]") : null;
    const key = target ? target.dataset.key : null;
    const edge = e.target.dataset ? e.target.dataset.edge : undefined;
    const box = key ? this.boxes.find(key) : null;
    if (box && edge) this.gesture = { kind: "resize", key, edge, start: p, box };
    else if (box && key === this.boxes.selected) this.gesture = { kind: "move", key, start: p, box };
    // on a box that is not selected: a click selects it, a drag draws a new box (boxes overlap)
    else this.gesture = { kind: "draw", start: p, select: key };
    this.svg.setPointerCapture(e.pointerId);
  }

  moved(p, g = this.gesture) {
    return Math.abs(p.px - g.start.px) >= CLICK_PX || Math.abs(p.py - g.start.py) >= CLICK_PX;
  }

  shape(p, g = this.gesture) {
    if (g.kind === "draw") return { key: "new", labelId: this.getLabel(), ...spanBox(g.start.x, g.start.y, p.x, p.y) };
    if (g.kind === "move") return { ...g.box, ...moveBox(g.box, p.x - g.start.x, p.y - g.start.y), key: g.key };
    return { ...g.box, ...resizeBox(g.box, g.edge, p.x, p.y), key: g.key };
  }

  move(e) {
    if (!this.gesture) return;
    const p = this.point(e);
    if (!this.gesture.active && !this.moved(p)) return;
    this.gesture.active = true;
    this.onLive(this.shape(p));
  }

  up(e) {
    const g = this.gesture;
    if (!g) return;
    const p = this.point(e);
    this.gesture = null;
    if (this.svg.hasPointerCapture(e.pointerId)) this.svg.releasePointerCapture(e.pointerId);
    this.onLive(null);
    if (!g.active && !this.moved(p, g)) {
      if (g.kind === "draw") this.boxes.select(g.select || null); // a click selects a box, or deselects
      return;
    }
    const shape = this.shape(p, g);
    if (g.kind === "draw") {
      if (shape.labelId === null || shape.labelId === undefined) {
        this.onNeedLabel();
        return;
      }
      this.boxes.add(shape.labelId, clampBox(shape));
      return;
    }
    // editing a suggestion accepts it first; the edit is then a change of the accepted box
    if (this.boxes.isSuggestion(g.key)) this.boxes.accept(g.key);
    this.boxes.update(g.key, () => ({ left: shape.left, top: shape.top, width: shape.width, height: shape.height }));
    this.boxes.select(g.key);
  }

  cancel() {
    this.gesture = null;
    this.onLive(null);
  }

  dispose() {
    for (const [type, fn] of Object.entries(this.handlers)) this.svg.removeEventListener(type, fn);
  }
}
