/**
 * "Someone resized the agent": the gateway tells every other viewer who did
 * it, to what size, and the size before (a ``resized`` notice frame). An
 * operator may put the size back; a viewer is only told.
 */

const isSize = (size) =>
  Boolean(size) && Number.isInteger(size.columns) && Number.isInteger(size.rows) && size.columns > 0 && size.rows > 0;

/** What to show for a ``resized`` notice: {text, restore: {columns, rows} | null, label}. */
export function resizeNotice(payload, canWrite) {
  const previous = isSize(payload?.previous) ? { columns: payload.previous.columns, rows: payload.previous.rows } : null;
  const text = typeof payload?.message === "string" && payload.message ? payload.message : "the agent was resized";
  const restore = canWrite ? previous : null;
  return { text, restore, label: restore ? `restore size (${restore.columns}x${restore.rows})` : "" };
}
