import assert from "node:assert/strict";
import { test } from "node:test";

import { createBody, labelText, usesText } from "../src/share-panel.js";

test("a link is listed by its label, or says it has none", () => {
  assert.equal(labelText({ label: "for Bob" }), "for Bob");
  assert.equal(labelText({ label: null }), "no label");
  assert.equal(labelText({}), "no label");
  // What the gateway answers is shown as it is (textContent draws it as text).
  assert.equal(labelText({ label: "<img src=x onerror=alert(1)>" }), "<img src=x onerror=alert(1)>");
});

test("uses are shown out of the maximum, or as unlimited", () => {
  assert.equal(usesText({ uses: 0, max_uses: 1 }), "used 0 of 1");
  assert.equal(usesText({ uses: 3, max_uses: 20 }), "used 3 of 20");
  assert.equal(usesText({ uses: 0, max_uses: null }), "used 0 times, no limit");
  assert.equal(usesText({ uses: 1, max_uses: null }), "used 1 time, no limit");
});

test("the create request leaves out an empty label and no limit", () => {
  assert.deepEqual(createBody({ ttlSeconds: 900, label: "  ", maxUses: "" }), { ttl_seconds: 900 });
  assert.deepEqual(createBody({ ttlSeconds: 3600, label: "for Bob", maxUses: "5" }), {
    ttl_seconds: 3600,
    label: "for Bob",
    max_uses: 5,
  });
});
