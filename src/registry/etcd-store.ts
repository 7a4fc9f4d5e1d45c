// The registry's distributed store (issue 16): etcd v3, shared by several stateless rendezvous replicas.
//
// Design (the smallest one that keeps the server's synchronous handlers):
// - Each replica keeps the whole directory in memory (the RegistryState the server answers from), loaded with a
//   paginated range read at one revision R and then fed by one watch on the prefix from R+1. The store also
//   remembers, per etcd key, the mod revision its copy reflects (`revs`).
// - The server applies a request's Changes to that copy before commit (as with SQLite). `commit` turns them into
//   one etcd transaction: for every key written, `mod_revision == the revision our copy had` (0 = absent), and
//   the puts/deletes. Requests that arrive together share one transaction (group commit, ≤ MAX_TXN_KEYS keys);
//   one transaction is in flight at a time, so its compares are exact. The client is acknowledged only after
//   etcd committed (a quorum has it).
// - A failed compare means another replica changed a key this request wrote (the node-id counter, a hostname,
//   an inbox…). The store re-reads every key the failed (and every later, possibly dependent) commit touched,
//   puts etcd's values into the copy, and answers those commits `conflict` (storeConflict): the server runs the
//   requests again on the corrected copy (etcd's STM does the same: optimistic, retry on conflict).
// - Node ids: each replica reserves blocks of ID_BLOCK ids with a transaction on the `next` key (the first id
//   nobody reserved) and hands them out locally (the server's state.nextNodeId points into the current block),
//   so concurrent registrations on different replicas never contend on one key. The next block is reserved
//   when half the current one is used; a registration that finds none is held until it comes, then rerun.
//   Hostnames: a derived key `h/<name>` → id written with the node record, so two replicas cannot give one name
//   to two nodes (their node keys differ, their hostname key is the same).
// - Liveness: each replica holds one etcd lease (kept alive by the client; it ends when the replica dies) and
//   writes `a/<id>` = its replica id under that lease when a node registers or heartbeats there. The server's
//   reaper leaves a node alone while another replica holds it (isAliveElsewhere). A dead replica's `a/` keys
//   vanish with its lease, and its nodes (unless they moved) are reaped by the others after the usual 3 min.
// - Outcome of a transaction: every transaction also puts `tx/<replica>` = a value unique to it (under the
//   lease). A transaction that failed or threw may still have committed (etcd3 retries a call whose deadline
//   passed; the first attempt can have landed, the retry then fails its compares): before treating it as a
//   conflict the store reads that key, and when it holds this transaction's value the transaction committed.
//   Without it such a request ran again on its own committed result (a handshake request answered "already
//   pending", a registration twice).
// - Pushes across replicas: `publish` writes `push/<id>` = {origin replica, message} under the lease; every
//   replica sees the put through its watch and delivers it to the node if it is subscribed there.
// Reads the server makes but does not write (e.g. "the target node exists") are not compared: they can be a
// watch lag (milliseconds) old. A watch that ends (it fell behind a compaction, or etcd cancelled it) is
// followed by a resync: everything read again at one revision, the differences applied as live changes.
import { Etcd3, type IKeyValue, type IRequestOp, type ICompare, type Lease, type Watcher } from 'etcd3';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import { applyChange, emptyState, isChange, type Change, type NetworkRecord, type RegistryState } from './state.js';
import { storeConflict, type RegistryStore } from './store.js';

/** etcd's default --max-txn-ops is 128 (compares and operations are counted separately). */
const MAX_TXN_KEYS = 120;
/** Node ids reserved per transaction on `next`; a dead replica leaves at most this many unused. */
const ID_BLOCK = 512;
const LOAD_PAGE = 5_000;

export interface EtcdStoreOptions {
  /** `http://host:port` URLs of etcd members. */
  endpoints: string[];
  /** Key prefix shared by the replicas of one registry; default `/pilot/`. */
  prefix?: string;
  logger?: Logger;
  /** This replica's name in liveness and push keys; default random. */
  replicaId?: string;
  /** The replica lease's TTL: how long after a replica dies its nodes stop counting as alive there. Default 10 s. */
  leaseTtlSec?: number;
  /** Per-call deadline for etcd requests. Default 5 s. */
  callTimeoutMs?: number;
}

/** `etcd://HOST:PORT[,HOST:PORT…][/prefix]` → endpoints + prefix; invalid_argument when malformed. */
export function parseEtcdStoreUrl(text: string): Result<{ endpoints: string[]; prefix: string }> {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(text);
  if (!m) return err('invalid_argument', `--store ${text}: expected etcd://HOST:PORT[,HOST:PORT…][/prefix]`);
  const endpoints: string[] = [];
  for (const part of m[1]!.split(',')) {
    if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(part) || Number(part.slice(part.lastIndexOf(':') + 1)) > 65535) {
      return err('invalid_argument', `--store ${text}: '${part}' is not HOST:PORT`, { hint: 'e.g. --store etcd://127.0.0.1:2379,10.0.0.2:2379' });
    }
    endpoints.push(`http://${part}`);
  }
  let prefix = m[2] ?? '/pilot/';
  if (!prefix.endsWith('/')) prefix += '/';
  return ok({ endpoints, prefix });
}

type Item =
  | {
      kind: 'commit';
      changes: Change[];
      resolve: (r: Result<void>) => void;
      isOutsideBlocks?: boolean;
      /** Another replica's change to one of its keys reached our copy while it waited: its values are stale. */
      isStale?: boolean;
      /** keysOf(this), once. */
      keys?: Set<string>;
    }
  | { kind: 'touch'; id: number };

interface Op {
  /** null = delete. */
  value: string | null;
  withLease: boolean;
}

export class EtcdStore implements RegistryStore {
  readonly replicaId: string;
  private readonly pfx: string;
  private client: Etcd3 | null = null;
  private lease: Lease | null = null;
  private leaseId: string | null = null;
  private watcher: Watcher | null = null;
  private state: RegistryState | null = null;
  /** etcd key → mod revision our copy reflects; negative = deleted at that revision; absent = never seen. */
  private readonly revs = new Map<string, number>();
  /** Derived hostname keys as etcd holds them: name → id, and id → name. */
  private readonly hosts = new NameIndex();
  /** Derived network-name keys (`nn/<name>` → network id), so two replicas cannot create or rename to one name. */
  private readonly netNames = new NameIndex();
  /** Liveness keys: node id → replica id holding it. */
  private readonly alive = new Map<number, string>();
  private readonly touching = new Set<number>();
  /** Beacon addresses the replicas publish (`b/<replica>` → `ip:port`, under their leases). */
  private readonly beacons = new Map<string, string>();
  /** Which replica's beacon observed a node last (`bn/<id>` → replica id, under that replica's lease). */
  private readonly beaconHolder = new Map<number, string>();
  private readonly beaconTouching = new Set<number>();
  /** What this replica publishes as `b/<replicaId>` (again after a new lease). */
  private advertisedBeacon: string | null = null;
  private queue: Item[] = [];
  private isFlushing = false;
  private isTxnInFlight = false;
  private heldEvents: { isDelete: boolean; kv: IKeyValue }[] = [];
  private isClosed = false;
  /** Reserved id blocks, current first; `globalNext` = etcd's `next` (the first id no replica reserved). */
  private readonly blocks: { start: number; end: number }[] = [];
  private globalNext = 1;
  private isReserving = false;
  private readonly blockWaiters: Item[] = [];
  private readonly pushListeners = new Set<(nodeId: number, msg: Record<string, unknown>) => void>();
  private readonly stateListeners = new Set<(c: Change) => void>();
  readonly stats = { txns: 0, conflicts: 0, refreshedKeys: 0, watchEvents: 0, pushesOut: 0, pushesIn: 0, resyncs: 0, landedAfterFailure: 0 };
  /** This process's transactions' outcome markers: `tx/<replicaId>` = `${txnNonce}:${txnSeq}`. */
  private readonly txnNonce = randomBytes(6).toString('hex');
  private txnSeq = 0;

  constructor(private readonly opts: EtcdStoreOptions) {
    this.pfx = opts.prefix ?? '/pilot/';
    this.replicaId = opts.replicaId ?? randomBytes(6).toString('hex');
  }

  async load(): Promise<Result<RegistryState>> {
    const callTimeoutMs = this.opts.callTimeoutMs ?? 5_000;
    const client = new Etcd3({
      hosts: this.opts.endpoints,
      dialTimeout: callTimeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    });
    this.client = client;
    const state = emptyState();
    this.state = state;
    let revision: number;
    try {
      revision = await this.loadAll(state);
      await this.grantLease();
      await this.reserveBlock();
      state.nextNodeId = this.blocks[0]!.start;
    } catch (e) {
      await this.close();
      return err('internal', `etcd store at ${this.opts.endpoints.join(',')}: ${(e as Error).message}`, {
        cause: e,
        hint: 'check that the etcd members in --store are running and reachable',
      });
    }
    try {
      await this.watchFrom(revision + 1);
    } catch (e) {
      await this.close();
      return err('internal', `etcd watch on ${this.pfx} failed: ${(e as Error).message}`, { cause: e });
    }
    this.opts.logger?.info(
      { endpoints: this.opts.endpoints, prefix: this.pfx, replica: this.replicaId, nodes: state.nodes.size, revision },
      'registry store loaded from etcd',
    );
    return ok(state);
  }

  commit(changes: Change[]): Promise<Result<void>> {
    if (this.isClosed || !this.client) return Promise.resolve(err('internal', 'registry store is closed'));
    if (changes.length === 0) return Promise.resolve(ok());
    return new Promise((resolve) => {
      const item: Item = { kind: 'commit', changes, resolve };
      // Called right after the server applied the changes (no other request ran in between): a new node's
      // id must come from our current block; the pointer moves on to the next block when this one is used up.
      for (const c of changes) {
        if (c.k !== 'next') continue;
        const cur = this.blocks[0];
        const id = c.v - 1;
        if (!cur || id < cur.start || id >= cur.end) {
          item.isOutsideBlocks = true;
          continue;
        }
        if (c.v >= cur.end) {
          this.blocks.shift();
          if (this.blocks[0]) this.state!.nextNodeId = this.blocks[0].start;
        }
      }
      this.maybeReserve();
      if (item.isOutsideBlocks) {
        const cur = this.blocks[0];
        if (!cur) {
          this.blockWaiters.push(item); // rerun once a block is there (its id was never reserved)
          return;
        }
        // The pointer left our blocks (cannot happen through the server; a caller set it): back into the
        // block, and this commit is refused as a conflict so its request runs again.
        if (this.state!.nextNodeId < cur.start || this.state!.nextNodeId >= cur.end) this.state!.nextNodeId = cur.start;
      }
      this.queue.push(item);
      this.kick();
    });
  }

  /** Reserve the next block when the current one is half used (or gone); wake the held registrations. */
  private maybeReserve(): void {
    const cur = this.blocks[0];
    const isLow = !cur || this.blocks.length < 2 && this.state!.nextNodeId >= cur.start + ID_BLOCK / 2;
    if (!isLow || this.isReserving || this.isClosed) return;
    this.isReserving = true;
    void (async () => {
      for (let delayMs = 50; !this.isClosed; delayMs = Math.min(delayMs * 2, 2_000)) {
        try {
          await this.reserveBlock();
          break;
        } catch (e) {
          this.opts.logger?.warn({ err: (e as Error).message }, 'etcd: reserving node ids failed; retrying');
          await new Promise((r) => setTimeout(r, delayMs));
        }
      }
      this.isReserving = false;
      const cur2 = this.blocks[0];
      if (cur2 && (this.state!.nextNodeId < cur2.start || this.state!.nextNodeId >= cur2.end)) this.state!.nextNodeId = cur2.start;
      if (this.blockWaiters.length > 0) {
        this.queue.push(...this.blockWaiters.splice(0));
        this.kick();
      }
      this.maybeReserve();
    })();
  }

  /** One block of ids from etcd's `next` (compare-and-set; re-read and retry when another replica won). */
  private async reserveBlock(): Promise<void> {
    const key = Buffer.from(`${this.pfx}next`);
    for (;;) {
      const start = this.globalNext;
      const res = await this.client!.kv.txn({
        compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: Math.max(this.revs.get(`${this.pfx}next`) ?? 0, 0) }],
        success: [{ request_put: { key, value: Buffer.from(String(start + ID_BLOCK)) } }],
        failure: [{ request_range: { key } }],
      });
      if (res.succeeded) {
        const rev = Number(res.header.revision);
        if (Math.abs(this.revs.get(`${this.pfx}next`) ?? 0) < rev) {
          this.revs.set(`${this.pfx}next`, rev);
          this.globalNext = start + ID_BLOCK;
        }
        this.blocks.push({ start, end: start + ID_BLOCK });
        return;
      }
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      if (kv) this.applyKey(`${this.pfx}next`, kv.value.toString('utf8'), Number(kv.mod_revision), false);
    }
  }

  /** The node was heard from here: hold its liveness key under this replica's lease (once, not per heartbeat). */
  touch(nodeId: number): void {
    if (this.isClosed || this.alive.get(nodeId) === this.replicaId || this.touching.has(nodeId)) return;
    this.touching.add(nodeId);
    this.queue.push({ kind: 'touch', id: nodeId });
    this.kick();
  }

  isAliveElsewhere(nodeId: number): boolean {
    const holder = this.alive.get(nodeId);
    return holder !== undefined && holder !== this.replicaId;
  }

  /** The replica whose liveness key holds `nodeId` (the one the node talks to now); null when none. */
  holderOf(nodeId: number): string | null {
    return this.alive.get(nodeId) ?? null;
  }

  /**
   * This replica's beacon observed the node's endpoint: hold `bn/<id>` = this replica under the lease, so other
   * replicas' beacons relay frames for it here (also when its registry session is on another replica). One put
   * per node until another replica takes it over or the lease ends; fire and forget.
   */
  observedAtBeacon(nodeId: number): void {
    if (this.isClosed || !this.client || this.leaseId === null) return;
    if (this.beaconHolder.get(nodeId) === this.replicaId || this.beaconTouching.has(nodeId)) return;
    this.beaconTouching.add(nodeId);
    // The map follows the watch only (our own put comes back through it), so a later put by another replica wins.
    this.client.kv
      .put({ key: Buffer.from(this.key('bn/', nodeId)), value: Buffer.from(this.replicaId), lease: this.leaseId })
      .catch((e: Error) => this.opts.logger?.warn({ err: e.message, nodeId }, 'etcd: recording the beacon of a node failed'))
      .finally(() => this.beaconTouching.delete(nodeId));
  }

  /** The replica whose beacon last observed `nodeId` (`bn/<id>`); null when none holds it. */
  beaconHolderOf(nodeId: number): string | null {
    return this.beaconHolder.get(nodeId) ?? null;
  }

  /** The beacon address (`ip:port`) replica `replicaId` publishes; null when it publishes none (or is gone). */
  beaconAddressOf(replicaId: string): string | null {
    return this.beacons.get(replicaId) ?? null;
  }

  /**
   * Publish this replica's beacon address (`ip:port`, reachable by the other replicas) as `b/<replicaId>` under
   * the lease, so their beacons can relay frames to nodes held here (src/registry/beacon.ts). Kept across a
   * new lease.
   */
  async advertiseBeacon(addr: string): Promise<Result<void>> {
    this.advertisedBeacon = addr;
    return this.putBeacon();
  }

  private async putBeacon(): Promise<Result<void>> {
    if (this.isClosed || !this.client || this.leaseId === null || this.advertisedBeacon === null) return err('internal', 'etcd store not ready');
    try {
      await this.client.kv.put({ key: Buffer.from(this.key('b/', this.replicaId)), value: Buffer.from(this.advertisedBeacon), lease: this.leaseId });
      this.beacons.set(this.replicaId, this.advertisedBeacon);
      return ok(undefined);
    } catch (e) {
      this.opts.logger?.warn({ err: (e as Error).message }, 'etcd: publishing the beacon address failed');
      return err('internal', `etcd: publishing the beacon address failed: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Hand a push to every replica (the one where the node is subscribed delivers it). Fire and forget. */
  publish(nodeId: number, msg: Record<string, unknown>): void {
    if (this.isClosed || !this.client || this.leaseId === null) return;
    this.stats.pushesOut++;
    const value = JSON.stringify({ r: this.replicaId, m: msg });
    this.client.kv
      .put({ key: Buffer.from(this.key('push/', nodeId)), value: Buffer.from(value), lease: this.leaseId })
      .catch((e: Error) => this.opts.logger?.warn({ err: e.message, nodeId }, 'etcd push publish failed'));
  }

  onRemotePush(fn: (nodeId: number, msg: Record<string, unknown>) => void): () => void {
    this.pushListeners.add(fn);
    return () => this.pushListeners.delete(fn);
  }

  onStateChange(fn: (c: Change) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    // Let a transaction in flight finish; not forever (with etcd unreachable the flush retries until closed).
    for (let waitedMs = 0; this.isFlushing && this.client && waitedMs < 5_000; waitedMs += 5) await new Promise((r) => setTimeout(r, 5));
    this.isClosed = true;
    for (const it of this.blockWaiters.splice(0)) if (it.kind === 'commit') it.resolve(err('internal', 'registry store is closed'));
    for (const it of this.queue.splice(0)) if (it.kind === 'commit') it.resolve(err('internal', 'registry store is closed'));
    // Bounded: a watch stream that is reconnecting may never answer its cancel.
    await withinMs(this.watcher?.cancel(), 2_000);
    // Revoking ends this replica's liveness keys at once (a killed replica's end with the lease TTL).
    await withinMs(this.lease?.revoke(), 3_000);
    this.client?.close();
    this.client = null;
  }

  // ---- keys ----

  private key(kind: string, id: string | number): string {
    return `${this.pfx}${kind}${id}`;
  }

  /** The Change an etcd key/value stands for (value null = absent); null for derived/unknown keys. */
  private decode(key: string, value: string | null): Change | 'derived' | null {
    const rest = key.slice(this.pfx.length);
    const slash = rest.indexOf('/');
    const kind = slash < 0 ? rest : rest.slice(0, slash + 1);
    const arg = slash < 0 ? '' : rest.slice(slash + 1);
    let c: unknown;
    try {
      switch (kind) {
        case 'next':
          return 'derived'; // the reservation counter, not the server's allocation pointer
        case 'n/':
          c = { k: 'node', id: Number(arg), v: value === null ? null : JSON.parse(value) };
          break;
        case 'k/':
          c = { k: 'pubkey', key: arg, id: value === null ? null : Number(value) };
          break;
        case 't/':
          c = { k: 'trust', edge: arg, v: value !== null };
          break;
        case 'i/':
          c = { k: 'intent', edge: arg, v: value !== null };
          break;
        case 'p/':
          c = { k: 'proven', key: arg, v: value !== null };
          break;
        case 'in/':
          c = { k: 'inbox', id: Number(arg), v: value === null ? [] : JSON.parse(value) };
          break;
        case 're/':
          c = { k: 'responses', id: Number(arg), v: value === null ? [] : JSON.parse(value) };
          break;
        case 'kh/':
          c = { k: 'keys', id: Number(arg), v: value === null ? null : JSON.parse(value) };
          break;
        case 'net/':
          c = { k: 'network', id: Number(arg), v: value === null ? null : JSON.parse(value) };
          break;
        case 'h/':
        case 'nn/':
        case 'tx/':
        case 'a/':
        case 'b/':
        case 'bn/':
        case 'push/':
          return 'derived';
        default:
          return null;
      }
    } catch {
      return null;
    }
    return isChange(c) ? c : null;
  }

  /** One key's new value in our copy (load, watch, refresh): the state, or the derived maps. */
  private applyKey(key: string, value: string | null, rev: number, isLive: boolean, deliversPush = isLive): void {
    this.revs.set(key, value === null ? -rev : rev);
    // A commit still queued that writes this key was computed on the value this one replaces: sent as it is,
    // its compare (against the revision our copy now has) would pass and overwrite the other replica's change.
    if (isLive) {
      for (const it of this.queue) {
        if (it.kind !== 'commit' || it.isStale) continue;
        it.keys ??= new Set(this.keysOf(it));
        if (it.keys.has(key)) it.isStale = true;
      }
    }
    const c = this.decode(key, value);
    if (c === null) {
      this.opts.logger?.warn({ key: key.slice(0, 120) }, 'etcd store: ignoring a malformed key');
      return;
    }
    if (c !== 'derived') {
      applyChange(this.state!, c);
      if (isLive) for (const fn of this.stateListeners) fn(c);
      return;
    }
    const rest = key.slice(this.pfx.length);
    if (rest === 'next') this.globalNext = value === null ? 1 : Math.max(1, Number(value) || 1);
    else if (rest.startsWith('h/')) this.hosts.set(rest.slice(2), value === null ? null : Number(value));
    else if (rest.startsWith('nn/')) this.netNames.set(rest.slice(3), value === null ? null : Number(value));
    else if (rest.startsWith('a/')) this.setAlive(Number(rest.slice(2)), value);
    else if (rest.startsWith('bn/')) {
      if (value === null) this.beaconHolder.delete(Number(rest.slice(3)));
      else this.beaconHolder.set(Number(rest.slice(3)), value);
    } else if (rest.startsWith('b/')) {
      if (value === null) this.beacons.delete(rest.slice(2));
      else this.beacons.set(rest.slice(2), value);
    } else if (rest.startsWith('push/') && deliversPush && value !== null) this.deliverPush(Number(rest.slice(5)), value);
  }

  private setAlive(id: number, holder: string | null): void {
    if (holder === null) this.alive.delete(id);
    else this.alive.set(id, holder);
  }

  private deliverPush(nodeId: number, value: string): void {
    let v: unknown;
    try {
      v = JSON.parse(value);
    } catch {
      return;
    }
    const o = v as { r?: unknown; m?: unknown };
    if (typeof o !== 'object' || o === null || o.r === this.replicaId || typeof o.m !== 'object' || o.m === null) return;
    this.stats.pushesIn++;
    for (const l of this.pushListeners) l(nodeId, o.m as Record<string, unknown>);
  }

  private onEvent(isDelete: boolean, kv: IKeyValue): void {
    if (this.isClosed || !this.state) return;
    // Our own transaction's events can arrive before its response: applied then, they would roll back the
    // values of commits queued behind it (still only in our copy). Held until the response set the revisions.
    if (this.isTxnInFlight) {
      this.heldEvents.push({ isDelete, kv });
      return;
    }
    this.stats.watchEvents++;
    const key = kv.key.toString('utf8');
    const rev = Number(kv.mod_revision);
    if (Math.abs(this.revs.get(key) ?? 0) >= rev) return; // our own commit, or older than what a refresh read
    this.applyKey(key, isDelete ? null : kv.value.toString('utf8'), rev, true);
  }

  /** Follow every change under the prefix from `revision`; a watch that ends (compaction, cancel) resyncs. */
  private async watchFrom(revision: number): Promise<void> {
    const w = await this.client!.watch().prefix(this.pfx).startRevision(String(revision)).create();
    this.watcher = w;
    w.on('data', (res) => {
      for (const ev of res.events) this.onEvent(ev.type === 'Delete', ev.kv);
    });
    w.on('error', (e) => {
      if (this.isClosed || this.watcher !== w) return;
      this.opts.logger?.warn({ err: e.message }, 'etcd watch ended (a compaction past our revision?); reloading and watching again');
      this.watcher = null;
      void this.resync();
    });
    w.on('disconnected', () => this.opts.logger?.warn('etcd watch disconnected; reconnecting'));
  }

  /**
   * After the watch ended: read everything again at one revision, apply what changed since our copy (as live
   * changes: listeners hear them, e.g. network views), delete what is gone, and watch from there. Retried with
   * backoff while etcd is unreachable.
   */
  private async resync(): Promise<void> {
    for (let delayMs = 200; !this.isClosed; delayMs = Math.min(delayMs * 2, 5_000)) {
      try {
        const seen = new Set<string>();
        const revision = await this.readAll((key, value, rev) => {
          seen.add(key);
          if (Math.abs(this.revs.get(key) ?? 0) < rev) this.applyKey(key, value, rev, true);
        });
        for (const [key, rev] of [...this.revs]) if (rev > 0 && !seen.has(key)) this.applyKey(key, null, revision, true);
        this.stats.resyncs++;
        await this.watchFrom(revision + 1);
        this.opts.logger?.info({ revision }, 'etcd store resynced');
        return;
      } catch (e) {
        this.opts.logger?.warn({ err: (e as Error).message }, 'etcd resync failed; retrying');
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }

  // ---- load ----

  /** Every key under the prefix at one revision, a page at a time; returns that revision. */
  private async loadAll(state: RegistryState): Promise<number> {
    void state;
    return this.readAll((key, value, rev) => this.applyKey(key, value, rev, false));
  }

  /** Every key under the prefix at one revision, a page at a time, to `each`; returns that revision. */
  private async readAll(each: (key: string, value: string, rev: number) => void): Promise<number> {
    const kv = this.client!.kv;
    const end = prefixEnd(this.pfx);
    let from = Buffer.from(this.pfx);
    let revision = 0;
    for (;;) {
      const res = await kv.range({ key: from, range_end: end, limit: LOAD_PAGE, ...(revision ? { revision } : {}) });
      if (!revision) revision = Number(res.header.revision);
      for (const item of res.kvs) each(item.key.toString('utf8'), item.value.toString('utf8'), Number(item.mod_revision));
      if (!res.more || res.kvs.length === 0) break;
      from = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    return revision;
  }

  private async grantLease(): Promise<void> {
    const lease = this.client!.lease(this.opts.leaseTtlSec ?? 10);
    this.lease = lease;
    this.leaseId = await lease.grant();
    lease.on('lost', (e) => {
      if (this.isClosed || this.lease !== lease) return;
      this.opts.logger?.warn({ err: e.message }, 'etcd lease lost (etcd unreachable longer than its TTL); granting a new one');
      this.leaseId = null;
      void this.regrant();
    });
  }

  private async regrant(): Promise<void> {
    for (let delayMs = 200; !this.isClosed; delayMs = Math.min(delayMs * 2, 5_000)) {
      try {
        await this.grantLease();
        if (this.advertisedBeacon !== null) void this.putBeacon();
        return;
      } catch (e) {
        this.opts.logger?.warn({ err: (e as Error).message }, 'etcd lease grant failed; retrying');
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }

  // ---- commit pipeline ----

  private kick(): void {
    if (this.isFlushing) return;
    this.isFlushing = true;
    setImmediate(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.isClosed) {
        const batch = this.takeBatch();
        const built = this.build(batch);
        if (built === 'conflict') {
          await this.recover(batch, 'conflict');
          continue;
        }
        const marker = `${this.txnNonce}:${++this.txnSeq}`;
        const markerOp: { key: Buffer; value: Buffer; lease?: string } = { key: Buffer.from(this.key('tx/', this.replicaId)), value: Buffer.from(marker) };
        if (this.leaseId !== null) markerOp.lease = this.leaseId;
        built.success.push({ request_put: markerOp });
        let rev: number | null = null;
        let cause: unknown = null;
        this.isTxnInFlight = true;
        try {
          this.stats.txns++;
          const res = await this.client!.kv.txn({ compare: built.compare, success: built.success, failure: [] });
          if (res.succeeded) rev = Number(res.header.revision);
        } catch (e) {
          cause = e;
          this.opts.logger?.warn({ err: (e as Error).message }, 'etcd transaction failed; reading its outcome');
        }
        // Failed or threw: it may still have committed in an attempt whose answer was lost (events stay held
        // meanwhile, as for a transaction in flight).
        if (rev === null) {
          const landed = await this.landedRevision(marker);
          if (landed === 'unknown') {
            this.releaseEvents();
            await this.recover(batch, 'unavailable', cause);
            continue;
          }
          if (landed !== null) this.stats.landedAfterFailure++;
          rev = landed;
        }
        if (rev === null) {
          this.releaseEvents();
          await this.recover(batch, 'conflict');
          continue;
        }
        for (const [key, op] of built.ops) {
          this.revs.set(key, op.value === null ? -rev : rev);
          const rest = key.slice(this.pfx.length);
          if (rest.startsWith('h/')) this.hosts.set(rest.slice(2), op.value === null ? null : Number(op.value));
          else if (rest.startsWith('nn/')) this.netNames.set(rest.slice(3), op.value === null ? null : Number(op.value));
          else if (rest.startsWith('a/')) this.setAlive(Number(rest.slice(2)), op.value);
        }
        this.releaseEvents();
        for (const it of batch) {
          if (it.kind === 'commit') it.resolve(ok());
          else this.touching.delete(it.id);
        }
      }
    } finally {
      this.isFlushing = false;
      if (this.queue.length > 0 && !this.isClosed) this.kick();
    }
  }

  private releaseEvents(): void {
    this.isTxnInFlight = false;
    const held = this.heldEvents;
    this.heldEvents = [];
    for (const e of held) this.onEvent(e.isDelete, e.kv);
  }

  /** Queued items in order while their keys fit one transaction (a single item always goes). */
  private takeBatch(): Item[] {
    const keys = new Set<string>();
    let n = 0;
    for (; n < this.queue.length; n++) {
      const itemKeys = this.keysOf(this.queue[n]!);
      const extra = itemKeys.filter((k) => !keys.has(k));
      if (n > 0 && keys.size + extra.length > MAX_TXN_KEYS) break;
      for (const k of extra) keys.add(k);
    }
    return this.queue.splice(0, Math.max(1, n));
  }

  /** Every etcd key an item may write (for batching and for the refresh after a conflict). */
  private keysOf(it: Item): string[] {
    if (it.kind === 'touch') return [this.key('a/', it.id)];
    const out: string[] = [];
    for (const c of it.changes) {
      switch (c.k) {
        case 'next':
          break; // local to our id block
        case 'node': {
          out.push(this.key('n/', c.id), this.key('a/', c.id));
          const old = this.hosts.of.get(c.id);
          if (old !== undefined) out.push(this.key('h/', old));
          if (c.v?.hostname) out.push(this.key('h/', c.v.hostname));
          break;
        }
        case 'pubkey':
          out.push(this.key('k/', c.key));
          break;
        case 'trust':
          out.push(this.key('t/', c.edge));
          break;
        case 'intent':
          out.push(this.key('i/', c.edge));
          break;
        case 'proven':
          out.push(this.key('p/', c.key));
          break;
        case 'inbox':
          out.push(this.key('in/', c.id));
          break;
        case 'responses':
          out.push(this.key('re/', c.id));
          break;
        case 'keys':
          out.push(this.key('kh/', c.id));
          break;
        case 'network': {
          out.push(this.key('net/', c.id));
          const old = this.netNames.of.get(c.id);
          if (old !== undefined) out.push(this.key('nn/', old));
          const next = c.v ? networkNameOf(c.v) : null;
          if (next) out.push(this.key('nn/', next));
          break;
        }
      }
    }
    return out;
  }

  /**
   * The batch as one transaction: last write per key wins (etcd refuses a key twice), each key compared once
   * against the revision our copy had. 'conflict' when our own view already shows a clash (a hostname etcd
   * holds for another node).
   */
  private build(batch: Item[]): { ops: Map<string, Op>; compare: ICompare[]; success: IRequestOp[] } | 'conflict' {
    const ops = new Map<string, Op>();
    const compared = new Set<string>();
    const hostClaims = new BatchClaims(this.hosts); // hostnames as this batch leaves them
    const netClaims = new BatchClaims(this.netNames); // network names as this batch leaves them
    /** Move `id`'s derived unique-name key (`prefix`) to `next` in this batch; false when another id holds it. */
    const claim = (claims: BatchClaims, prefix: string, id: number, next: string | null): boolean => {
      const old = claims.nameOf(id);
      if (old !== null && old !== next) {
        put(this.key(prefix, old), null);
        claims.holders.set(old, null);
      }
      if (next !== null && old !== next) {
        const holder = claims.holderOf(next);
        if (holder !== null && holder !== id) return false;
        put(this.key(prefix, next), String(id));
        claims.holders.set(next, id);
      }
      claims.names.set(id, next);
      return true;
    };
    const put = (key: string, value: string | null, compare = true): void => {
      ops.delete(key); // keep insertion order = last write
      ops.set(key, { value, withLease: false });
      if (compare) compared.add(key);
    };
    for (const it of batch) {
      if (it.kind === 'touch') {
        ops.delete(this.key('a/', it.id));
        ops.set(this.key('a/', it.id), { value: this.replicaId, withLease: true });
        continue;
      }
      if (it.isOutsideBlocks || it.isStale) return 'conflict';
      for (const c of it.changes) {
        switch (c.k) {
          case 'next':
            break; // the id came from our reserved block

          case 'node': {
            put(this.key('n/', c.id), c.v === null ? null : JSON.stringify(c.v));
            if (!claim(hostClaims, 'h/', c.id, c.v?.hostname ? c.v.hostname : null)) return 'conflict';
            if (c.v === null) put(this.key('a/', c.id), null);
            break;
          }
          case 'pubkey':
            put(this.key('k/', c.key), c.id === null ? null : String(c.id));
            break;
          case 'trust':
            put(this.key('t/', c.edge), c.v ? '1' : null);
            break;
          case 'intent':
            put(this.key('i/', c.edge), c.v ? '1' : null);
            break;
          case 'proven':
            put(this.key('p/', c.key), c.v ? '1' : null);
            break;
          case 'inbox':
            put(this.key('in/', c.id), c.v.length === 0 ? null : JSON.stringify(c.v));
            break;
          case 'responses':
            put(this.key('re/', c.id), c.v.length === 0 ? null : JSON.stringify(c.v));
            break;
          case 'keys': // a node's key history (issue 14: rotate-key)
            put(this.key('kh/', c.id), c.v === null ? null : JSON.stringify(c.v));
            break;
          case 'network': { // a network's signed membership chain (issue 15), and its name's derived key
            put(this.key('net/', c.id), c.v === null ? null : JSON.stringify(c.v));
            if (!claim(netClaims, 'nn/', c.id, c.v ? networkNameOf(c.v) : null)) return 'conflict';
            break;
          }
        }
      }
    }
    const compare: ICompare[] = [];
    for (const key of compared) {
      compare.push({ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: Math.max(this.revs.get(key) ?? 0, 0) });
    }
    const success: IRequestOp[] = [];
    for (const [key, op] of ops) {
      if (op.value === null) success.push({ request_delete_range: { key: Buffer.from(key) } });
      else {
        const req: { key: Buffer; value: Buffer; lease?: string } = { key: Buffer.from(key), value: Buffer.from(op.value) };
        if (op.withLease && this.leaseId !== null) req.lease = this.leaseId;
        success.push({ request_put: req });
      }
    }
    return { ops, compare, success };
  }

  /**
   * A transaction failed (compare, or etcd unreachable: then it may or may not have committed). Our copy holds
   * the failed batch's values, and every commit queued since was computed on top of them: re-read all their keys
   * from etcd into the copy (again for commits that arrive meanwhile), then answer them all — `conflict` (the
   * server runs them again) or `internal` (store unavailable).
   */
  private async recover(batch: Item[], why: 'conflict' | 'unavailable', cause?: unknown): Promise<void> {
    if (why === 'conflict') this.stats.conflicts++;
    const failed: Item[] = [];
    const refreshed = new Set<string>();
    let pending = [...batch, ...this.queue.splice(0)];
    while (pending.length > 0 && !this.isClosed) {
      // Every round reads all its items' keys, also ones an earlier round read: an item queued during an earlier
      // read may have been computed on the corrected copy, and then its own (uncommitted) values sit there —
      // kept, its rerun would find them ("handshake request already pending" from itself).
      const keys = new Set<string>();
      for (const it of pending) for (const k of this.keysOf(it)) keys.add(k);
      await this.refreshUntilDone([...keys]);
      for (const k of keys) refreshed.add(k);
      // A hostname etcd gives to another node: read that node too, so the rerun sees who holds the name
      // (already_exists) instead of conflicting again until the watch brings it.
      const holders: string[] = [];
      for (const k of keys) {
        if (k.startsWith(`${this.pfx}nn/`)) {
          // A network name another replica's network holds: read that network too, so the rerun answers
          // already_exists.
          const holder = this.netNames.owner.get(k.slice(this.pfx.length + 3));
          if (holder !== undefined && !this.state!.networks.has(holder) && !refreshed.has(this.key('net/', holder))) holders.push(this.key('net/', holder));
          continue;
        }
        if (!k.startsWith(`${this.pfx}h/`)) continue;
        const name = k.slice(this.pfx.length + 2);
        const holder = this.hosts.owner.get(name);
        if (holder === undefined || this.state!.hostnameIndex.get(name) === holder) continue;
        const rec = this.state!.nodes.get(holder);
        if (rec?.hostname === name) applyChange(this.state!, { k: 'node', id: holder, v: rec }); // re-derive the index
        else if (!refreshed.has(this.key('n/', holder))) holders.push(this.key('n/', holder));
      }
      if (holders.length > 0) {
        await this.refreshUntilDone(holders);
        for (const k of holders) refreshed.add(k);
      }
      failed.push(...pending);
      pending = this.queue.splice(0);
    }
    failed.push(...pending);
    const result: Result<void> =
      why === 'conflict'
        ? storeConflict('another replica changed this request\'s keys')
        : err('internal', `registry store unavailable: ${(cause as Error | undefined)?.message ?? 'etcd'}`, { cause });
    for (const it of failed) {
      if (it.kind === 'commit') it.resolve(result);
      else this.touching.delete(it.id);
    }
  }

  /**
   * Whether the transaction that put `marker` committed: its revision, null when it did not, 'unknown' when
   * etcd did not answer (closing, or 5 tries over ~6 s).
   */
  private async landedRevision(marker: string): Promise<number | null | 'unknown'> {
    const key = Buffer.from(this.key('tx/', this.replicaId));
    const read = async (): Promise<number | null> => {
      const res = await this.client!.kv.txn({ compare: [], success: [{ request_range: { key } }], failure: [] });
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      return kv && kv.value.toString('utf8') === marker ? Number(kv.mod_revision) : null;
    };
    const r = await this.retrying(read, 'etcd: reading a transaction\'s outcome failed; retrying', {}, 5);
    return r.done ? r.value : 'unknown';
  }

  private async refreshUntilDone(keys: string[]): Promise<void> {
    await this.retrying(() => this.refresh(keys), 'etcd re-read after a failed transaction failed; retrying', { keys: keys.length });
  }

  /** `fn` until it resolves (backoff 100 ms doubling to 2 s), at most `attempts` times; not done when closed first. */
  private async retrying<T>(fn: () => Promise<T>, warning: string, fields: object, attempts = Infinity): Promise<{ done: true; value: T } | { done: false }> {
    for (let attempt = 0, delayMs = 100; attempt < attempts && !this.isClosed; attempt++, delayMs = Math.min(delayMs * 2, 2_000)) {
      try {
        return { done: true, value: await fn() };
      } catch (e) {
        this.opts.logger?.warn({ err: (e as Error).message, ...fields }, warning);
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
    return { done: false };
  }

  /** etcd's current values of `keys` into our copy (unless the watch already brought something newer). */
  private async refresh(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += MAX_TXN_KEYS) {
      const chunk = keys.slice(i, i + MAX_TXN_KEYS);
      const res = await this.client!.kv.txn({ compare: [], success: chunk.map((k) => ({ request_range: { key: Buffer.from(k) } })), failure: [] });
      const at = Number(res.header.revision);
      chunk.forEach((key, j) => {
        if (Math.abs(this.revs.get(key) ?? 0) > at) return;
        const kv = res.responses[j]?.response_range?.kvs?.[0];
        this.stats.refreshedKeys++;
        // Live: these are other replicas' changes our copy had not heard (the watch will skip them now), so the
        // listeners (the server's network views) hear them here; pushes stay the watch's alone (a re-read never
        // delivers one again).
        if (kv) this.applyKey(key, kv.value.toString('utf8'), Number(kv.mod_revision), true, false);
        else this.applyKey(key, null, at, true, false);
      });
    }
  }
}

/** Wait for `p` (errors ignored), at most `ms`. */
function withinMs(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!p) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    p.then(
      () => (clearTimeout(t), resolve()),
      () => (clearTimeout(t), resolve()),
    );
  });
}

/** The first key after every key starting with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i]!++;
      return out;
    }
  }
  return Buffer.from([0]);
}

/** A derived unique-name key family as etcd holds it (`h/` hostnames, `nn/` network names): name ↔ id. */
class NameIndex {
  readonly owner = new Map<string, number>();
  readonly of = new Map<number, string>();

  set(name: string, id: number | null): void {
    const old = this.owner.get(name);
    if (old !== undefined && this.of.get(old) === name) this.of.delete(old);
    if (id === null) this.owner.delete(name);
    else {
      this.owner.set(name, id);
      this.of.set(id, name);
    }
  }
}

/** One transaction's view of a NameIndex: what the batch changed so far, else the index. */
class BatchClaims {
  readonly names = new Map<number, string | null>();
  readonly holders = new Map<string, number | null>();
  constructor(private readonly index: NameIndex) {}
  nameOf(id: number): string | null {
    return this.names.has(id) ? this.names.get(id)! : (this.index.of.get(id) ?? null);
  }
  holderOf(name: string): number | null {
    return this.holders.has(name) ? this.holders.get(name)! : (this.index.owner.get(name) ?? null);
  }
}

/** A network record's current name: its last create or rename change's (the chain's own order). */
export function networkNameOf(rec: NetworkRecord): string | null {
  let name: string | null = null;
  for (const c of rec.changes as unknown as { op?: unknown; name?: unknown }[]) {
    if ((c.op === 'create' || c.op === 'rename') && typeof c.name === 'string') name = c.name;
  }
  return name;
}
