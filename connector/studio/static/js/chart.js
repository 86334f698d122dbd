// A small line chart in SVG (the training loss): points [[x, y], ...], axes with a few ticks.
import { s } from "./dom.js";

export function lineChart(points, { width = 560, height = 200, label = "Loss" } = {}) {
  const pad = { l: 44, r: 12, t: 10, b: 26 };
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": points.length ? `${label} over ${points.length} points, last ${points[points.length - 1][1].toFixed(3)}` : `${label}: no data yet` });
  if (!points.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "Waiting for the first iterations…"));
    return svg;
  }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const y0 = 0;
  const y1 = Math.max(...ys) * 1.05 || 1;
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  for (let i = 0; i <= 4; i += 1) {
    const v = y0 + ((y1 - y0) * i) / 4;
    svg.append(s("line", { class: "grid-line", x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v) }),
      s("text", { x: pad.l - 6, y: Y(v) + 4, "text-anchor": "end" }, v.toFixed(v < 1 ? 2 : 1)));
  }
  svg.append(s("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }),
    s("text", { x: pad.l, y: height - 6 }, String(x0)),
    s("text", { x: width - pad.r, y: height - 6, "text-anchor": "end" }, `iteration ${x1}`));
  const d = points.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
  svg.append(s("path", { class: "line", d }));
  return svg;
}
