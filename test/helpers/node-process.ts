/**
 * Runs real millrace nodes (`dist/bin/millrace.js`) as child processes for
 * integration tests: a crash test needs a process it can SIGKILL, which an
 * in-process node cannot give. Output is kept in memory (for assertions and
 * error messages) and in a log file (for post-mortems after a failed run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This file compiles to dist/test/helpers/; the CLI to dist/bin/. */
export const MILLRACE_BIN = fileURLToPath(new URL('../../bin/millrace.js', import.meta.url));

/** How much output an error message quotes. */
const TAIL_LINES = 40;

export interface SpawnNodeOptions {
  /** CLI arguments after `millrace.js`, e.g. `['start', '--data-dir', dir]`. */
  args: string[];
  /** Added to (and overriding) the test process's environment. */
  env?: Record<string, string>;
  /** @default process.cwd() */
  cwd?: string;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A pino log line (or any JSON object a node printed on one line). */
export type LogEntry = Record<string, unknown>;

export interface NodeProcess {
  readonly pid: number;
  /** File holding everything the node wrote to stdout and stderr. */
  readonly logFile: string;
  /** Set once the process has exited and its output is complete. */
  readonly exitStatus: ExitStatus | undefined;
  /** All stdout and stderr text so far, interleaved as it arrived. */
  output(): string;
  /** Complete stdout lines: parsed JSON objects where possible, raw strings otherwise. */
  lines(): (LogEntry | string)[];
  /** Resolves with the first JSON log entry (stdout or stderr, past or future) matching `predicate`. */
  waitForLog(predicate: (entry: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
  waitForExit(timeoutMs?: number): Promise<ExitStatus>;
  /** Sends `signal` (default SIGTERM) if the process still runs. */
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<NodeProcessImpl>();

class NodeProcessImpl implements NodeProcess {
  readonly pid: number;
  readonly logFile: string;
  exitStatus: ExitStatus | undefined;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private text = '';
  private readonly stdoutLines: (LogEntry | string)[] = [];
  private readonly entries: LogEntry[] = [];
  /** Called on every new JSON entry and on exit; each returns true when done. */
  private readonly watchers = new Set<() => boolean>();
  private readonly exited: Promise<ExitStatus>;

  constructor(options: SpawnNodeOptions) {
    const logDir = mkdtempSync(join(tmpdir(), 'millrace-node-'));
    this.logFile = join(logDir, 'node.log');
    this.log = createWriteStream(this.logFile);
    this.child = spawn(process.execPath, [MILLRACE_BIN, ...options.args], {
      cwd: options.cwd ?? process.cwd(),
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid ?? -1;
    this.capture(this.child.stdout!, true);
    this.capture(this.child.stderr!, false);
    // 'close' rather than 'exit': output is complete only once stdio has closed.
    this.exited = new Promise((resolve) => {
      const finish = (status: ExitStatus) => {
        if (this.exitStatus) return;
        this.exitStatus = status;
        running.delete(this);
        this.log.end();
        this.notify();
        resolve(status);
      };
      this.child.once('close', (code, signal) => finish({ code, signal }));
      this.child.once('error', (err) => {
        this.append(`[spawn error] ${err.message}\n`);
        finish({ code: null, signal: null });
      });
    });
    running.add(this);
  }

  output(): string {
    return this.text;
  }

  lines(): (LogEntry | string)[] {
    return [...this.stdoutLines];
  }

  /** The last `TAIL_LINES` lines of output, for error messages. */
  tail(): string {
    return this.text.split('\n').slice(-TAIL_LINES - 1).join('\n');
  }

  waitForLog(predicate: (entry: LogEntry) => boolean, timeoutMs = 30_000): Promise<LogEntry> {
    return new Promise((resolve, reject) => {
      let checked = 0;
      const check = (): boolean => {
        for (; checked < this.entries.length; checked++) {
          const entry = this.entries[checked]!;
          if (predicate(entry)) {
            clearTimeout(timer);
            resolve(entry);
            return true;
          }
        }
        if (this.exitStatus) {
          clearTimeout(timer);
          reject(this.failure(`exited (${describe(this.exitStatus)}) before the expected log line`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.watchers.delete(check);
        reject(this.failure(`did not log the expected line within ${timeoutMs} ms`));
      }, timeoutMs);
      if (!check()) this.watchers.add(check);
    });
  }

  waitForExit(timeoutMs = 30_000): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.failure(`did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.exitStatus) this.child.kill(signal);
  }

  private failure(what: string): Error {
    return new Error(`millrace node ${this.pid} ${what}; log: ${this.logFile}\n--- last ${TAIL_LINES} lines ---\n${this.tail()}`);
  }

  private capture(stream: NodeJS.ReadableStream, isStdout: boolean): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.append(chunk);
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      for (const line of parts) this.addLine(line, isStdout);
    });
    stream.on('end', () => {
      if (partial) this.addLine(partial, isStdout);
    });
  }

  private append(chunk: string): void {
    this.text += chunk;
    this.log.write(chunk);
  }

  private addLine(line: string, isStdout: boolean): void {
    const entry = parseEntry(line);
    if (isStdout) this.stdoutLines.push(entry ?? line);
    if (entry) {
      this.entries.push(entry);
      this.notify();
    }
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) if (watcher()) this.watchers.delete(watcher);
  }
}

function parseEntry(line: string): LogEntry | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as LogEntry) : undefined;
  } catch {
    return undefined;
  }
}

function describe(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

/** Starts `node dist/bin/millrace.js ...args`; the process is tracked until it exits. */
export function spawnNode(options: SpawnNodeOptions): NodeProcess {
  return new NodeProcessImpl(options);
}

/** Waits for the node's `"msg":"node started"` log line; the error quotes its last 40 lines. */
export function waitForNodeStarted(node: NodeProcess, timeoutMs = 30_000): Promise<LogEntry> {
  return node.waitForLog((entry) => entry.msg === 'node started', timeoutMs);
}

/** SIGKILLs every node still running and waits for them to exit. For `test.after.always`. */
export async function killAllNodes(): Promise<void> {
  const nodes = [...running];
  for (const node of nodes) node.kill('SIGKILL');
  await Promise.all(nodes.map((node) => node.waitForExit(10_000).catch(() => undefined)));
}
