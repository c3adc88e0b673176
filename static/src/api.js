/**
 * The gateway's JSON API as every page calls it, in one place so they all
 * send the session cookie the same way and read errors the same way.
 *
 * `credentials: "same-origin"` is fetch's default; it is spelled out because
 * the gateway authenticates these calls by that cookie and nothing else.
 * `fetchImpl` is for tests.
 */

const CREDENTIALS = "same-origin";

/**
 * Who the caller is (GET /api/me: name, role, can_write, can_share, login),
 * or null when the gateway cannot tell us (an error answer, no network, not
 * JSON). Pages show nothing extra on null: what they offer by default is
 * the least anyone may do.
 */
export async function me(fetchImpl = fetch) {
  try {
    const response = await fetchImpl("/api/me", { credentials: CREDENTIALS });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/**
 * GET a JSON answer: `{ok, status, body}` like postJson (`body` is `{}`
 * without a JSON object), or null when no answer came at all.
 */
export async function getJson(url, fetchImpl = fetch) {
  let response;
  try {
    response = await fetchImpl(url, { credentials: CREDENTIALS });
  } catch {
    return null;
  }
  return { ok: response.ok, status: response.status, body: await objectOf(response) };
}

/**
 * Whether the caller's session still holds, for a page whose socket or
 * feed was refused: "live" (with `me`), "ended" (the gateway answered 401:
 * logged out, timed out, a revoked link, a restarted gateway that forgot
 * it), or "unknown" (no answer, or another error: worth retrying).
 */
export async function session(fetchImpl = fetch) {
  const answer = await getJson("/api/me", fetchImpl);
  if (answer === null) return { state: "unknown", me: null };
  if (answer.status === 401) return { state: "ended", me: null };
  return answer.ok ? { state: "live", me: answer.body } : { state: "unknown", me: null };
}

async function objectOf(response) {
  const answer = await response.json().catch(() => null);
  // Callers read fields off it: anything but an object (no body, `null`,
  // a bare string) is read as an object without them.
  return answer !== null && typeof answer === "object" ? answer : {};
}

/**
 * POST `body` as JSON; resolves to `{ok, status, body}`, `body` being the
 * answer's JSON object or `{}` when it has none (a 204, a proxy's HTML
 * page). The gateway's errors are `{error, message}`: callers show
 * `body.message` or their own words with `status`.
 *
 * Rejects only when no answer came at all (network down, gateway gone):
 * what that means differs per caller, so each decides.
 */
export async function postJson(url, body, fetchImpl = fetch) {
  const response = await fetchImpl(url, {
    method: "POST",
    credentials: CREDENTIALS,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { ok: response.ok, status: response.status, body: await objectOf(response) };
}
