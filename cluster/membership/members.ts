/**
 * Cluster membership in JetStream KV (ARCHITECTURE, cluster): each node
 * keeps one entry, key = its node id, value = what it is and which jobs it
 * runs, and rewrites it every heartbeat. The bucket's TTL (stream max age)
 * is the member timeout: the server drops the entry of a node that stopped
 * heartbeating. nats-server 2.9 sends watchers nothing when an entry ages
 * out, so a watcher also takes a member silent for the TTL for gone.
 *
 * A node that shuts down gracefully first marks its entry `leaving` (the
 * coordinator hands its tasks over) and deletes it when it exits.
 */
import type { JetStreamClient, KV, KvEntry } from 'nats';
import type { Logger } from 'pino';
import { translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';

export const DEFAULT_MEMBER_BUCKET = 'millrace_members';

/** One node's membership entry. */
export interface MemberInfo {
  /** The node id (`nodeId` in the config); the entry's key. */
  readonly id: string;
  /** New at every start of the node process: a changed instance means the node restarted (and lost its tasks). */
  readonly instance: string;
  /** Where the node runs: `host:pid`. */
  readonly address: string;
  /** The most tasks the node takes, over all its jobs; null: no limit. */
  readonly capacity: number | null;
  /** The millrace version the node runs. */
  readonly version: string;
  /** Date.now() at the node's start. */
  readonly startedAt: number;
  /** The jobs this node can run (it has their definitions). */
  readonly jobs: readonly string[];
  /** The node is shutting down: its tasks are to be handed over; it takes no new ones. */
  readonly leaving: boolean;
}

export interface MembershipOptions extends ReplicasOption {
  /** @default {@link DEFAULT_MEMBER_BUCKET} */
  readonly bucket?: string;
  /** How often the entry is rewritten. */
  readonly heartbeatMs: number;
  /** The bucket's TTL, if this call creates it: a node silent this long is gone. */
  readonly ttlMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Opens (creating it if needed) the membership bucket; an existing bucket keeps its TTL. */
export async function openMemberBucket(js: JetStreamClient, options: Omit<MembershipOptions, 'heartbeatMs'>): Promise<KV> {
  const bucket = options.bucket ?? DEFAULT_MEMBER_BUCKET;
  try {
    return await js.views.kv(bucket, { history: 1, ttl: options.ttlMs, replicas: replicasOf(options.replicas) });
  } catch (err) {
    throw translateNatsError(err, `cannot open membership bucket "${bucket}"`);
  }
}

/** This node's own entry: registered at start, heartbeated, marked leaving, deleted at exit. */
export class Membership {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly kv: KV,
    private info: MemberInfo,
    private readonly logger: Logger,
  ) {}

  /** Writes the entry now and every `heartbeatMs`. */
  static async join(js: JetStreamClient, info: MemberInfo, options: MembershipOptions, logger: Logger): Promise<Membership> {
    const membership = new Membership(await openMemberBucket(js, options), info, logger);
    await membership.write();
    membership.timer = setInterval(() => void membership.write().catch((err) => logger.warn({ err }, 'membership heartbeat failed')), options.heartbeatMs);
    return membership;
  }

  get current(): MemberInfo {
    return this.info;
  }

  /** Changes the entry (jobs run, leaving) and writes it at once. */
  async update(change: Partial<Pick<MemberInfo, 'jobs' | 'leaving'>>): Promise<void> {
    this.info = { ...this.info, ...change };
    await this.write();
  }

  /** Stops heartbeating and deletes the entry: the node is gone now, without waiting for the TTL. */
  async leave(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.kv.delete(this.info.id).catch((err: unknown) => this.logger.debug({ err }, 'membership entry not deleted; it expires'));
  }

  private async write(): Promise<void> {
    if (this.closed) return;
    await this.kv.put(this.info.id, encoder.encode(JSON.stringify(this.info)));
  }
}

/** A member as a watcher sees it: its entry and when it was last heard of. */
export interface LiveMember {
  readonly info: MemberInfo;
  /** Date.now() when its last heartbeat was received. */
  readonly seenAt: number;
}

/** Why the member set changed. */
export type MemberChange = 'joined' | 'updated' | 'left' | 'expired';

export interface MemberWatchOptions {
  /** @default {@link DEFAULT_MEMBER_BUCKET} */
  readonly bucket?: string;
  /** A member silent this long is gone (the bucket's TTL). */
  readonly ttlMs: number;
  /** How often silence is checked. */
  readonly checkMs: number;
  readonly onChange?: (change: MemberChange, member: MemberInfo) => void;
}

/**
 * Follows the membership bucket: the live members, their changes, and the
 * expiry of silent ones. `ready` resolves once the entries present at start
 * are read.
 */
export class MemberWatch {
  private readonly live = new Map<string, LiveMember>();
  private timer: NodeJS.Timeout | undefined;
  private lastCheck = Date.now();
  private stopWatch: (() => void) | undefined;
  readonly ready: Promise<void>;

  private constructor(
    private readonly options: MemberWatchOptions,
    private readonly logger: Logger,
    kv: KV,
  ) {
    let initialized!: () => void;
    this.ready = new Promise((resolve) => (initialized = resolve));
    void this.follow(kv, initialized);
    this.timer = setInterval(() => this.expire(), options.checkMs);
    this.timer.unref();
  }

  static async open(js: JetStreamClient, options: MemberWatchOptions & ReplicasOption, logger: Logger): Promise<MemberWatch> {
    const watch = new MemberWatch(options, logger, await openMemberBucket(js, options));
    await watch.ready;
    return watch;
  }

  /** The live members, by node id. */
  members(): ReadonlyMap<string, LiveMember> {
    return this.live;
  }

  close(): void {
    clearInterval(this.timer);
    this.stopWatch?.();
  }

  private async follow(kv: KV, initialized: () => void): Promise<void> {
    try {
      const iterator = await kv.watch({ initializedFn: initialized });
      this.stopWatch = () => iterator.stop();
      for await (const entry of iterator) this.onEntry(entry);
    } catch (err) {
      this.logger.error({ err }, 'membership watch ended');
      initialized();
    }
  }

  private onEntry(entry: KvEntry): void {
    const known = this.live.get(entry.key);
    if (entry.operation !== 'PUT') {
      if (!known) return;
      this.live.delete(entry.key);
      this.options.onChange?.('left', known.info);
      return;
    }
    let info: MemberInfo;
    try {
      info = JSON.parse(decoder.decode(entry.value)) as MemberInfo;
    } catch (err) {
      this.logger.warn({ err, key: entry.key }, 'malformed membership entry');
      return;
    }
    // Local time, not the entry's: clocks of nodes and servers may differ. An entry found at start is at most a TTL
    // old (the server drops older ones), so a dead node's is taken for gone at most a TTL late.
    this.live.set(entry.key, { info, seenAt: Date.now() });
    if (!known) this.options.onChange?.('joined', info);
    else if (changed(known.info, info)) this.options.onChange?.('updated', info);
  }

  private expire(): void {
    const now = Date.now();
    if (now - this.lastCheck > this.options.ttlMs / 2) {
      // This process stalled (GC, CPU starvation, SIGSTOP): heartbeats it did not read are no sign of dead nodes.
      for (const [id, m] of this.live) this.live.set(id, { ...m, seenAt: Math.max(m.seenAt, now - this.options.checkMs) });
    }
    this.lastCheck = now;
    for (const [id, m] of this.live) {
      if (now - m.seenAt < this.options.ttlMs) continue;
      this.live.delete(id);
      this.logger.warn({ node: id, silentMs: now - m.seenAt }, 'node silent too long: taken for dead');
      this.options.onChange?.('expired', m.info);
    }
  }
}

function changed(a: MemberInfo, b: MemberInfo): boolean {
  return a.instance !== b.instance || a.leaving !== b.leaving || a.capacity !== b.capacity || a.jobs.join('\n') !== b.jobs.join('\n');
}
