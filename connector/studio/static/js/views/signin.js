// Sign in with an API key; also the page a 401 leads to. The page leaves no entry in the history:
// Back after signing in goes to the page before it, and a tab that is signed in and comes to it
// anyway (an old entry, a bookmark) goes on to where it was headed, still signed in.
import * as api from "../api.js";
import { h } from "../dom.js";
import { go } from "../router.js";
import { setKey, clearKey, getKey } from "../session.js";

// Where the sign-in leads: the page it interrupted, or the models.
function leave(query) {
  const back = query.back && query.back.startsWith("/") && !query.back.startsWith("/signin") ? query.back : "/models";
  const [path, search = ""] = back.split("?");
  go(path, Object.fromEntries(new URLSearchParams(search)), { replace: true });
}

export async function signinView(el, params, query) {
  if (getKey()) {
    leave(query);
    return;
  }
  const input = h("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off", spellcheck: "false",
    required: true, "aria-describedby": "api-key-hint" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Sign in");
  const expired = query.reason === "401";
  const form = h("form", { class: "card", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, expired ? "Your API key was not accepted" : "Sign in"),
    expired
      ? h("div", { class: "message error", role: "alert", id: "unauthorized" },
        h("strong", "401 Unauthorized"),
        h("p", "The server did not accept the key this tab was using: it may have been mistyped, changed or revoked. Sign in again with a current key."))
      : h("p", { class: "subtitle" }, "Build, train and publish object-detection models."),
    h("div", { class: "field" },
      h("label", { for: "api-key" }, "API key"), input,
      h("p", { class: "hint", id: "api-key-hint" },
        "The key of this server (odconnect serve writes it to data/api_key). It is kept only in this browser tab and sent only to this server.")),
    error, submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    const key = input.value.trim();
    setKey(key);
    try {
      await api.get("/models");
      leave(query);
    } catch (err) {
      clearKey();
      error.textContent = err.status === 401 ? "That key was not accepted. Check it and try again." : `Could not reach the server: ${err.message}`;
      error.hidden = false;
      input.focus();
      input.select();
    } finally {
      submit.disabled = false;
    }
  });
  el.append(h("div", { class: "page signin" }, form));
  input.focus();
}
