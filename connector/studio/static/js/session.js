// The API key of this browser tab. sessionStorage: it survives a reload, ends with the tab, and
// is never put in a URL or a log.
const KEY = "odconnect.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(value) {
  sessionStorage.setItem(KEY, value);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}
