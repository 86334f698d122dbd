// The API client: every call goes to this page's own origin under /api/v1 with the key in the
// X-API-Key header. Errors come back as ApiError with the server's problem+json detail; a 401
// ends the session (the key was wrong or revoked) and shows the sign-in page.
import { getKey, clearKey } from "./session.js";

export const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, title, detail, body) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.body = body || {};
  }
}

let onUnauthorized = () => {};
export function handleUnauthorized(fn) {
  onUnauthorized = fn;
}

// Only paths (never absolute URLs) are accepted, so the key cannot leave this origin.
export function url(path, query) {
  if (!path.startsWith("/") || path.startsWith("//")) throw new Error(`not an API path: ${path}`);
  const u = new URL(BASE + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

// A Location header (absolute or not) as a path under /api/v1 of this origin.
export function apiPath(location) {
  const u = new URL(location, window.location.origin);
  // Only the path is kept: behind a proxy the server may name another host, and the key stays here.
  if (!u.pathname.startsWith(BASE + "/")) throw new Error(`not an API location: ${location}`);
  return u.pathname.slice(BASE.length) + u.search;
}

function headers(extra) {
  return { "X-API-Key": getKey(), ...extra };
}

async function problem(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(response.status, body.title || response.statusText, body.detail, body);
}

// fetch + the key; throws ApiError for any status >= 400.
export async function send(method, path, { json, body, query, accept, signal, contentType, keepalive = false } = {}) {
  const h = headers(accept ? { Accept: accept } : {});
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (contentType) {
    h["Content-Type"] = contentType;
  }
  // keepalive (the request outlives the page) only for small bodies: browsers refuse it past 64 KiB
  keepalive = keepalive && (body === undefined || (typeof body === "string" && body.length < 60000));
  const response = await fetch(url(path, query), {
    method, body, headers: h, signal, keepalive, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
  });
  if (response.status === 401) {
    clearKey();
    onUnauthorized();
    throw await problem(response);
  }
  if (!response.ok) throw await problem(response);
  return response;
}

async function asJson(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : null;
}

export const get = (path, query, opts = {}) => send("GET", path, { ...opts, query }).then(asJson);
export const post = (path, json, opts = {}) => send("POST", path, { ...opts, json }).then(asJson);
export const put = (path, json, opts = {}) => send("PUT", path, { ...opts, json }).then(asJson);
export const patch = (path, json, opts = {}) => send("PATCH", path, { ...opts, json }).then(asJson);
export const del = (path, opts = {}) => send("DELETE", path, opts).then(asJson);

// An accepted (202) call: its body and where to poll.
export async function start(path, json) {
  const r = await send("POST", path, { json });
  return { body: await asJson(r), location: r.headers.get("Location") };
}

// GET a 202-until-done resource once: {done, body, retryAfter (seconds)}.
export async function pollOnce(path, signal) {
  const r = await send("GET", path, { signal });
  const retryAfter = Number(r.headers.get("Retry-After")) || 1;
  return { done: r.status !== 202, body: await r.json(), retryAfter };
}

// Bytes that need the key (images, zips), with the browser's HTTP cache allowed.
export async function blob(path, query, signal) {
  const response = await fetch(url(path, query), {
    headers: headers(), signal, credentials: "omit", referrerPolicy: "no-referrer",
  });
  if (response.status === 401) {
    clearKey();
    onUnauthorized();
  }
  if (!response.ok) throw await problem(response);
  return response.blob();
}

// Uploads with progress events (fetch has none for request bodies), one FormData per call.
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path));
    xhr.setRequestHeader("X-API-Key", getKey());
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "Network error", "the upload did not reach the server"));
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status === 401) {
        clearKey();
        onUnauthorized();
      }
      if (xhr.status >= 400) reject(new ApiError(xhr.status, body.title, body.detail, body));
      else resolve(body);
    };
    xhr.send(form);
  });
}

// The model's paths in one place.
export const paths = {
  model: (m) => `/models/${encodeURIComponent(m)}`,
  dataset: (m, d) => `/models/${encodeURIComponent(m)}/datasets/${d}`,
  image: (m, d, i) => `/models/${encodeURIComponent(m)}/datasets/${d}/images/${i}`,
};
