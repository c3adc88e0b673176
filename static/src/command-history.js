/**
 * A command bar's memory: the bar is cleared once a line is sent (so a
 * second Enter sends nothing), and ArrowUp / ArrowDown walk back and forth
 * through what was sent, like a shell. Results are stamped with the time
 * they came back, so an old result is not taken for a new one.
 */

export const HISTORY_SIZE = 50;

export class CommandHistory {
  #lines = [];
  #at = 0; // an index into #lines; #lines.length is "the line being typed"
  #draft = "";

  /** Remember a sent line (not twice in a row); walking starts again from the newest. */
  push(line) {
    if (line && this.#lines.at(-1) !== line) this.#lines.push(line);
    if (this.#lines.length > HISTORY_SIZE) this.#lines.shift();
    this.#at = this.#lines.length;
    this.#draft = "";
  }

  /** The line before; ``current`` is what the bar holds (kept as the draft when leaving it). */
  up(current) {
    if (this.#at === this.#lines.length) this.#draft = current;
    if (this.#at > 0) this.#at -= 1;
    return this.#lines[this.#at] ?? current;
  }

  /** The line after, and past the newest the draft that was being typed. */
  down() {
    if (this.#at < this.#lines.length) this.#at += 1;
    return this.#at === this.#lines.length ? this.#draft : this.#lines[this.#at];
  }
}

/** "09:41:07": the local time of day a result came back. */
export function timeStamp(date) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** ArrowUp / ArrowDown in ``input`` walk ``history``; other keys are left alone. */
export function recallWith(input, history) {
  input.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    event.preventDefault();
    input.value = event.key === "ArrowUp" ? history.up(input.value) : history.down();
  });
}
