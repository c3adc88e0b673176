/**
 * The login form: POST /api/login as JSON, then go where the user was headed.
 * The session cookie is HttpOnly; this page never sees it.
 */
import "./login.css";

import { getJson, postJson } from "./api.js";
import { safeNext } from "./protocol.js";

const form = document.getElementById("login");
const error = document.getElementById("error");
const hint = document.getElementById("hint");

// How one logs in here: the demo's admin only through the one-time link
// `make run` prints (its password is random), so the page says so, and
// offers no form where nobody has a password.
getJson("/api/login").then((answer) => {
  if (!answer?.ok) return;
  if (answer.body.hint) {
    hint.textContent = answer.body.hint;
    hint.hidden = false;
  }
  if (answer.body.password === false) form.hidden = true;
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  error.hidden = true;
  try {
    const { ok, status, body } = await postJson("/api/login", {
      username: form.username.value,
      password: form.password.value,
    });
    if (ok) {
      location.assign(safeNext(location.search, location.origin));
      return;
    }
    error.textContent = body.message || `login failed (${status})`;
  } catch {
    error.textContent = "the gateway is unreachable";
  } finally {
    button.disabled = false;
  }
  error.hidden = false;
  form.password.select();
});
