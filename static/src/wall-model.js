/**
 * The wall view's state, without the DOM: agents by id, updated from the
 * gateway's event feed (GET /api/events), filtered and ordered for display.
 */

// Statuses that want a human: these tiles go first.
const ATTENTION = new Set(["conflict", "unreachable", "reconnecting"]);
// Agents with nothing to look at: these go last.
const IDLE = new Set(["stopped"]);

export class Wall {
  constructor() {
    /** @type {Map<string, object>} agent JSON (as /api/agents gives it) + lastChange */
    this.agents = new Map();
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

export function rank(agent) {
  if (ATTENTION.has(agent.status)) return 0;
  if (IDLE.has(agent.status)) return 2;
  return 1;
}

export function byAttentionThenRecency(a, b) {
  return rank(a) - rank(b) || b.lastChange - a.lastChange || a.id.localeCompare(b.id);
}

/** A status in words for a tile's badge: "connected" is the agent running as it should. */
export const statusLabel = (agent) => (agent.status === "connected" ? "running" : agent.status);
