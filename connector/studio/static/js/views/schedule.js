// The retraining schedule: when the model retrains on new data, and what the last firing did.
import * as api from "../api.js";
import { h, field, fmt } from "../dom.js";
import { render } from "../router.js";
import { pageHeader, card, badge, confirmAction } from "../shell.js";
import { toast, toastError } from "../toast.js";

const EXAMPLES = [
  ["0 2 * * *", "every night at 02:00 UTC"],
  ["0 3 * * 1", "every Monday at 03:00 UTC"],
  ["0 */6 * * *", "every six hours"],
];

export async function scheduleView(el, params, query, ctx) {
  const m = ctx.model;
  const path = `${api.paths.model(m.id)}/schedule`;
  const schedule = await api.get(path).catch((err) => (err.status === 404 ? null : Promise.reject(err)));
  if (!ctx.current()) return;
  const cron = h("input", { type: "text", id: "cron", required: true, value: schedule?.cron || "0 2 * * *", autocomplete: "off", spellcheck: "false" });
  const onlyNew = h("input", { type: "checkbox", id: "only-new", checked: schedule ? schedule.onlyIfNewData : true });
  const enabled = h("input", { type: "checkbox", id: "enabled", checked: schedule ? schedule.enabled : true });
  const save = h("button", { type: "submit", class: "btn primary", id: "save-schedule" }, schedule ? "Save" : "Schedule");
  const remove = h("button", { type: "button", class: "btn", id: "delete-schedule", hidden: !schedule }, "Delete schedule");
  const form = h("form", { class: "form-narrow", "aria-label": "Retraining schedule" },
    field("Cron (UTC)", cron, "Five fields: minute hour day month weekday."),
    h("p", { class: "hint examples" }, "Examples: ", EXAMPLES.map(([c, text], i) => [i ? "; " : "",
      h("button", { type: "button", class: "btn subtle small", onclick: () => (cron.value = c) }, h("code", c)), ` ${text}`])),
    h("div", { class: "check" }, onlyNew, h("label", { for: "only-new" }, "Only when the training data changed")),
    h("div", { class: "check" }, enabled, h("label", { for: "enabled" }, "Enabled")),
    h("div", { class: "inline" }, save, remove));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.put(path, { cron: cron.value.trim(), onlyIfNewData: onlyNew.checked, enabled: enabled.checked });
      toast("Schedule saved.", "success");
      render();
    } catch (err) {
      toastError(err, "Not saved");
    }
  });
  remove.addEventListener("click", async () => {
    if (!(await confirmAction("Delete the schedule?", "The model stops retraining by itself.", "Delete"))) return;
    try {
      await api.del(path);
      toast("Schedule deleted.", "success");
      render();
    } catch (err) {
      toastError(err, "Not deleted");
    }
  });
  el.append(h("div", { class: "page" },
    pageHeader("Schedule", { subtitle: "Retrain on new data on a schedule; publishing stays your decision." }),
    h("div", { class: "columns" },
      card("Retraining schedule", form),
      card("State", schedule
        ? h("dl", { class: "kv", id: "schedule-state" },
          h("dt", "State"), h("dd", schedule.enabled ? badge("enabled", "success") : badge("paused")),
          h("dt", "Next run"), h("dd", fmt.date(schedule.nextRun), h("span", { class: "muted" }, " (your time)")),
          h("dt", "Last fired"), h("dd", fmt.date(schedule.lastFired)),
          h("dt", "Last outcome"), h("dd", schedule.lastOutcome || "–"))
        : h("p", { class: "muted", id: "schedule-state" }, "No schedule: the model retrains only when you start it.")))));
}
