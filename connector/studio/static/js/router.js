// Hash routes (#/models/3/images?label=fork): the page never reloads, back and forward work, and
// the address says where you are. A view is `async (el, params, query, ctx) => cleanup?`,
// exported by name from a module under views/.
const routes = [];
let current = null;
let onRoute = () => {};

export function route(pattern, view, exportName, options = {}) {
  const names = [];
  const regex = new RegExp("^" + pattern.replace(/:(\w+)/g, (_, n) => (names.push(n), "([^/]+)")) + "$");
  routes.push({ regex, names, view, exportName, options, pattern });
}

export function parse(hash) {
  const raw = (hash || "").replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

export function href(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const qs = q.toString();
  return `#${path}${qs ? "?" + qs : ""}`;
}

export function go(path, query, { replace = false } = {}) {
  const target = href(path, query);
  if (replace) history.replaceState(null, "", target);
  else if (location.hash !== target) {
    location.hash = target;
    return; // hashchange renders
  }
  render();
}

// Change the query of the current route without rendering again (filters, page numbers).
export function setQuery(query) {
  const { path } = parse(location.hash);
  history.replaceState(null, "", href(path, query));
}

export function afterRoute(fn) {
  onRoute = fn;
}

export async function render() {
  const { path, query } = parse(location.hash);
  if (current && current.cleanup) {
    try {
      current.cleanup();
    } catch (e) {
      console.error(e);
    }
  }
  current = null;
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (!m) continue;
    const params = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
    const token = {};
    current = token;
    await onRoute(r, params, query, token);
    return;
  }
  go("/models", {}, { replace: true });
}

export function isCurrent(token) {
  return current === token;
}

export function setCleanup(token, cleanup) {
  if (current === token) token.cleanup = cleanup;
  else if (cleanup) cleanup(); // the user navigated away before the view finished loading
}

export function start() {
  window.addEventListener("hashchange", render);
  render();
}
