// Storage quotas for what peers store on this node (inbox messages, received files): a count and a byte limit
// per sender and in total. Usage is learnt once from the directory (lazily, on first use), then kept in memory:
// a reservation is taken before anything is written, may grow while data streams in, and is either committed
// (the item is stored) or released (aborted). Nothing already stored is ever removed to make room; a sender over
// its limit gets `quota_exceeded` and the data is not written.
import { err, ok, type Result } from '../core/result.js';
import type { StorageQuotas } from '../node/daemon-options.js';

export interface QuotaLimits {
  /** 0 = no limit, for each of the four. */
  perPeerCount: number;
  perPeerBytes: number;
  totalCount: number;
  totalBytes: number;
}

/** One stored item as the scan finds it. `peer` '' = unknown sender (counts toward the totals only). */
export interface StoredUsage {
  peer: string;
  bytes: number;
}

export interface Reservation {
  /** Bytes held so far (the declared size, plus growth). */
  readonly bytes: number;
  /** Hold `more` bytes too; quota_exceeded (and nothing changes) if that crosses a limit. */
  grow(more: number): Result<void>;
  /** The item is stored: its usage stays counted. */
  commit(): void;
  /** The item was not stored: give its usage back. Safe to call twice or after commit (then a no-op). */
  release(): void;
}

interface Usage {
  count: number;
  bytes: number;
}

/** Usage per sender plus the total; peer '' counts toward the total only. */
class UsageTable {
  readonly byPeer = new Map<string, Usage>();
  total: Usage = { count: 0, bytes: 0 };

  get(peer: string): Usage {
    return this.byPeer.get(peer) ?? { count: 0, bytes: 0 };
  }

  add(peer: string, count: number, bytes: number): void {
    this.total = { count: this.total.count + count, bytes: this.total.bytes + bytes };
    if (peer === '') return;
    const p = this.get(peer);
    const next = { count: p.count + count, bytes: p.bytes + bytes };
    if (next.count <= 0 && next.bytes <= 0) this.byPeer.delete(peer);
    else this.byPeer.set(peer, next);
  }

  clear(): void {
    this.byPeer.clear();
    this.total = { count: 0, bytes: 0 };
  }
}

/** After a refusal the directory is rescanned (usage may have shrunk by hand), at most this often. */
const RESYNC_INTERVAL_MS = 10_000;

export class StorageQuota {
  /** Finished items: from the last scan plus commits since. */
  private readonly stored = new UsageTable();
  /** Reservations not yet committed or released (writes in progress). */
  private readonly pending = new UsageTable();
  private scanning: Promise<Result<void>> | null = null;
  private isLoaded = false;
  private lastScanMs = -Infinity;
  /** Commits while a scan runs: the scan may have missed them, so they are added on top of its result. */
  private committedDuringScan: StoredUsage[] | null = null;

  constructor(
    /** 'inbox' or 'received files', for messages. */
    private readonly what: string,
    /** 'messages' or 'files'. */
    private readonly unit: string,
    readonly limits: QuotaLimits,
    private readonly scan: () => Promise<Result<StoredUsage[]>>,
    private readonly nowMs: () => number = () => Date.now(),
  ) {}

  /**
   * Take `bytes` (the declared size) and one item for `peer`. Errors: quota_exceeded (detail {store, scope,
   * kind, limit, used}), internal (the directory scan failed). Does I/O on first use.
   */
  async reserve(peer: string, bytes: number): Promise<Result<Reservation>> {
    const loaded = await this.load(false);
    if (!loaded.ok) return loaded;
    let refused = this.check(peer, 1, bytes);
    if (refused !== null && this.nowMs() - this.lastScanMs >= RESYNC_INTERVAL_MS) {
      const again = await this.load(true);
      if (!again.ok) return again;
      refused = this.check(peer, 1, bytes);
    }
    if (refused !== null) return refused;
    this.pending.add(peer, 1, bytes);
    let held = bytes;
    let isOpen = true;
    return ok({
      get bytes() {
        return held;
      },
      grow: (more: number): Result<void> => {
        if (!isOpen || more <= 0) return ok();
        const r = this.check(peer, 0, more);
        if (r !== null) return r;
        this.pending.add(peer, 0, more);
        held += more;
        return ok();
      },
      commit: (): void => {
        if (!isOpen) return;
        isOpen = false;
        this.pending.add(peer, -1, -held);
        this.stored.add(peer, 1, held);
        this.committedDuringScan?.push({ peer, bytes: held });
      },
      release: (): void => {
        if (!isOpen) return;
        isOpen = false;
        this.pending.add(peer, -1, -held);
      },
    });
  }

  /** Stored items were removed (clear): usage is learnt again from the directory on next use. */
  invalidate(): void {
    this.isLoaded = false;
  }

  /** Stored plus pending usage of one sender or in total (tests, logs). */
  usage(peer?: string): Usage {
    const a = peer === undefined ? this.stored.total : this.stored.get(peer);
    const b = peer === undefined ? this.pending.total : this.pending.get(peer);
    return { count: a.count + b.count, bytes: a.bytes + b.bytes };
  }

  private check(peer: string, count: number, bytes: number): Result<never> | null {
    const l = this.limits;
    const over = (limit: number, used: number, adding: number): boolean => limit > 0 && adding > 0 && used + adding > limit;
    const refuse = (scope: 'peer' | 'total', kind: 'count' | 'bytes', limit: number, used: number): Result<never> => {
      const whose = scope === 'peer' ? `${this.what} quota for ${peer}` : `total ${this.what} quota`;
      const amount = kind === 'count' ? `${used} of ${limit} ${this.unit} stored` : `${used} of ${limit} bytes used, ${bytes} more needed`;
      return err('quota_exceeded', `${whose} reached (${amount})`, { detail: { store: this.what, scope, kind, limit, used } });
    };
    if (peer !== '') {
      const p = this.usage(peer);
      if (over(l.perPeerCount, p.count, count)) return refuse('peer', 'count', l.perPeerCount, p.count);
      if (over(l.perPeerBytes, p.bytes, bytes)) return refuse('peer', 'bytes', l.perPeerBytes, p.bytes);
    }
    const t = this.usage();
    if (over(l.totalCount, t.count, count)) return refuse('total', 'count', l.totalCount, t.count);
    if (over(l.totalBytes, t.bytes, bytes)) return refuse('total', 'bytes', l.totalBytes, t.bytes);
    return null;
  }

  /** Learn stored usage from the directory (once, or again when `force`); one scan at a time. */
  private load(force: boolean): Promise<Result<void>> {
    if (this.isLoaded && !force) return Promise.resolve(ok());
    if (this.scanning !== null) return this.scanning;
    const run = (async (): Promise<Result<void>> => {
      this.committedDuringScan = [];
      const items = await this.scan();
      const late = this.committedDuringScan;
      this.committedDuringScan = null;
      this.scanning = null;
      if (!items.ok) return items;
      // An item committed while the scan ran may be counted twice until the next scan: the safe direction.
      this.stored.clear();
      for (const it of [...items.value, ...late]) this.stored.add(it.peer, 1, it.bytes);
      this.isLoaded = true;
      this.lastScanMs = this.nowMs();
      return ok();
    })();
    this.scanning = run;
    return run;
  }
}

/** The inbox's share of the daemon's StorageQuotas. */
export function inboxLimitsOf(q: StorageQuotas): QuotaLimits {
  return { perPeerCount: q.inboxMessagesPerPeer, perPeerBytes: q.inboxBytesPerPeer, totalCount: q.inboxMessages, totalBytes: q.inboxBytes };
}

/** The received files' share of the daemon's StorageQuotas. */
export function receivedLimitsOf(q: StorageQuotas): QuotaLimits {
  return { perPeerCount: q.receivedFilesPerPeer, perPeerBytes: q.receivedBytesPerPeer, totalCount: q.receivedFiles, totalBytes: q.receivedBytes };
}
