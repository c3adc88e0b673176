/**
 * The terminal page's spectator links: create one (with an expiry), copy it,
 * see this agent's links and revoke them. Operators and admins only; the
 * gateway checks that again on every request.
 */
import { postJson } from "./api.js";

export class SharePanel {
  constructor(agentId, element) {
    this.agentId = agentId;
    this.element = element;
    this.list = element.querySelector("#share-list");
    this.error = element.querySelector("#share-error");
    element.querySelector("#share-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(Number(element.querySelector("#share-ttl").value));
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

  async create(ttlSeconds) {
    const url = `/api/agents/${encodeURIComponent(this.agentId)}/shares`;
    const { ok, status, body } = await postJson(url, { ttl_seconds: ttlSeconds });
    if (!ok) {
      this.showError(body.message || `could not create a link (${status})`);
      return;
    }
    this.showError("");
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
    const text = document.createElement("span");
    const until = new Date(share.expires_at * 1000).toLocaleString();
    text.textContent = `by ${share.creator}, until ${until}, used ${share.uses}×`;
    li.append(text);
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
