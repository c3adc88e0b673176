import assert from "node:assert/strict";
import { test } from "node:test";

import { commandInput, describeResult, sendCommand } from "../src/command.js";

const answer = (status, body) => async () => ({ ok: status < 300, status, json: async () => body });

test("a command is the line and Enter", () => {
  assert.equal(commandInput("git status"), "git status\r");
});

test("one agent: its own endpoint; refusals become that agent's result", async () => {
  const calls = [];
  const fetchImpl = async (url, options) => {
    calls.push([url, JSON.parse(options.body)]);
    return answer(503, { error: "unavailable", message: "agent terminal is reconnecting" })();
  };
  const results = await sendCommand(["a/b"], "ls", fetchImpl);
  assert.deepEqual(calls, [["/api/agents/a%2Fb/input", { data: "ls\r" }]]);
  assert.deepEqual(results, {
    "a/b": { ok: false, error: "unavailable", message: "agent terminal is reconnecting" },
  });
  assert.equal(describeResult(results["a/b"]), "agent terminal is reconnecting");
});

test("several agents: one request, answered per agent", async () => {
  const results = await sendCommand(
    ["x", "y"],
    "make test",
    answer(200, { results: { x: { ok: true, sent: 10 }, y: { ok: false, error: "read_only", message: "watch only" } } }),
  );
  assert.equal(describeResult(results.x), "sent");
  assert.equal(describeResult(results.y), "watch only");
  const refused = await sendCommand(["x", "y"], "ls", answer(400, { error: "bad_request", message: "too many" }));
  assert.deepEqual(Object.keys(refused), ["x", "y"]);
  assert.equal(refused.y.message, "too many");
  const offline = await sendCommand(["x"], "ls", async () => {
    throw new TypeError("Failed to fetch");
  });
  assert.equal(offline.x.error, "network");
});

test("a bare line is typed without Enter", async () => {
  assert.equal(commandInput("y", false), "y");
  const calls = [];
  const fetchImpl = async (url, options) => {
    calls.push(JSON.parse(options.body));
    return answer(200, { ok: true })();
  };
  await sendCommand(["a"], "echo ", fetchImpl, { enter: false });
  await sendCommand(["a"], "ls", fetchImpl);
  assert.deepEqual(calls, [{ data: "echo " }, { data: "ls\r" }]);
});
