/**
 * The login form: POST /api/login as JSON, then go where the user was headed.
 * The session cookie is HttpOnly; this page never sees it.
 */
import "./login.css";

import { postJson } from "./api.js";
import { safeNext } from "./protocol.js";

const form = document.getElementById("login");
const error = document.getElementById("error");

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
