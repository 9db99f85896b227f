/**
 * SIGTERM and SIGINT from the first moment of the process: imported first
 * by the CLI, so a signal that arrives while the rest of it still loads is
 * kept, not the default exit. `onSignal` hands kept and later signals to a
 * handler (`node start` stops the node gracefully); `exitOnSignal` gives any
 * other command the usual behaviour back.
 */
const kept: NodeJS.Signals[] = [];
let handler: ((signal: NodeJS.Signals) => void) | undefined;

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => (handler ? handler(signal) : kept.push(signal)));
}

/** Sends every signal kept so far, and each later one, to `next`. */
export function onSignal(next: (signal: NodeJS.Signals) => void): void {
  handler = next;
  for (const signal of kept.splice(0)) next(signal);
}

/** Exits on a signal, with the shell's code for it (128 + its number), as if none had been caught. */
export function exitOnSignal(): void {
  onSignal((signal) => process.exit(signal === 'SIGINT' ? 130 : 143));
}
