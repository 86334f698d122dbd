// Start-up: the routes, the sign-in gate, and the model frame around model pages. Views load on
// first use (dynamic import), so the first page needs only the few core modules.
import * as api from "./api.js";
import { h, clear } from "./dom.js";
import { route, start, go, afterRoute, isCurrent, setCleanup, parse } from "./router.js";
import { getKey, clearKey } from "./session.js";
import { setTop, sideNav, spinner } from "./shell.js";
import { toastError } from "./toast.js";
import { helpDialog } from "./keys.js";

// pattern, module under views/, its export, options (page: the model's left-navigation entry)
route("/signin", "signin.js", "signinView", { public: true });
route("/models", "models.js", "modelsView", { top: "models" });
route("/connector", "connector.js", "connectorView", { top: "connector" });
route("/models/:m", "images.js", "imagesView", { page: "images" });
route("/models/:m/images", "images.js", "imagesView", { page: "images" });
route("/models/:m/images/:image", "label.js", "labelView", { page: "images" });
route("/models/:m/data-check", "datacheck.js", "dataCheckView", { page: "data-check" });
route("/models/:m/train", "train.js", "trainView", { page: "train" });
route("/models/:m/performance", "performance.js", "performanceView", { page: "performance" });
route("/models/:m/versions", "versions.js", "versionsView", { page: "versions" });
route("/models/:m/quick-test", "quicktest.js", "quickTestView", { page: "quick-test" });
route("/models/:m/predictions", "predictions.js", "predictionsView", { page: "predictions" });
route("/models/:m/schedule", "schedule.js", "scheduleView", { page: "schedule" });
route("/models/:m/settings", "settings.js", "settingsView", { page: "settings" });

const main = document.getElementById("main");

api.handleUnauthorized(() => {
  const { path } = parse(location.hash);
  // in place of the page that failed: signing in again brings it back, with no sign-in page behind it
  if (path !== "/signin") go("/signin", { reason: "401", back: location.hash.slice(1) }, { replace: true });
});

afterRoute(async (r, params, query, token) => {
  const options = r.options;
  if (!options.public && !getKey()) {
    go("/signin", { back: location.hash.slice(1) }, { replace: true });
    return;
  }
  setTop(options.top || (params.m ? "models" : null), !options.public);
  let model = null;
  // a view that takes a moment (the first /presets loads the training library) says so
  const loader = h("p", { class: "page loading", role: "status" }, spinner(), " Loading…");
  const slow = setTimeout(() => isCurrent(token) && main.prepend(loader), 150);
  try {
    const mod = await import(`./views/${r.view}`);
    if (params.m) {
      model = await api.get(api.paths.model(params.m));
      if (!isCurrent(token)) return;
      sideNav(model, options.page);
    } else {
      sideNav(null);
    }
    if (!isCurrent(token)) return;
    clear(main);
    const ctx = { token, model, current: () => isCurrent(token) };
    const cleanup = await mod[r.exportName](main, params, query, ctx);
    clearTimeout(slow);
    loader.remove();
    performance.mark("studio:view-ready", { detail: r.pattern }); // read by bench/studio_bench.py
    setCleanup(token, cleanup);
    if (isCurrent(token)) document.title = `${(main.querySelector("h1") || {}).textContent || "Studio"} · odconnect studio`;
  } catch (err) {
    clearTimeout(slow);
    loader.remove();
    if (!isCurrent(token) || err.status === 401) return;
    clear(main);
    main.append(h("div", { class: "page" }, h("div", { class: "message error", role: "alert" },
      h("strong", err.status === 404 ? "Not found" : "Something went wrong"), h("p", err.message),
      h("p", h("a", { href: "#/models" }, "Back to models")))));
    if (err.status !== 404) toastError(err);
  }
});

document.getElementById("signout-button").addEventListener("click", () => {
  clearKey();
  go("/signin");
});
document.getElementById("shortcuts-button").addEventListener("click", helpDialog);
document.addEventListener("keydown", (e) => {
  const t = e.target;
  const typing = t instanceof HTMLElement && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
  if (e.key === "?" && !typing && !document.querySelector("dialog[open]")) {
    e.preventDefault();
    helpDialog();
  }
});

start();
