/**
 * The coordinator's leader lease: one KV key, created with compare-and-set by
 * the node that wins, renewed with compare-and-set before the bucket's TTL
 * expires it. The revision of the winning create is the leader epoch: it
 * only grows, so tasks can refuse commands carrying an older epoch (fencing).
 *
 * A leader steps down on its own as soon as a renewal fails or its lease may
 * have expired by its own clock, before another node can have won. A node
 * that starts and finds the lease under its own name (an earlier life,
 * killed and restarted) takes it back at once, with a new epoch, instead of
 * waiting out the TTL.
 */
import type { JetStreamClient, KV } from 'nats';
import { isWrongLastSequence, translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';

export interface LeaseOptions extends ReplicasOption {
  /** The node campaigning. */
  nodeId: string;
  /** KV bucket of leases. @default 'millrace_leases' */
  bucket?: string;
  /** The lease's key (one per leadership role). @default 'coordinator' */
  key?: string;
  /** A lease not renewed for this long expires. @default 5000 */
  ttlMs?: number;
  /** How often the leader renews and followers try to win. @default ttlMs / 4 */
  intervalMs?: number;
  /** Told on every change of status. */
  onChange?: (status: LeaseStatus) => void;
}

export type LeaseStatus =
  | { readonly role: 'leader'; readonly epoch: number }
  | { readonly role: 'follower'; readonly leader: string | undefined; readonly epoch: number | undefined; readonly reason?: string }
  | { readonly role: 'stopped' };

export const DEFAULT_LEASE_BUCKET = 'millrace_leases';
export const DEFAULT_LEASE_TTL_MS = 5000;

/** How long after a lease's expiry (by the server's timestamp) a follower tries to win it. */
const EXPIRY_MARGIN_MS = 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Holder {
  node: string;
  epoch: number;
}

export class LeaderLease {
  private status: LeaseStatus = { role: 'follower', leader: undefined, epoch: undefined };
  private revision = 0;
  /** By our own clock, the lease is surely ours until then. */
  private validUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Only in its first round does a process reclaim its node's lease (it is a fresh start). */
  private firstRound = true;
  /** The round (a renewal or an attempt to win) in progress. */
  private round: Promise<void> | undefined;
  private stopping = false;

  private constructor(
    private readonly kv: KV,
    private readonly options: Required<Omit<LeaseOptions, 'onChange'>> & Pick<LeaseOptions, 'onChange'>,
  ) {}

  /** Opens (or creates) the lease bucket and starts campaigning. */
  static async campaign(js: JetStreamClient, options: LeaseOptions): Promise<LeaderLease> {
    const ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    const resolved = {
      nodeId: options.nodeId,
      bucket: options.bucket ?? DEFAULT_LEASE_BUCKET,
      key: options.key ?? 'coordinator',
      ttlMs,
      intervalMs: options.intervalMs ?? Math.max(50, Math.floor(ttlMs / 4)),
      replicas: replicasOf(options.replicas),
      onChange: options.onChange,
    };
    let kv: KV;
    try {
      kv = await js.views.kv(resolved.bucket, { ttl: ttlMs, history: 1, replicas: resolved.replicas });
    } catch (err) {
      throw translateNatsError(err, `cannot open lease bucket "${resolved.bucket}"`);
    }
    const lease = new LeaderLease(kv, resolved);
    await lease.tick();
    lease.timer = setInterval(() => void lease.tick(), resolved.intervalMs);
    return lease;
  }

  get current(): LeaseStatus {
    return this.status;
  }

  /** Whether this node leads now, by its own conservative clock. */
  isLeader(): boolean {
    return this.status.role === 'leader' && Date.now() < this.validUntil;
  }

  /**
   * Stops campaigning; a leader deletes its lease so another node can win at
   * once. A round in progress finishes first: a create it sent may still win.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    clearTimeout(this.expiryTimer);
    await this.round;
    const wasLeader = this.status.role === 'leader';
    this.set({ role: 'stopped' });
    if (wasLeader) {
      try {
        await this.kv.delete(this.options.key, { previousSeq: this.revision });
      } catch {
        // someone else holds it already, or the server is gone: the TTL frees it
      }
    }
  }

  private tick(): Promise<void> {
    if (this.round || this.stopping) return this.round ?? Promise.resolve();
    this.round = (this.status.role === 'leader' ? this.renew() : this.tryWin()).finally(() => {
      this.round = undefined;
      this.firstRound = false;
    });
    return this.round;
  }

  private async tryWin(): Promise<void> {
    const started = Date.now();
    try {
      // The epoch is the create's revision, unknown before the write: write the node, then learn the epoch.
      const revision = await this.kv.create(this.options.key, this.encode({ node: this.options.nodeId, epoch: 0 }));
      this.revision = revision;
      this.validUntil = started + this.options.ttlMs;
      this.set({ role: 'leader', epoch: revision });
    } catch (err) {
      // Lost the compare-and-set (someone leads), or the server is unreachable: a follower either way.
      if (!isWrongLastSequence(err)) this.setFollower(undefined, undefined);
      else await this.observe();
    }
  }

  private async renew(): Promise<void> {
    const started = Date.now();
    if (started >= this.validUntil) return this.stepDown(`not renewed for ${started - this.validUntil + this.options.ttlMs} ms`);
    const epoch = (this.status as { epoch: number }).epoch;
    try {
      this.revision = await this.kv.update(this.options.key, this.encode({ node: this.options.nodeId, epoch }), this.revision);
      this.validUntil = started + this.options.ttlMs;
    } catch (err) {
      this.stepDown(`renewal failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  private stepDown(reason: string): void {
    this.set({ role: 'follower', leader: undefined, epoch: undefined, reason });
  }

  /** Follower: learns who leads, for status displays. */
  private async observe(): Promise<void> {
    try {
      const entry = await this.kv.get(this.options.key);
      if (!entry || entry.operation !== 'PUT') return this.setFollower(undefined, undefined);
      const holder = JSON.parse(decoder.decode(entry.value)) as Holder;
      if (holder.node === this.options.nodeId && this.firstRound) return await this.reclaim(entry.revision);
      // The first write of a lease carries epoch 0: its epoch is the revision of that create.
      this.setFollower(holder.node, holder.epoch || entry.revision);
      this.tryAt(entry.created.getTime() + this.options.ttlMs + EXPIRY_MARGIN_MS);
    } catch {
      this.setFollower(undefined, undefined);
    }
  }

  /**
   * A fresh process finds the lease under its node's name: an earlier life
   * of the node, killed and restarted. Waiting out the TTL would leave the
   * cluster without a coordinator for nothing, so take it back, with
   * compare-and-set against the revision seen and a new epoch (the revision
   * of this write), which fences whatever the earlier life still sends.
   * Only once, at start: two live processes with one node id (a
   * misconfiguration) must not take the lease from each other in turn.
   */
  private async reclaim(revision: number): Promise<void> {
    const started = Date.now();
    try {
      this.revision = await this.kv.update(this.options.key, this.encode({ node: this.options.nodeId, epoch: 0 }), revision);
      this.validUntil = started + this.options.ttlMs;
      this.set({ role: 'leader', epoch: this.revision });
    } catch {
      this.setFollower(undefined, undefined); // another node won meanwhile; the next tick looks again
    }
  }

  /** One extra attempt when the holder's lease expires, unless renewed: takeover within the TTL, not TTL plus a tick. */
  private tryAt(time: number): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => void this.tick(), Math.max(0, time - Date.now()));
    this.expiryTimer.unref();
  }

  private setFollower(leader: string | undefined, epoch: number | undefined): void {
    const s = this.status;
    if (s.role === 'follower' && s.leader === leader && s.epoch === epoch) return;
    this.set({ role: 'follower', leader, epoch });
  }

  private encode(holder: Holder): Uint8Array {
    return encoder.encode(JSON.stringify(holder));
  }

  private set(status: LeaseStatus): void {
    this.status = status;
    this.options.onChange?.(status);
  }
}
