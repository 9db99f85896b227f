/** A processing-time clock that moves only when a test moves it. */

export interface ManualClock {
  /** The current time in ms; pass it as a task's `now`. */
  readonly now: () => number;
  /** Moves the clock `ms` forward; returns the new time. */
  advance(ms: number): number;
}

export function manualClock(start = 0): ManualClock {
  if (!Number.isSafeInteger(start) || start < 0) throw new TypeError(`manualClock(): start must be an integer ≥ 0, got ${start}`);
  let time = start;
  return {
    now: () => time,
    advance(ms) {
      if (!Number.isSafeInteger(ms) || ms < 0) throw new TypeError(`advance(): ms must be an integer ≥ 0, got ${ms}`);
      time += ms;
      return time;
    },
  };
}
