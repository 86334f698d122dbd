// The labels of the labeling page: a list with each label's 1-9 key, a filter that narrows it as
// you type (Enter picks the first match, Esc clears it), and the label that new boxes get.
import { h, swatch } from "../dom.js";

export class LabelPicker {
  // labels: [{id, name, index, color}]; onPick(labelId) when one is picked; onLeave() when the
  // filter hands the keyboard back
  constructor(labels, current, { onPick, onLeave }) {
    this.labels = labels;
    this.current = current;
    this.onPick = onPick;
    this.onLeave = onLeave;
    this.filter = h("input", { type: "search", id: "label-filter", placeholder: "Type to filter", autocomplete: "off",
      "aria-label": "Filter labels", "aria-controls": "label-list" });
    this.list = h("ul", { class: "label-list", id: "label-list", "aria-label": "Labels" });
    this.filter.addEventListener("input", () => this.render());
    this.filter.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== "Escape") return;
      e.preventDefault();
      const first = this.visible()[0];
      this.filter.value = "";
      if (e.key === "Enter" && first) this.pick(first.id);
      else this.render();
      this.onLeave();
    });
    this.render();
  }

  visible() {
    const q = this.filter.value.trim().toLowerCase();
    return this.labels.filter((l) => !q || l.name.toLowerCase().includes(q));
  }

  // Start filtering with the key the maker typed.
  type(key) {
    this.filter.focus();
    this.filter.value = key;
    this.render();
  }

  pick(labelId) {
    this.current = labelId;
    this.render();
    this.onPick(labelId);
  }

  render() {
    const shown = this.visible();
    this.list.replaceChildren(...shown.map((l) => {
      const key = l.index < 9 ? String(l.index + 1) : "";
      const b = h("button", { type: "button", "aria-pressed": String(l.id === this.current), dataset: { labelId: l.id },
        "aria-keyshortcuts": key || undefined }, h("span", { class: "key" }, key), swatch(l.color), l.name);
      b.addEventListener("click", () => this.pick(l.id));
      return h("li", b);
    }));
    if (!shown.length) this.list.append(h("li", { class: "muted" }, "No label matches."));
  }
}
