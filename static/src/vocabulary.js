/**
 * The words every page uses, in one place, so that the wall and the
 * terminal never name one thing two ways.
 *
 * Two vocabularies, kept apart:
 *
 * - what an agent is doing, as the gateway reports it (an AgentState from
 *   agent-state.js, generated from gateway/core/state.py): the wall's
 *   tiles and the terminal's agent badge both show stateWord(state);
 * - how this page's own link to the gateway is (its WebSocket, its event
 *   feed): LINK_WORDS. While that link is down, whatever the page shows of
 *   the agents is only the last thing it heard, and is marked stale.
 *
 * And what a page says when its session is over, which no retry can mend.
 */

/**
 * A word per agent state. Spelled out rather than derived so that a state
 * added in Python fails test/agent-state.test.js until someone has chosen
 * its word here (and its colour in wall.css and terminal.css).
 */
export const STATE_WORDS = Object.freeze({
  connecting: "connecting",
  connected: "connected",
  reconnecting: "reconnecting",
  stopped: "stopped",
  conflict: "conflict",
  unreachable: "unreachable",
});

const own = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

/** The word for an agent state; a state this bundle does not know shows as itself. */
export const stateWord = (state) => (own(STATE_WORDS, state) ? STATE_WORDS[state] : String(state));

/** This page's link to the gateway (not the agent's): live, or not, and why. */
export const LINK_WORDS = Object.freeze({
  connecting: "gateway: connecting",
  live: "gateway: live",
  offline: "gateway: offline",
});

/**
 * Why a page's session is over, by kind: the gateway refused it (401) or
 * closed it for good (1008). `href` is where to go next, if anywhere.
 */
export const ENDED = Object.freeze({
  session: "your session ended — log in again",
  link: "this link was revoked or expired — ask for a new one",
  access: "you no longer have access to this agent",
});

/** Where "log in again" leads from `path`: the login page, back here after. */
export const loginHref = (path) => `/login?next=${encodeURIComponent(path)}`;
