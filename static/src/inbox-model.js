/**
 * The attention inbox, without the DOM: which agents wait for someone, the
 * words for what each is doing, and when to notify.
 *
 * What an agent is doing (`state`, from gateway/awareness) is a vocabulary
 * of its own, kept apart from its terminal's link (`status`): a connected
 * agent may be working, idle or waiting for an approval.
 */

/** A word per agent activity (state); spelled out, as STATE_WORDS are. */
export const ACTIVITY_WORDS = Object.freeze({
  starting: "starting",
  working: "working",
  waiting_approval: "waiting for approval",
  waiting_input: "waiting for an answer",
  setup_required: "needs setup",
  idle: "idle",
  errored: "error",
  exited: "exited",
  unknown: "unknown",
});

/** States that put an agent in the inbox (idle only while unread). */
export const ATTENTION_STATES = new Set([
  "waiting_approval",
  "waiting_input",
  "setup_required",
  "errored",
  "exited",
]);

/** States with a dialog to answer. */
export const PROMPT_STATES = new Set(["waiting_approval", "waiting_input", "setup_required"]);

const own = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

/** The word for what `agent` is doing: "idle · new" after a turn nobody has seen. */
export function activityWord(agent) {
  const state = agent.state || "unknown";
  const word = own(ACTIVITY_WORDS, state) ? ACTIVITY_WORDS[state] : String(state);
  return state === "idle" && agent.unread ? `${word} · new` : word;
}

export const needsAttention = (agent) =>
  ATTENTION_STATES.has(agent.state) || (agent.state === "idle" && Boolean(agent.unread));

/** The inbox: agents that need someone, the longest waiting first. */
export function inboxItems(agents) {
  return [...agents]
    .filter(needsAttention)
    .sort((a, b) => (a.state_since ?? 0) - (b.state_since ?? 0) || (a.id < b.id ? -1 : 1));
}

/** "12 s", "3 min", "2 h": how long since `since` (seconds since the epoch). */
export function age(since, nowSeconds) {
  if (since == null) return "";
  const seconds = Math.max(0, Math.round(nowSeconds - since));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}

/**
 * The buttons a prompt card offers, in the prompt's order: label and what to
 * POST. Always by number: two options may share a role (Claude's plan
 * dialog has three "yes"es), and the button must send the one it says.
 * An option with no key (numbered past 9) has no button.
 */
export function promptButtons(prompt) {
  if (!prompt) return [];
  return prompt.options
    .filter((option) => option.key)
    .map((option) => ({
      label: option.label,
      n: option.n,
      role: option.role,
      body: { action: "option", n: option.n },
    }));
}

export const answerPath = (agentId, fingerprint) =>
  `/api/agents/${encodeURIComponent(agentId)}/prompt/${encodeURIComponent(fingerprint)}/answer`;

/** What an answer's result says to the person who clicked. */
export function describeAnswer(status, body) {
  if (status === 200) {
    return body.result === "verified" ? "answered" : "sent; the prompt is still there — look at the agent";
  }
  const words = {
    prompt_changed: "the prompt changed: look again",
    not_settled: "the prompt has only just appeared: look again",
    input_race: "someone typed into the agent since: look again",
    no_such_option: "that option is gone",
    read_only: "you may only watch",
  };
  return words[body?.error] || body?.message || `failed (${status})`;
}

/**
 * Notifications, once per thing to look at, coalesced across the fleet.
 * `note(agent)` when an agent's state arrives; `take()` every few seconds
 * gives the text of one notification for all that arrived since (or null).
 * An agent someone is watching (viewers > 0) is not announced.
 */
export class Notifier {
  constructor() {
    this.told = new Map(); // id -> the key of what was announced
    this.pending = new Map(); // id -> agent
  }

  note(agent) {
    if (!needsAttention(agent) || agent.state === "idle") {
      this.told.delete(agent.id);
      this.pending.delete(agent.id);
      return;
    }
    const key = `${agent.state}:${agent.prompt?.fingerprint ?? ""}`;
    if (this.told.get(agent.id) === key) return;
    this.told.set(agent.id, key);
    if ((agent.viewers ?? 0) > 0) return;
    this.pending.set(agent.id, agent);
  }

  take() {
    const agents = [...this.pending.values()];
    this.pending.clear();
    if (agents.length === 0) return null;
    if (agents.length === 1) {
      const [agent] = agents;
      const what = agent.prompt?.question || activityWord(agent);
      return { title: `${agent.id}: ${activityWord(agent)}`, body: what, tag: agent.id };
    }
    return {
      title: `${agents.length} agents need you`,
      body: agents.map((agent) => `${agent.id}: ${activityWord(agent)}`).join("\n"),
      tag: "fleet",
    };
  }
}
