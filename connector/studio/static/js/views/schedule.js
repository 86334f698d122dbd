// The retraining schedule: when the model retrains on new data, whether the new version is
// published (the promotion gate), and the last firings with what the gate decided.
import * as api from "../api.js";
import { h, field, fmt } from "../dom.js";
import { render } from "../router.js";
import { pageHeader, card, badge, confirmAction } from "../shell.js";
import { toast, toastError } from "../toast.js";

const POLICIES = [["never", "Never"], ["ifBetter", "If better"], ["always", "Always"]];
const POLICY_HINT = "Never: you publish. If better: when it beats the published version, scored on the same images, " +
  "by more than the margin. Always: every new version.";
const OUTCOMES = { published: "success", kept: "brand", trained: "neutral", skipped: "neutral", training: "warning", failed: "danger" };
const TRIGGERS = { schedule: "schedule", api: "train with policy", retrain: "retrain with policy" };

const EXAMPLES = [
  ["0 2 * * *", "every night at 02:00 UTC"],
  ["0 3 * * 1", "every Monday at 03:00 UTC"],
  ["0 */6 * * *", "every six hours"],
];

// [the schedule (null: none), its last 20 firings]
function fetchState(path) {
  return Promise.all([
    api.get(path).catch((err) => (err.status === 404 ? null : Promise.reject(err))),
    api.get(`${path}/history`, { limit: 20 }),
  ]);
}

export async function scheduleView(el, params, query, ctx) {
  const m = ctx.model;
  const path = `${api.paths.model(m.id)}/schedule`;
  const [schedule, history] = await fetchState(path);
  if (!ctx.current()) return;
  const cron = h("input", { type: "text", id: "cron", required: true, value: schedule?.cron || "0 2 * * *", autocomplete: "off", spellcheck: "false" });
  const onlyNew = h("input", { type: "checkbox", id: "only-new", checked: schedule ? schedule.onlyIfNewData : true });
  const enabled = h("input", { type: "checkbox", id: "enabled", checked: schedule ? schedule.enabled : true });
  const publish = h("select", { id: "publish" }, POLICIES.map(([v, text]) => h("option", { value: v, selected: v === (schedule?.publish || "never") }, text)));
  const margin = h("input", { type: "number", id: "publish-margin", min: -100, max: 100, step: "any", value: String(schedule?.publishMargin ?? 0) });
  const marginField = field("Margin (score points)", margin);
  const showMargin = () => marginField.classList.toggle("dim", publish.value !== "ifBetter");
  publish.addEventListener("change", showMargin);
  showMargin();
  const save = h("button", { type: "submit", class: "btn primary", id: "save-schedule" }, schedule ? "Save" : "Schedule");
  const remove = h("button", { type: "button", class: "btn", id: "delete-schedule", hidden: !schedule }, "Delete schedule");
  const form = h("form", { class: "form-narrow", "aria-label": "Retraining schedule" },
    field("Cron (UTC)", cron, "Five fields: minute hour day month weekday."),
    h("p", { class: "hint examples" }, "Examples: ", EXAMPLES.map(([c, text], i) => [i ? "; " : "",
      h("button", { type: "button", class: "btn subtle small", onclick: () => (cron.value = c) }, h("code", c)), ` ${text}`])),
    h("div", { class: "check" }, onlyNew, h("label", { for: "only-new" }, "Only when the training data changed")),
    field("Publish the new version", publish, POLICY_HINT),
    marginField,
    h("div", { class: "check" }, enabled, h("label", { for: "enabled" }, "Enabled")),
    h("div", { class: "inline" }, save, remove));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.put(path, { cron: cron.value.trim(), onlyIfNewData: onlyNew.checked, enabled: enabled.checked,
        publish: publish.value, publishMargin: Number(margin.value) || 0 });
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
    pageHeader("Schedule", { subtitle: "Retrain on new data on a schedule; publish the new version only if you say so." }),
    h("div", { class: "columns" },
      card("Retraining schedule", form),
      card("State", stateList(schedule))),
    card("Last firings", historyTable(history))));
  follow(el, path, schedule, history, ctx);
}

// The state card and the table follow new firings (next run, last fired, last outcome) and the
// runs still training until the gate decides, while the page is shown: more often while a run
// trains. The form is left alone: the maker may be editing it.
function follow(el, path, schedule, entries, ctx) {
  const wait = entries.some((e) => e.outcome === "training") ? 3000 : 10000;
  setTimeout(async () => {
    if (!ctx.current()) return;
    let fresh = entries, state = schedule;
    try {
      [state, fresh] = await fetchState(path);
    } catch {
      // a failed refresh keeps what is shown and tries again
    }
    if (!ctx.current()) return;
    const shownState = el.querySelector("#schedule-state");
    if (shownState && JSON.stringify(state) !== JSON.stringify(schedule)) shownState.replaceWith(stateList(state));
    const shown = el.querySelector("#schedule-history");
    if (shown && JSON.stringify(fresh) !== JSON.stringify(entries)) {
      (shown.closest(".table-wrap") || shown).replaceWith(historyTable(fresh));
    }
    follow(el, path, state, fresh, ctx);
  }, wait);
}

function stateList(schedule) {
  if (!schedule) return h("p", { class: "muted", id: "schedule-state" }, "No schedule: the model retrains only when you start it.");
  return h("dl", { class: "kv", id: "schedule-state" },
    h("dt", "State"), h("dd", schedule.enabled ? badge("enabled", "success") : badge("paused")),
    h("dt", "Next run"), h("dd", fmt.date(schedule.nextRun), h("span", { class: "muted" }, " (your time)")),
    h("dt", "Last fired"), h("dd", { class: "last-fired" }, fmt.date(schedule.lastFired)),
    h("dt", "Publish"), h("dd", (POLICIES.find(([v]) => v === schedule.publish) || [, schedule.publish])[1] +
      (schedule.publish === "ifBetter" ? ` (margin ${schedule.publishMargin})` : "")),
    h("dt", "Last outcome"), h("dd", { class: "last-outcome" }, schedule.lastOutcome || "–"));
}

function score(v) {
  return v === null || v === undefined ? "–" : fmt.score(v);
}

// Each firing or gated run: when, what started it, the outcome, the new version's score against
// the published one's on the same images, and the gate's own words.
function historyTable(entries) {
  if (!entries.length) {
    return h("p", { class: "muted", id: "schedule-history" },
      "No firing yet. Each firing of the schedule, and each run trained with a publish policy, is listed here with what the gate decided.");
  }
  return h("div", { class: "table-wrap" }, h("table", { class: "table history", id: "schedule-history" },
    h("thead", h("tr", h("th", "Fired"), h("th", "Trigger"), h("th", "Outcome"),
      h("th", { class: "num", title: "The version the run made, its score and the difference" }, "New version"),
      h("th", { class: "num", title: "The published version it was compared with, scored on the same images" }, "Published"),
      h("th", "Why"))),
    h("tbody", entries.map((e) => h("tr", { dataset: { outcome: e.outcome, entryId: e.id } },
      h("td", { title: e.scheduledFor ? `scheduled for ${fmt.date(e.scheduledFor)}` : "" }, fmt.date(e.firedAt)),
      h("td", TRIGGERS[e.trigger] || e.trigger,
        h("div", { class: "muted" }, `publish: ${((POLICIES.find(([v]) => v === e.publish) || [, e.publish])[1]).toLowerCase()}`)),
      h("td", { class: "outcome" }, badge(e.outcome, OUTCOMES[e.outcome] || "neutral")),
      h("td", { class: "num" }, e.version ? `v${e.version} · ` : "", h("span", { class: "new-score" }, score(e.newScore),
        e.newScore !== null && e.publishedScore !== null ? delta(e.newScore - e.publishedScore) : null)),
      h("td", { class: "num" }, e.publishedVersion ? `v${e.publishedVersion} · ` : "",
        h("span", { class: "published-score" }, score(e.publishedScore))),
      h("td", { class: "detail" }, e.detail || "–",
        e.comparedOn ? h("div", { class: "muted" }, `compared on ${e.comparedOn.images} ${e.comparedOn.source === "heldOut" ? "held-out" : "evaluation"} images`) : null))))));
}

function delta(d) {
  const r = Math.round(d * 10) / 10;
  return h("span", { class: `delta ${r > 0 ? "up" : r < 0 ? "down" : ""}` }, ` ${r > 0 ? "+" : r < 0 ? "" : "±"}${r.toFixed(1)}`);
}
