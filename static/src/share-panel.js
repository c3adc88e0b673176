/**
 * The terminal page's spectator links: create one (with an expiry, a label
 * and at most how many uses), copy it, see this agent's links and revoke
 * them. Operators and admins only; the gateway checks that again on every
 * request, and judges the label (its length, no control or bidi
 * characters). A label is drawn as text (textContent), never as markup.
 */
import { postJson } from "./api.js";

/** A link's label as listed: what its creator called it, or that it has none. */
export const labelText = (share) => (typeof share.label === "string" && share.label ? share.label : "no label");

/** How much a link was used, out of how many uses it allows. */
export function usesText(share) {
  if (Number.isInteger(share.max_uses)) return `used ${share.uses} of ${share.max_uses}`;
  return `used ${share.uses} ${share.uses === 1 ? "time" : "times"}, no limit`;
}

/** The create request's body from the form's values (an empty label or max uses is left out). */
export function createBody({ ttlSeconds, label, maxUses }) {
  const body = { ttl_seconds: ttlSeconds };
  if (label.trim()) body.label = label;
  if (maxUses !== "") body.max_uses = Number(maxUses);
  return body;
}

export class SharePanel {
  constructor(agentId, element) {
    this.agentId = agentId;
    this.element = element;
    this.list = element.querySelector("#share-list");
    this.error = element.querySelector("#share-error");
    element.querySelector("#share-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(
        createBody({
          ttlSeconds: Number(element.querySelector("#share-ttl").value),
          label: element.querySelector("#share-label").value,
          maxUses: element.querySelector("#share-max-uses").value,
        }),
      );
    });
  }

  toggle() {
    this.element.hidden = !this.element.hidden;
    if (!this.element.hidden) this.refresh();
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  async create(request) {
    const url = `/api/agents/${encodeURIComponent(this.agentId)}/shares`;
    const { ok, status, body } = await postJson(url, request);
    if (!ok) {
      this.showError(body.message || `could not create a link (${status})`);
      return;
    }
    this.showError("");
    this.element.querySelector("#share-label").value = "";
    // The token is shown once, now: the gateway keeps only its hash.
    this.fresh = body;
    await this.refresh();
  }

  async refresh() {
    const response = await fetch("/api/shares");
    if (!response.ok) {
      this.showError(`could not list links (${response.status})`);
      return;
    }
    const { shares } = await response.json();
    const now = Date.now() / 1000;
    const mine = shares.filter((share) => share.agent === this.agentId && !share.revoked && share.expires_at > now);
    this.list.replaceChildren(...mine.map((share) => this.item(share)));
  }

  item(share) {
    const li = document.createElement("li");
    li.dataset.share = share.id;
    const label = document.createElement("strong");
    label.className = "share-label";
    label.dataset.none = String(labelText(share) !== share.label);
    label.textContent = labelText(share);
    const text = document.createElement("span");
    const until = new Date(share.expires_at * 1000).toLocaleString();
    text.textContent = `by ${share.creator}, until ${until}, ${usesText(share)}`;
    li.append(label, text);
    if (this.fresh?.id === share.id) {
      const url = document.createElement("input");
      url.readOnly = true;
      url.value = this.fresh.url;
      url.className = "share-url";
      url.setAttribute("aria-label", "spectator link");
      const copy = document.createElement("button");
      copy.type = "button";
      copy.textContent = "Copy";
      copy.addEventListener("click", async () => {
        url.select();
        await navigator.clipboard?.writeText(url.value).catch(() => {});
        copy.textContent = "Copied";
      });
      li.append(url, copy);
    }
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.textContent = "Revoke";
    revoke.className = "revoke";
    revoke.addEventListener("click", async () => {
      const response = await fetch(`/api/shares/${encodeURIComponent(share.id)}`, { method: "DELETE" });
      if (!response.ok) this.showError(`could not revoke (${response.status})`);
      await this.refresh();
    });
    li.append(revoke);
    return li;
  }
}
