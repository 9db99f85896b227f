/**
 * Preloaded into a node process by the chaos harness (NODE_OPTIONS=--import)
 * when asked to: logs, as a pino-shaped warning line on stdout, every stall
 * of the event loop longer than CHAOS_LOOP_PROBE_MS (default 500). A leader
 * whose loop stalls past its lease TTL loses the lease; this tells such a
 * stall apart from a slow nats-server. It changes nothing in the node.
 */
const threshold = Number(process.env.CHAOS_LOOP_PROBE_MS ?? 500);
const TICK_MS = 50;
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  const stalled = now - last - TICK_MS;
  last = now;
  if (stalled > threshold) {
    process.stdout.write(`${JSON.stringify({ level: 40, time: Date.now(), msg: 'event loop stalled', stalledMs: Math.round(stalled) })}\n`);
  }
}, TICK_MS).unref();
