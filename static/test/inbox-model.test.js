import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ACTIVITY_WORDS,
  Notifier,
  activityWord,
  age,
  answerPath,
  describeAnswer,
  inboxItems,
  promptButtons,
} from "../src/inbox-model.js";

const PROMPT = {
  kind: "command",
  question: "Do you want to proceed?",
  subject: "python3 hello.py",
  fingerprint: "3f0c9a6e1b2d4c58",
  options: [
    { n: 1, label: "Yes", role: "approve_once", key: "1" },
    { n: 2, label: "Yes, and don’t ask again", role: "approve_always", key: "2" },
    { n: 3, label: "No", role: "deny", key: "esc" },
    { n: 4, label: "Chat about this", role: "other", key: "4" },
  ],
};
const agent = (id, state, extra = {}) => ({ id, state, state_since: 0, unread: false, viewers: 0, prompt: null, ...extra });

test("every state the gateway reports has its own word", () => {
  // gateway/awareness/profile.py STATES
  for (const state of ["starting", "working", "waiting_approval", "waiting_input", "setup_required",
    "idle", "errored", "exited", "unknown"]) {
    assert.ok(ACTIVITY_WORDS[state], state);
  }
  assert.equal(activityWord(agent("a", "idle", { unread: true })), "idle · new");
  assert.equal(activityWord(agent("a", "__proto__")), "__proto__");
});

test("the inbox holds who waits, the longest waiting first; read idle agents are not in it", () => {
  const agents = [
    agent("late", "waiting_approval", { state_since: 30 }),
    agent("busy", "working", { state_since: 1 }),
    agent("done", "idle", { state_since: 5, unread: true }),
    agent("seen", "idle", { state_since: 2 }),
    agent("gone", "exited", { state_since: 10 }),
    agent("broke", "errored", { state_since: 10 }),
  ];
  assert.deepEqual(inboxItems(agents).map((a) => a.id), ["done", "broke", "gone", "late"]);
});

test("ages read as a person says them", () => {
  assert.equal(age(100, 112.4), "12 s");
  assert.equal(age(0, 190), "3 min");
  assert.equal(age(0, 7300), "2 h");
  assert.equal(age(null, 5), "");
  assert.equal(age(10, 5), "0 s"); // a clock a little behind is not negative
});

test("buttons answer by number, the one they say; an option without a key has none", () => {
  const plan = { ...PROMPT, options: [...PROMPT.options, { n: 10, label: "Tenth", role: "other", key: "" }] };
  assert.deepEqual(
    promptButtons(plan).map((b) => b.body),
    [1, 2, 3, 4].map((n) => ({ action: "option", n })),
  );
  assert.deepEqual(promptButtons(null), []);
  assert.equal(answerPath("a/b", "f"), "/api/agents/a%2Fb/prompt/f/answer");
});

test("answers and refusals read plainly", () => {
  assert.equal(describeAnswer(200, { result: "verified" }), "answered");
  assert.match(describeAnswer(200, { result: "unverified" }), /still there/);
  assert.match(describeAnswer(409, { error: "input_race" }), /typed/);
  assert.equal(describeAnswer(500, { message: "boom" }), "boom");
  assert.equal(describeAnswer(502, null), "failed (502)");
});

test("a notification per prompt, none while watched, one for a burst across the fleet", () => {
  const notifier = new Notifier();
  notifier.note(agent("a", "waiting_approval", { prompt: PROMPT }));
  notifier.note(agent("a", "waiting_approval", { prompt: PROMPT })); // the same prompt again
  assert.deepEqual(notifier.take(), { title: "a: waiting for approval", body: PROMPT.question, tag: "a" });
  assert.equal(notifier.take(), null);
  notifier.note(agent("a", "waiting_approval", { prompt: PROMPT })); // still the same: nothing
  assert.equal(notifier.take(), null);
  notifier.note(agent("b", "errored"));
  notifier.note(agent("c", "exited"));
  notifier.note(agent("w", "waiting_input", { viewers: 1 })); // someone is on it
  const burst = notifier.take();
  assert.equal(burst.title, "2 agents need you");
  assert.equal(burst.body, "b: error\nc: exited");
  // Once it left the state, the same prompt coming back is news again.
  notifier.note(agent("a", "working"));
  notifier.note(agent("a", "waiting_approval", { prompt: PROMPT }));
  assert.equal(notifier.take().tag, "a");
});
