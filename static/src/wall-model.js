/**
 * The wall view's state, without the DOM: agents by id, updated from the
 * gateway's event feed (GET /api/events), filtered and ordered for display.
 * An agent's `status` is one of STATES (generated from gateway/core/state.py).
 */
import { ATTENTION, NO_TERMINAL } from "./agent-state.js";
import { stateWord } from "./vocabulary.js";

export class Wall {
  constructor() {
    /** @type {Map<string, object>} agent JSON (as /api/agents gives it) + lastChange */
    this.agents = new Map();
    /** Whether what the tiles show may be out of date: the event feed is not live. */
    this.stale = true;
  }

  /**
   * The event feed's state: "live" once it is open, anything else while
   * it is down (every tile is then only what was last heard). Returns
   * whether that changed.
   */
  feed(state) {
    const stale = state !== "live";
    const changed = stale !== this.stale;
    this.stale = stale;
    return changed;
  }

  /** A `snapshot` event: replace everything. */
  snapshot(data, now = Date.now()) {
    this.agents = new Map(data.agents.map((agent) => [agent.id, { ...agent, lastChange: now }]));
  }

  /**
   * An `agent` event ({change, agent}) or an `activity` event ({id, bytes_out, title}).
   * Returns the ids whose tiles must be redrawn.
   */
  apply(kind, data, now = Date.now()) {
    if (kind === "agent") {
      const { change, agent } = data;
      if (change === "removed") {
        this.agents.delete(agent.id);
      } else {
        const before = this.agents.get(agent.id);
        const moved = !before || before.status !== agent.status;
        this.agents.set(agent.id, {
          ...agent,
          lastChange: moved ? now : before.lastChange,
        });
      }
      return [agent.id];
    }
    if (kind === "activity") {
      const agent = this.agents.get(data.id);
      if (!agent) return [];
      Object.assign(agent, { bytes_out: data.bytes_out, title: data.title, lastChange: now });
      return [data.id];
    }
    return [];
  }

  /** The agents to show for a filter ({text, status}), in display order. */
  visible({ text = "", status = "" } = {}) {
    const needle = text.trim().toLowerCase();
    return [...this.agents.values()]
      .filter(
        (agent) =>
          (!needle ||
            agent.id.toLowerCase().includes(needle) ||
            (agent.title || "").toLowerCase().includes(needle)) &&
          (!status || agent.status === status),
      )
      .sort(byAttentionThenRecency);
  }
}

/** Tiles that want a human go first, agents with no terminal (and nothing wrong) last. */
export function rank(agent) {
  if (ATTENTION.has(agent.status)) return 0;
  if (NO_TERMINAL.has(agent.status)) return 2;
  return 1;
}

export function byAttentionThenRecency(a, b) {
  return rank(a) - rank(b) || b.lastChange - a.lastChange || a.id.localeCompare(b.id);
}

/** The label for a tile: the agent state's word, the same on every page (vocabulary.js). */
export const statusLabel = (agent) => stateWord(agent.status);
