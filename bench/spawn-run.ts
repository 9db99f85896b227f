/** Starts `scenario-child.js` for one run and collects its report, killing it at the deadline. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { descendants } from './process-tree.js';
import type { ChildReport } from './scenario-child.js';
import type { BenchContext } from './scenario.js';

const CHILD = fileURLToPath(new URL('./scenario-child.js', import.meta.url));
const KEEP_OUTPUT = 16_384;

export interface SpawnRunOptions {
  /** The compiled scenario module. */
  file: string;
  ctx: Omit<BenchContext, 'timer'>;
  natsPid: number;
  clockTicks: number;
  timeoutMs: number;
}

/** Resolves with the child's report; rejects with its error, or when it ran past `timeoutMs`. */
export function spawnRun(opts: SpawnRunOptions): Promise<ChildReport> {
  const args = [CHILD, opts.file, JSON.stringify(opts.ctx), String(opts.natsPid), String(opts.clockTicks)];
  // BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the runs.
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-KEEP_OUTPUT)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-KEEP_OUTPUT)));
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // A scenario may run processes of its own (f: millrace nodes); they go first, while they are still the child's.
      for (const pid of child.pid ? descendants(child.pid) : []) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const line = (tag: string) => stdout.split('\n').find((l) => l.startsWith(`${tag} `))?.slice(tag.length + 1);
      const result = line('BENCH_RESULT');
      const error = line('BENCH_ERROR');
      if (timedOut) {
        reject(new Error(`run ${opts.ctx.runId} aborted after ${opts.timeoutMs / 1000} s (timeout)${tail(stderr)}`));
      } else if (code === 0 && result) {
        resolve(JSON.parse(result) as ChildReport);
      } else {
        const why = error ? (JSON.parse(error) as string) : `exited with ${signal ?? `code ${code}`} and no result`;
        reject(new Error(`run ${opts.ctx.runId} failed: ${why}${tail(stderr)}`));
      }
    });
  });
}

function tail(stderr: string): string {
  const t = stderr.trim();
  return t ? `\n--- stderr (tail) ---\n${t.slice(-2_000)}` : '';
}
