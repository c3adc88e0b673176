/**
 * Sending a command line to agents (operators): one agent through
 * POST /api/agents/{id}/input, several through POST /api/input, which
 * answers per agent. The line is typed as if Enter followed it, unless
 * asked not to (a bare line: a partial command, a menu's letter).
 */
import { postJson } from "./api.js";

/** What is typed for a command line: the line, then Enter (CR, as a terminal sends it) unless ``enter`` is false. */
export const commandInput = (line, enter = true) => (enter ? `${line}\r` : line);

/**
 * Send ``line`` to ``agents``; resolves to {id: {ok, error?, message?}}.
 * Network failures become a result per agent, never a thrown error.
 */
export async function sendCommand(agents, line, fetchImpl = fetch, { enter = true } = {}) {
  const data = commandInput(line, enter);
  try {
    if (agents.length === 1) {
      const [id] = agents;
      const url = `/api/agents/${encodeURIComponent(id)}/input`;
      const { ok, status, body } = await postJson(url, { data }, fetchImpl);
      return { [id]: ok ? { ok: true } : failure(body, status) };
    }
    const { ok, status, body } = await postJson("/api/input", { agents, data }, fetchImpl);
    if (!ok) return Object.fromEntries(agents.map((id) => [id, failure(body, status)]));
    return body.results;
  } catch (err) {
    return Object.fromEntries(agents.map((id) => [id, { ok: false, error: "network", message: String(err) }]));
  }
}

function failure(body, status) {
  return { ok: false, error: body.error || String(status), message: body.message || `HTTP ${status}` };
}

/** One line per agent for the page: "sent", or why not. */
export const describeResult = (result) => (result.ok ? "sent" : result.message || result.error);
