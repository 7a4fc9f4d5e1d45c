// Runs the webhook queue (queue.ts): listens to the node's events, makes the HTTP POSTs it asks for
// (node:http / node:https, one at a time, a deadline each), arms its next deadline on the node's Driver, and
// keeps the queue in <home>/webhook-queue.json (written after changes, coalesced, off the event path) so
// queued events survive a restart. Nothing here runs inside the emitter: an event is queued in memory and
// the delivery starts on a later turn, so the datapath (which emits too) never waits for a receiver.
import { randomUUID } from 'node:crypto';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import { ok, type Result } from '../../core/result.js';
import type { Rng } from '../../core/rng.js';
import type { WallClock } from '../../core/clock.js';
import { writeFileSafeAsync } from '../../core/safe-file.js';
import { readJsonFile, writeJsonFile } from '../json-file.js';
import type { Deadline, Driver } from '../driver.js';
import type { NodeEvents } from '../events.js';
import { WebhookQueue, type DeliveryResult, type QueueOptions, type QueueStatus, type WebhookRequest, type WebhookTarget } from './queue.js';
import { displayUrl, loadWebhookConfig, makeTarget, saveWebhookConfig, urlWarnings, webhookQueuePath } from './config.js';

/** One POST may take this long in all (connect, TLS, the receiver's answer). */
export const WEBHOOK_REQUEST_TIMEOUT_MS = 10_000;
/** Queue writes are coalesced: at most one per this period. */
const PERSIST_DELAY_MS = 200;

export interface WebhookStatus extends QueueStatus {
  configured: boolean;
  /** The URL without credentials, query values masked. */
  url: string | null;
  secret_set: boolean;
  /** null = every event type. */
  events: string[] | null;
  /** Where the URL came from: `set-webhook` (kept in <home>/webhook.json) or the daemon's --webhook flag. */
  source: 'config' | 'flag' | null;
  warnings: string[];
}

export interface WebhookDispatcherDeps {
  home: string;
  events: NodeEvents;
  driver: Driver;
  wall: WallClock;
  rng: Rng;
  logger: Logger;
  /** The daemon's --webhook (+ secret, events), which wins over the saved config at start. */
  flagTarget: WebhookTarget | null;
  node: () => { node_id: number; address: string | null };
  userAgent: string;
  queue?: Partial<QueueOptions>;
  requestTimeoutMs?: number;
  /** The HTTP POST; default node:http(s). Tests may replace it. */
  post?: (req: WebhookRequest, timeoutMs: number) => Promise<DeliveryResult>;
}

export class WebhookDispatcher {
  private readonly queue: WebhookQueue;
  private source: 'config' | 'flag' | null = null;
  private timer: Deadline | null = null;
  private timerAtMs: number | null = null;
  private persistTimer: Deadline | null = null;
  private persistedRevision = -1;
  /** The asynchronous queue write under way, if any (close() waits for it before its own final write). */
  private writing: Promise<void> | null = null;
  private isClosed = false;
  private readonly unlisten: () => void;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly post: (req: WebhookRequest, timeoutMs: number) => Promise<DeliveryResult>;

  constructor(private readonly deps: WebhookDispatcherDeps) {
    this.queue = new WebhookQueue(deps.rng, { userAgent: deps.userAgent, ...deps.queue }, deps.node);
    this.post = deps.post ?? ((req, t) => postJson(req, t, deps.driver));
    const log = deps.logger;
    // The persisted queue first, then the target: events of an earlier run go to the current URL.
    const q = readJsonFile<unknown>(webhookQueuePath(deps.home), null, (v): v is unknown => true, deps.wall.nowMs());
    if (!q.ok) log.warn({ error: q.error.message }, 'webhook queue not restored');
    else if (q.value !== null) {
      const r = this.queue.restore(q.value);
      if (r.restored > 0 || r.skipped > 0) log.info({ restored: r.restored, skipped: r.skipped }, 'webhook queue restored');
    }
    this.persistedRevision = this.queue.changeRevision;
    if (deps.flagTarget) {
      this.queue.setTarget(deps.flagTarget);
      this.source = 'flag';
    } else {
      const c = loadWebhookConfig(deps.home, deps.wall.nowMs());
      if (!c.ok) log.error({ error: c.error.message }, 'webhook config not loaded');
      else if (c.value) {
        this.queue.setTarget(c.value);
        this.source = 'config';
      }
    }
    for (const w of this.status().warnings) log.warn({ url: this.status().url }, w);
    this.unlisten = deps.events.on((e) => {
      if (this.isClosed) return;
      if (this.queue.handleEvent(e, randomUUID())) this.schedule(0);
    });
    this.schedule(0);
  }

  /** `set-webhook`: replace the target and save it. Errors: invalid_argument, internal (the file). */
  setWebhook(url: string, secret: string | null, events: string | readonly string[] | null): Result<WebhookStatus> {
    const t = makeTarget(url, secret, events);
    if (!t.ok) return t;
    const w = saveWebhookConfig(this.deps.home, t.value);
    if (!w.ok) return w;
    this.queue.setTarget(t.value);
    this.source = 'config';
    this.deps.logger.info({ url: displayUrl(t.value.url), events: t.value.events ?? 'all' }, 'webhook set');
    this.schedule(0);
    return ok(this.status());
  }

  /** `clear-webhook`: no more deliveries, the saved config and the queue go. */
  clearWebhook(): Result<{ cleared: boolean; dropped: number }> {
    const w = saveWebhookConfig(this.deps.home, null);
    if (!w.ok) return w;
    const wasSet = this.queue.getTarget() !== null;
    this.queue.setTarget(null);
    this.source = null;
    const dropped = this.queue.clear();
    this.schedulePersist();
    return ok({ cleared: wasSet, dropped });
  }

  status(): WebhookStatus {
    const t = this.queue.getTarget();
    return {
      configured: t !== null,
      url: t ? displayUrl(t.url) : null,
      secret_set: t?.secret != null,
      events: t?.events ? [...t.events] : null,
      source: t ? this.source : null,
      warnings: t ? urlWarnings(t.url) : [],
      ...this.queue.status(),
    };
  }

  /**
   * Stop listening; give the queue up to `budgetMs` to drain (daemon.stopping is usually queued just before),
   * then write it. Never rejects.
   */
  async close(budgetMs = 2000): Promise<void> {
    if (this.isClosed) return;
    const endAt = this.deps.wall.nowMs() + budgetMs;
    while (this.queue.size > 0 && this.queue.getTarget() && this.deps.wall.nowMs() < endAt) {
      const due = this.queue.pollTimeout();
      // Backing off beyond the budget: keep it for the next start.
      if (due !== null && due > endAt) break;
      this.pump();
      const waitMs = this.inFlight.size === 0 ? Math.min(50, Math.max(1, (due ?? 0) - this.deps.wall.nowMs())) : Math.max(1, endAt - this.deps.wall.nowMs());
      const wait = new Promise<void>((r) => this.deps.driver.after(waitMs, r));
      await Promise.race([...this.inFlight, wait]);
    }
    this.isClosed = true;
    this.unlisten();
    this.timer?.cancel();
    this.persistTimer?.cancel();
    // An earlier write still renaming its temp file would otherwise land after (and over) this last one.
    if (this.writing) await this.writing;
    if (this.queue.changeRevision === this.persistedRevision) return; // nothing new (no file for a node without webhooks)
    const w = writeJsonFile(webhookQueuePath(this.deps.home), this.queue.snapshot());
    if (!w.ok) this.deps.logger.error({ error: w.error.message }, 'webhook queue not saved');
  }

  /** Make every request the queue wants now, then arm its next deadline. */
  private pump(): void {
    if (this.isClosed) return;
    const now = this.deps.wall.nowMs();
    for (let req = this.queue.pollRequest(now); req !== null; req = this.queue.pollRequest(now)) {
      const r = req;
      const p = this.post(r, this.deps.requestTimeoutMs ?? WEBHOOK_REQUEST_TIMEOUT_MS).then(
        (res) => this.handleResult(r, res),
        (e: unknown) => this.handleResult(r, { error: String(e) }),
      );
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
    const next = this.queue.pollTimeout();
    if (next !== null) this.schedule(Math.max(0, next - now));
    this.schedulePersist();
  }

  private handleResult(req: WebhookRequest, res: DeliveryResult): void {
    const before = this.queue.status().failed_attempts;
    this.queue.handleResult(req.eventId, res, this.deps.wall.nowMs());
    if (this.queue.status().failed_attempts > before) {
      this.deps.logger.warn({ event: req.eventId, url: displayUrl(req.url), error: 'status' in res ? `HTTP ${res.status}` : res.error, next_attempt_at: this.queue.status().next_attempt_at }, 'webhook delivery failed');
    }
    if (!this.isClosed) this.pump();
  }

  private schedule(delayMs: number): void {
    if (this.isClosed) return;
    const at = this.deps.wall.nowMs() + delayMs;
    if (this.timer?.isActive && this.timerAtMs !== null && this.timerAtMs <= at) return;
    this.timer?.cancel();
    this.timerAtMs = at;
    this.timer = this.deps.driver.after(delayMs, () => {
      this.timer = null;
      this.timerAtMs = null;
      this.pump();
    });
  }

  private schedulePersist(): void {
    if (this.isClosed || this.persistTimer?.isActive || this.queue.changeRevision === this.persistedRevision) return;
    this.persistTimer = this.deps.driver.after(PERSIST_DELAY_MS, () => {
      this.persistTimer = null;
      void this.persist();
    });
  }

  private persist(): Promise<void> {
    if (this.writing || this.isClosed) return this.writing ?? Promise.resolve();
    const rev = this.queue.changeRevision;
    this.writing = writeFileSafeAsync(webhookQueuePath(this.deps.home), JSON.stringify(this.queue.snapshot())).then((w) => {
      this.writing = null;
      if (!w.ok) this.deps.logger.error({ error: w.error.message }, 'webhook queue not saved');
      else this.persistedRevision = rev;
      this.schedulePersist();
    });
    return this.writing;
  }
}

/** One POST with node:http(s): resolves to the status, or to the transport error; never rejects. Does I/O. */
export function postJson(req: WebhookRequest, timeoutMs: number, driver: Pick<Driver, 'after'>): Promise<DeliveryResult> {
  return new Promise((resolve) => {
    let isDone = false;
    let cr: ClientRequest | null = null;
    const finish = (r: DeliveryResult): void => {
      if (isDone) return;
      isDone = true;
      deadline.cancel();
      resolve(r);
    };
    const onTimeout = (): void => {
      finish({ error: `no answer within ${timeoutMs} ms` });
      cr?.destroy();
    };
    const deadline = driver.after(timeoutMs, onTimeout);
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      finish({ error: 'invalid URL' });
      return;
    }
    const body = Buffer.from(req.body, 'utf8');
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    try {
      cr = send(url, { method: 'POST', headers: { ...req.headers, 'content-length': String(body.length) }, agent: false }, (res) => {
        res.resume(); // the answer's body does not matter; drain it so the socket closes
        res.on('error', () => undefined);
        finish({ status: res.statusCode ?? 0 });
      });
    } catch (e) {
      finish({ error: (e as Error).message });
      return;
    }
    cr.on('error', (e: NodeJS.ErrnoException) => finish({ error: e.code ? `${e.code}: ${e.message}` : e.message }));
    cr.end(body);
  });
}
