/**
 * Who watches an agent, in words, as the wall's tiles and the terminal page
 * both show it. The gateway's agent JSON carries `viewers` (sockets) and
 * `presence` ({name: sockets}); names are those of the logged-in users.
 */

/** A viewer's name as people read it: a spectator's name is its link's id, which says nothing. */
export const displayName = (name) => (name.startsWith("spectator:") ? "spectator" : name);

/**
 * "2 watching: olga, spectator", "1 watching" when the gateway names nobody,
 * "" when nobody watches.
 */
export function presenceText(agent) {
  if (!agent.viewers) return "";
  const names = Object.keys(agent.presence || {}).map(displayName);
  return `${agent.viewers} watching${names.length ? `: ${names.join(", ")}` : ""}`;
}
