/**
 * The terminal tab's title, without the DOM: the agent's name, its state in
 * the wall's words, and the title its program set (agent CLIs put their own
 * state there, a spinner while they work), so a row of tabs says which agent
 * is doing what.
 */
import { Phase } from "./terminal-model.js";
import { statusLabel } from "./wall-model.js";

/** The state word for the tab: the agent's while our socket is open, else our socket's. */
export function tabState(phase, upstreamState) {
  switch (phase) {
    case Phase.OPEN:
      return statusLabel({ status: upstreamState ?? "connected" });
    case Phase.CONNECTING:
      return "connecting";
    case Phase.WAITING:
      return "reconnecting";
    case Phase.GAVE_UP:
      return "disconnected";
    case Phase.ENDED:
      return "session ended";
    default:
      return "";
  }
}

/** "alpha (running) · ✳ Fixing the tests": the program's title only when it set one. */
export function tabTitle({ agentId, state = "", title = "" }) {
  const head = state ? `${agentId} (${state})` : agentId;
  const own = title.trim();
  return own && own !== agentId ? `${head} · ${own}` : head;
}
