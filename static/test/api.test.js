import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getJson, me, postJson, session } from "../src/api.js";

/** A fetch that answers `status` with `text` as the body, and records its calls. */
function server(status, text) {
  const calls = [];
  const fetchImpl = async (url, options) => {
    calls.push([url, options]);
    return { ok: status >= 200 && status < 300, status, json: async () => JSON.parse(text) };
  };
  return { calls, fetchImpl };
}

const offline = async () => {
  throw new TypeError("Failed to fetch");
};

describe("me", () => {
  it("is what /api/me says, asked with the session cookie", async () => {
    const { calls, fetchImpl } = server(200, '{"name": "olga", "can_write": true}');
    assert.deepEqual(await me(fetchImpl), { name: "olga", can_write: true });
    assert.deepEqual(calls, [["/api/me", { credentials: "same-origin" }]]);
  });

  it("is null when the gateway cannot say: an error, no network, not JSON", async () => {
    assert.equal(await me(server(401, '{"error": "unauthorized"}').fetchImpl), null);
    assert.equal(await me(offline), null);
    assert.equal(await me(server(200, "<html>").fetchImpl), null);
  });
});

describe("postJson", () => {
  it("posts the body as JSON with the session cookie", async () => {
    const { calls, fetchImpl } = server(200, '{"results": {}}');
    const answer = await postJson("/api/input", { agents: ["a"], data: "ls\r" }, fetchImpl);
    assert.deepEqual(answer, { ok: true, status: 200, body: { results: {} } });
    assert.deepEqual(calls, [
      [
        "/api/input",
        {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: '{"agents":["a"],"data":"ls\\r"}',
        },
      ],
    ]);
  });

  it("hands back the gateway's error object with the status", async () => {
    const { fetchImpl } = server(403, '{"error": "forbidden", "message": "viewers cannot"}');
    assert.deepEqual(await postJson("/api/x", {}, fetchImpl), {
      ok: false,
      status: 403,
      body: { error: "forbidden", message: "viewers cannot" },
    });
  });

  it("reads an answer without a JSON object as an empty one", async () => {
    for (const text of ["", "<html>bad gateway</html>", "null", '"text"']) {
      const { body } = await postJson("/api/x", {}, server(502, text).fetchImpl);
      assert.deepEqual(body, {}, text);
    }
  });

  it("rejects when no answer came, for the caller to judge", async () => {
    await assert.rejects(postJson("/api/x", {}, offline), TypeError);
  });
});

describe("session", () => {
  it("is live with what /api/me says", async () => {
    const { fetchImpl } = server(200, '{"name": "olga"}');
    assert.deepEqual(await session(fetchImpl), { state: "live", me: { name: "olga" } });
  });

  it("is ended on a 401 only: logged out, expired, revoked, or a gateway that forgot it", async () => {
    assert.deepEqual(await session(server(401, '{"error": "unauthorized"}').fetchImpl), { state: "ended", me: null });
    assert.deepEqual(await session(server(401, "<html>").fetchImpl), { state: "ended", me: null });
  });

  it("is unknown when nothing can be said: no network, a 503, a proxy's 502", async () => {
    assert.equal((await session(offline)).state, "unknown");
    assert.equal((await session(server(503, '{"error": "redis_unavailable"}').fetchImpl)).state, "unknown");
    assert.equal((await session(server(502, "<html>").fetchImpl)).state, "unknown");
  });
});

describe("getJson", () => {
  it("answers like postJson, and null without an answer", async () => {
    const { calls, fetchImpl } = server(200, '{"demo": true}');
    assert.deepEqual(await getJson("/api/login", fetchImpl), { ok: true, status: 200, body: { demo: true } });
    assert.deepEqual(calls, [["/api/login", { credentials: "same-origin" }]]);
    assert.equal(await getJson("/api/login", offline), null);
    assert.deepEqual(await getJson("/x", server(404, "null").fetchImpl), { ok: false, status: 404, body: {} });
  });
});
