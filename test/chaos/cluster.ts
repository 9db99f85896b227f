/**
 * The millrace nodes of a chaos run: N real `millrace node start` processes
 * with their own node id and data dir, the same NATS URL and job modules.
 * The harness kills, wipes, pauses and restarts them; a node that exits on
 * its own is recorded (with the tail of its log) and restarted, as a process
 * supervisor would.
 */
import { cp, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { spawnNode, type ExitStatus, type LogEntry, type NodeProcess } from '../helpers/node-process.js';

export interface ClusterOptions {
  readonly natsUrl: string;
  readonly nodes: number;
  /** Data dirs go to `<baseDir>/<node id>`. */
  readonly baseDir: string;
  readonly jobModules: readonly string[];
  /** Environment of every node (job module settings, MILLRACE_* overrides). */
  readonly env: Readonly<Record<string, string>>;
  readonly logLevel: string;
  /** Restart a node that exited on its own after this long. @default 1000 */
  readonly restartDelayMs?: number;
}

/** A node exit the harness did not cause. */
export interface UnexpectedExit {
  readonly node: string;
  readonly life: number;
  readonly pid: number;
  readonly status: ExitStatus;
  readonly at: number;
  readonly logFile: string;
  readonly tail: string;
}

/** One node: its identity and the processes (lives) that ran it. */
export interface NodeSlot {
  readonly index: number;
  readonly id: string;
  readonly dataDir: string;
  readonly lives: NodeProcess[];
  /** Exits the harness caused (kill, stop), by pid. */
  readonly expectedExits: Set<number>;
  paused: boolean;
}

const TAIL_LINES = 30;

export class ChaosCluster {
  readonly slots: NodeSlot[];
  readonly unexpectedExits: UnexpectedExit[] = [];
  private stopping = false;

  constructor(private readonly o: ClusterOptions) {
    this.slots = Array.from({ length: o.nodes }, (_, index) => {
      const id = `chaos-n${index + 1}`;
      return { index, id, dataDir: join(o.baseDir, id), lives: [], expectedExits: new Set<number>(), paused: false };
    });
  }

  /** The running process of node `i`, if any. */
  current(i: number): NodeProcess | undefined {
    const life = this.slots[i]!.lives.at(-1);
    return life && !life.exitStatus ? life : undefined;
  }

  /** Starts node `i` (a new life on its data dir). */
  async start(i: number): Promise<NodeProcess> {
    const slot = this.slots[i]!;
    await mkdir(slot.dataDir, { recursive: true });
    const args = ['node', 'start', '--nats', this.o.natsUrl, '--data-dir', slot.dataDir, '--node-id', slot.id, '--log-level', this.o.logLevel];
    for (const module of this.o.jobModules) args.push('--job', module);
    const node = spawnNode({ args, env: { ...this.o.env } });
    slot.lives.push(node);
    slot.paused = false;
    const life = slot.lives.length;
    void node.waitForExit(2 ** 31 - 1).then((status) => {
      if (slot.expectedExits.has(node.pid)) return;
      this.unexpectedExits.push({
        node: slot.id,
        life,
        pid: node.pid,
        status,
        at: Date.now(),
        logFile: node.logFile,
        tail: node.output().split('\n').slice(-TAIL_LINES - 1).join('\n'),
      });
      if (this.stopping) return;
      setTimeout(() => void (this.stopping || this.current(i) || this.start(i)), this.o.restartDelayMs ?? 1000).unref();
    });
    return node;
  }

  async startAll(): Promise<void> {
    for (let i = 0; i < this.slots.length; i++) await this.start(i);
  }

  /** Sends `signal` (default SIGKILL) to node `i` and waits for it to exit; undefined when it was not running. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 20_000): Promise<{ pid: number; life: number; status: ExitStatus } | undefined> {
    const slot = this.slots[i]!;
    const node = this.current(i);
    if (!node) return undefined;
    slot.expectedExits.add(node.pid);
    node.kill(signal);
    // A stopped process acts on SIGTERM only once continued.
    if (slot.paused && signal !== 'SIGKILL') node.kill('SIGCONT');
    slot.paused = false;
    let status: ExitStatus;
    try {
      status = await node.waitForExit(timeoutMs);
    } catch {
      node.kill('SIGKILL');
      status = await node.waitForExit(10_000);
    }
    return { pid: node.pid, life: slot.lives.length, status };
  }

  /** Removes node `i`'s data dir (the node must not run). */
  async wipe(i: number): Promise<void> {
    await rm(this.slots[i]!.dataDir, { recursive: true, force: true });
  }

  pause(i: number): boolean {
    const node = this.current(i);
    if (!node) return false;
    node.kill('SIGSTOP');
    this.slots[i]!.paused = true;
    return true;
  }

  resume(i: number): void {
    const node = this.current(i);
    if (node && this.slots[i]!.paused) node.kill('SIGCONT');
    this.slots[i]!.paused = false;
  }

  /** Continues paused nodes and starts nodes that do not run. */
  async ensureRunning(): Promise<void> {
    for (let i = 0; i < this.slots.length; i++) {
      if (this.slots[i]!.paused) this.resume(i);
      if (!this.current(i)) await this.start(i);
    }
  }

  /**
   * The node that coordinates now, by the logs: among running, unpaused nodes,
   * the one whose latest lease line ("this node now coordinates" or
   * "coordinator lease status") says leader, with the highest epoch.
   */
  leader(): { index: number; epoch: number } | undefined {
    let best: { index: number; epoch: number } | undefined;
    for (const slot of this.slots) {
      const node = this.current(slot.index);
      if (!node || slot.paused) continue;
      const status = latestLeaseStatus(node);
      if (status?.role === 'leader' && typeof status.epoch === 'number' && (!best || status.epoch > best.epoch)) {
        best = { index: slot.index, epoch: status.epoch };
      }
    }
    return best;
  }

  /** SIGTERM to every node (continued first if paused), then SIGKILL after `timeoutMs`; the exit of each. */
  async stopAll(timeoutMs = 20_000): Promise<{ node: string; status: ExitStatus | undefined }[]> {
    this.stopping = true;
    return Promise.all(
      this.slots.map(async (slot) => ({ node: slot.id, status: (await this.kill(slot.index, 'SIGTERM', timeoutMs))?.status })),
    );
  }

  /** SIGKILLs whatever still runs. Safe to call twice. */
  async killAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map((slot) => this.kill(slot.index, 'SIGKILL', 10_000).catch(() => undefined)));
  }

  /** Every life's log file, in start order per node. */
  logFiles(): string[] {
    return this.slots.flatMap((s) => s.lives.map((l) => l.logFile));
  }

  /** Copies every log file to `<dir>/<node id>-life<n>.log`. */
  async copyLogs(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    for (const slot of this.slots) {
      for (const [n, life] of slot.lives.entries()) {
        await cp(life.logFile, join(dir, `${slot.id}-life${n + 1}.log`)).catch(() => undefined);
      }
    }
  }

  /** Removes the log dirs the node helper created. */
  async removeLogs(): Promise<void> {
    await Promise.all(this.logFiles().map((f) => rm(dirname(f), { recursive: true, force: true })));
  }

  /** Every JSON log line of every life at `level` or above (pino numbers: 40 warn, 50 error, 60 fatal). */
  entries(minLevel: number): { node: string; life: number; entry: LogEntry }[] {
    const found: { node: string; life: number; entry: LogEntry }[] = [];
    for (const slot of this.slots) {
      for (const [n, life] of slot.lives.entries()) {
        for (const line of life.lines()) {
          if (typeof line === 'object' && typeof line.level === 'number' && line.level >= minLevel) found.push({ node: slot.id, life: n + 1, entry: line });
        }
      }
    }
    return found;
  }
}

function latestLeaseStatus(node: NodeProcess): { role?: unknown; epoch?: unknown } | undefined {
  const lines = node.lines();
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (typeof line !== 'object') continue;
    if (line.msg === 'this node now coordinates' || line.msg === 'coordinator lease status') {
      return line.status as { role?: unknown; epoch?: unknown } | undefined;
    }
  }
  return undefined;
}
