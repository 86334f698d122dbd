// The boxes of the open image as a list beside it: select one (the keyboard way to reach a box),
// delete a box, accept or reject a suggestion.
import { h, fmt, swatch } from "../dom.js";
import { badge } from "../shell.js";

const UNKNOWN = { name: "?", color: "#767676" };

// boxes: a BoxSet; labels: Map labelId -> {name, color}; onSelect(key) after a box is selected
export function renderBoxList(list, boxes, labels, onSelect) {
  const all = boxes.all();
  list.replaceChildren(...all.map((x) => {
    const info = labels.get(x.labelId) || UNKNOWN;
    const select = h("button", { type: "button", class: "btn subtle small grow", "aria-pressed": String(x.key === boxes.selected) },
      info.name, x.suggested ? ` ${fmt.pct(x.probability)}` : "");
    select.addEventListener("click", () => {
      boxes.select(x.key);
      onSelect(x.key);
    });
    const items = [swatch(info.color), select];
    if (x.suggested) {
      items.push(badge("suggested", "warning"),
        h("button", { type: "button", class: "btn small", "aria-label": `Accept ${info.name}`, onclick: () => boxes.accept(x.key) }, "✓"),
        h("button", { type: "button", class: "btn small", "aria-label": `Reject ${info.name}`, onclick: () => boxes.reject(x.key) }, "✕"));
    } else {
      items.push(h("button", { type: "button", class: "btn small subtle", "aria-label": `Delete ${info.name} box`,
        onclick: () => boxes.remove(x.key) }, "Delete"));
    }
    return h("li", { class: x.key === boxes.selected ? "selected" : "", dataset: { key: x.key, suggested: String(x.suggested) } }, items);
  }));
  if (!all.length) list.append(h("li", { class: "muted" }, "No boxes yet: drag on the image."));
  return { boxes: all.filter((x) => !x.suggested).length, suggestions: all.filter((x) => x.suggested).length };
}
