/**
 * The wall view's state, without the DOM: agents by id, updated from the
 * gateway's event feed (GET /api/events), filtered and ordered for display.
 * An agent's `status` is one of STATES (generated from gateway/core/state.py).
 */
import { ATTENTION, NO_TERMINAL } from "./agent-state.js";
import { needsAttention } from "./inbox-model.js";
import { stateWord } from "./vocabulary.js";

export class Wall {
  constructor() {
    /** @type {Map<string, object>} agent JSON, as /api/agents gives it */
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
  snapshot(data) {
    this.agents = new Map(data.agents.map((agent) => [agent.id, { ...agent }]));
  }

  /**
   * An `agent` event ({change, agent}), an `activity` event ({id, bytes_out,
   * title}), or a tile's fetched `screen` ({id, title}: "" when no program
   * set one). Returns the ids whose tiles must be redrawn.
   */
  apply(kind, data) {
    if (kind === "agent") {
      const { change, agent } = data;
      if (change === "removed") this.agents.delete(agent.id);
      else this.agents.set(agent.id, { ...agent });
      return [agent.id];
    }
    if (kind === "activity") {
      const agent = this.agents.get(data.id);
      if (!agent) return [];
      Object.assign(agent, { bytes_out: data.bytes_out, title: data.title });
      return [data.id];
    }
    if (kind === "agent_state") {
      // What the agent is doing (gateway/awareness): its state, its prompt.
      const agent = this.agents.get(data.id);
      if (!agent) return [];
      Object.assign(agent, data);
      return [data.id];
    }
    if (kind === "screen") {
      const agent = this.agents.get(data.id);
      if (!agent) return [];
      // The gateway's own fallback for a screen with no title: the agent's name.
      agent.title = data.title || data.id;
      return [data.id];
    }
    return [];
  }

  /** The agents to show for a filter ({text, status}), in display order (see byAttentionThenName). */
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
      .sort(byAttentionThenName);
  }
}

/**
 * Tiles that want a human go first (a terminal in trouble, or an agent
 * waiting for someone), agents with no terminal (and nothing wrong) last.
 */
export function rank(agent) {
  if (ATTENTION.has(agent.status) || needsAttention(agent)) return 0;
  if (NO_TERMINAL.has(agent.status)) return 2;
  return 1;
}

// "agent-2" before "agent-10", as a person would sort them.
const byName = new Intl.Collator(undefined, { numeric: true }).compare;

/**
 * A tile's place depends on its state's rank and its name only: output, a
 * title or a viewer never moves it, so the tile (and the checkbox) under the
 * pointer stays the one it was. Only a change of rank (attention) moves one.
 */
export function byAttentionThenName(a, b) {
  return rank(a) - rank(b) || byName(a.id, b.id) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * The order to lay tiles out in: `wanted` (ids in display order), unless the
 * order is `held` (the pointer is on the wall): then the tiles shown now keep
 * their places, and new ones go at the end, until it is let go.
 */
export function arrange(shown, wanted, held) {
  if (!held) return [...wanted];
  const still = new Set(wanted);
  const kept = shown.filter((id) => still.has(id));
  const known = new Set(kept);
  return [...kept, ...wanted.filter((id) => !known.has(id))];
}

/** The label for a tile: the agent state's word, the same on every page (vocabulary.js). */
export const statusLabel = (agent) => stateWord(agent.status);
