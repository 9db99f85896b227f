/**
 * A real `millrace node start` process (`dist/bin/millrace.js`) for the
 * recovery scenario, which needs a node it can SIGKILL. Its stdout and
 * stderr go to a log file; its JSON (pino) lines are kept, parsed, for
 * waiting on and for timing the steps of a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** This file compiles to dist/bench/; the CLI to dist/bin/. */
export const MILLRACE_BIN = fileURLToPath(new URL('../bin/millrace.js', import.meta.url));

/** A pino log line. */
export type LogEntry = Record<string, unknown> & { msg?: string; time?: number; level?: number };

export interface NodeProcessOptions {
  natsUrl: string;
  dataDir: string;
  nodeId: string;
  /** The compiled job module. */
  job: string;
  /** Configures the job module and the node (`MILLRACE_*`); added to this process's environment. */
  env: Record<string, string>;
  /** Where the node's output goes (appended). */
  logFile: string;
  /** @default 'debug' (the coordinator logs each commit at debug) */
  logLevel?: string;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class NodeProcess {
  readonly pid: number;
  readonly entries: LogEntry[] = [];
  /** Settles once the process exited and its output is complete. */
  readonly exited: Promise<ExitStatus>;
  exitStatus: ExitStatus | undefined;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private readonly watchers = new Set<() => void>();

  constructor(private readonly options: NodeProcessOptions) {
    this.log = createWriteStream(options.logFile, { flags: 'a' });
    const args = ['node', 'start', '--nats', options.natsUrl, '--data-dir', options.dataDir, '--node-id', options.nodeId];
    args.push('--job', options.job, '--log-level', options.logLevel ?? 'debug');
    // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") applies here as to the scenario runs (spawn-run.ts).
    const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    this.child = spawn(process.execPath, [...nodeArgs, MILLRACE_BIN, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid ?? -1;
    this.capture(this.child.stdout!);
    this.capture(this.child.stderr!);
    // 'close', not 'exit': the output is complete only once stdio has closed.
    this.exited = new Promise((resolve) => {
      const finish = (status: ExitStatus) => {
        if (this.exitStatus) return;
        this.exitStatus = status;
        this.log.end();
        this.notify();
        resolve(status);
      };
      this.child.once('close', (code, signal) => finish({ code, signal }));
      this.child.once('error', (err) => {
        this.log.write(`[spawn error] ${err.message}\n`);
        finish({ code: null, signal: null });
      });
    });
  }

  /** The first log entry, past or future, matching `predicate`; rejects on exit or after `timeoutMs`. */
  waitForLog(predicate: (e: LogEntry) => boolean, timeoutMs: number, what: string): Promise<LogEntry> {
    return new Promise((resolve, reject) => {
      let checked = 0;
      const check = () => {
        for (; checked < this.entries.length; checked++) {
          if (predicate(this.entries[checked]!)) return done(() => resolve(this.entries[checked]!));
        }
        if (this.exitStatus) done(() => reject(this.failure(`exited (${describe(this.exitStatus!)}) before logging ${what}`)));
      };
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.watchers.delete(check);
        settle();
      };
      const timer = setTimeout(() => done(() => reject(this.failure(`did not log ${what} within ${timeoutMs} ms`))), timeoutMs);
      this.watchers.add(check);
      check();
    });
  }

  /** Sends `signal` if the process still runs. */
  kill(signal: NodeJS.Signals): void {
    if (!this.exitStatus) this.child.kill(signal);
  }

  /** An error quoting the end of the node's log. */
  failure(what: string): Error {
    let tail = '';
    try {
      tail = readFileSync(this.options.logFile, 'utf8').split('\n').slice(-25).join('\n');
    } catch {
      // the log is gone with the run's work dir
    }
    return new Error(`millrace node ${this.pid} ${what}\n--- node log (tail) ---\n${tail}`);
  }

  private capture(stream: NodeJS.ReadableStream): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.log.write(chunk);
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) this.parse(line);
    });
    stream.on('end', () => partial && this.parse(partial));
  }

  private parse(line: string): void {
    if (!line.startsWith('{')) return;
    try {
      this.entries.push(JSON.parse(line) as LogEntry);
    } catch {
      return;
    }
    this.notify();
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

function describe(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}
