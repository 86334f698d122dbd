// The drawing layer over the image: an SVG sized to the picture as shown, in screen pixels, so
// that lines and handles keep their size at any zoom. Boxes are solid; suggestions are dashed
// with their probability; the selected box has eight handles.
import { s, clear } from "../dom.js";

const HANDLE = 9;
export const EDGES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

export class DrawLayer {
  constructor(svg, labels) {
    this.svg = svg;
    this.labels = labels; // Map labelId -> {name, color}
    this.width = 1;
    this.height = 1;
  }

  resize(width, height) {
    this.width = Math.max(1, width);
    this.height = Math.max(1, height);
    this.svg.setAttribute("viewBox", `0 0 ${this.width} ${this.height}`);
  }

  // boxes: [{key, labelId, left, top, width, height, suggested, probability}], live: a box being
  // drawn or dragged (drawn instead of the one with its key).
  render(boxes, selected, live) {
    clear(this.svg);
    const shown = live ? boxes.filter((b) => b.key !== live.key) : boxes;
    // suggestions under approved boxes; the selected box on top, where its handles can be grabbed
    const order = [...shown].sort((a, b) => (a.suggested === b.suggested ? 0 : a.suggested ? -1 : 1));
    for (const b of order) if (b.key !== selected) this.svg.append(this.box(b, false));
    const sel = shown.find((b) => b.key === selected);
    if (sel) this.svg.append(this.box(sel, true));
    if (live) this.svg.append(this.box({ ...live, drawing: true }, live.key === selected));
  }

  box(b, selected) {
    const label = this.labels.get(b.labelId) || { name: "?", color: "#767676" };
    const x = b.left * this.width;
    const y = b.top * this.height;
    const w = b.width * this.width;
    const h = b.height * this.height;
    const text = b.suggested && b.probability !== null && b.probability !== undefined
      ? `${label.name} ${Math.round(b.probability * 100)}%` : label.name;
    const g = s("g", {
      class: ["box", selected && "selected", b.suggested && "suggested", b.drawing && "drawing"],
      dataset: { key: b.key },
    });
    g.append(s("rect", { class: "frame", x, y, width: w, height: h, stroke: label.color, dataset: { key: b.key } }));
    // the label tag sits above the box, or inside it at the top edge of the image
    const tagW = Math.max(24, text.length * 7 + 10);
    const tagY = y >= 18 ? y - 18 : y;
    g.append(s("g", { class: "tag", dataset: { key: b.key } },
      s("rect", { x, y: tagY, width: tagW, height: 18, rx: 2, fill: label.color }),
      s("text", { x: x + 5, y: tagY + 13 }, text)));
    if (selected && !b.suggested) {
      for (const edge of EDGES) {
        const hx = x + (edge.includes("w") ? 0 : edge.includes("e") ? w : w / 2);
        const hy = y + (edge.includes("n") ? 0 : edge.includes("s") ? h : h / 2);
        g.append(s("rect", { class: `handle ${edge}`, x: hx - HANDLE / 2, y: hy - HANDLE / 2, width: HANDLE, height: HANDLE,
          dataset: { key: b.key, edge } }));
      }
    }
    return g;
  }
}
