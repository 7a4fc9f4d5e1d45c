// The webhook delivery queue, sans-IO (STYLE §2): node events and `nowMs` go in, HTTP requests to make and the
// next deadline come out; the driver (dispatcher.ts) does the HTTP, the timer and the file. One delivery is in
// flight at a time and events leave in the order they happened (head of line: a receiver that is down holds
// the queue until it answers, and then gets everything in order).
//
// Each event's body is fixed when it is queued, so every retry — also after a restart, from the persisted
// queue — sends the same bytes under the same signature and event id (receivers dedupe on the id).
// Backoff: failure n waits min(max, base · 2^(n-1)) scaled by a factor drawn uniformly from [1 - jitter, 1]
// ("equal jitter" for jitter = 0.5) from the seeded Rng, so a fleet of nodes does not retry in step.
import { createHmac } from 'node:crypto';
import type { Rng } from '../../core/rng.js';
import type { NodeEvent, NodeEventType } from '../events.js';

export interface WebhookTarget {
  url: string;
  /** HMAC-SHA256 key; null = deliveries are unsigned. */
  secret: string | null;
  /** Event types (or `prefix.*`) to deliver; null = all. */
  events: readonly string[] | null;
}

export interface QueueOptions {
  /** Events kept at most; a new event past this drops the oldest (counted in `dropped_overflow`). */
  maxEvents: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** 0..1: how much of a backoff delay is random (taken off the top). */
  jitter: number;
  /** An event not delivered this long after it happened is dropped (counted in `dropped_expired`). */
  maxAgeMs: number;
  /** Added as `User-Agent`. */
  userAgent: string;
}

export const DEFAULT_QUEUE_OPTIONS: Readonly<QueueOptions> = Object.freeze({
  maxEvents: 1000,
  backoffBaseMs: 1000,
  backoffMaxMs: 5 * 60_000,
  jitter: 0.5,
  maxAgeMs: 24 * 3600_000,
  userAgent: 'pilot-node',
});

/** One queued delivery (as persisted). */
export interface QueuedEvent {
  id: string;
  type: string;
  /** Wall ms of the event. */
  at_ms: number;
  /** The exact request body (JSON text). */
  body: string;
  /** Failed attempts so far. */
  attempts: number;
}

/** An HTTP POST to make; answer it with handleResult(id, …). */
export interface WebhookRequest {
  eventId: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** What came back: an HTTP status, or a transport error (refused, reset, timeout, TLS). */
export type DeliveryResult = { status: number } | { error: string };

export interface QueueCounters {
  delivered: number;
  /** Attempts that failed (each retry counts). */
  failed_attempts: number;
  dropped_overflow: number;
  /** Refused by the receiver with a 4xx that retrying will not change. */
  dropped_rejected: number;
  dropped_expired: number;
}

export interface QueueStatus extends QueueCounters {
  queued: number;
  queue_limit: number;
  in_flight: boolean;
  /** Failures in a row of the head event (0 after a success). */
  consecutive_failures: number;
  last_error: string | null;
  last_error_at: string | null;
  last_delivered_at: string | null;
  /** When the next attempt is due after a failure (ISO); null when idle, in flight or due now. */
  next_attempt_at: string | null;
}

/** What persists across restarts. */
export interface QueueSnapshot {
  version: 1;
  events: QueuedEvent[];
  counters: QueueCounters;
}

/** `sha256=<hex>` of HMAC-SHA256(secret, body): the X-Pilot-Signature header. Pure. */
export function signBody(secret: string, body: string | Uint8Array): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/** Does `type` pass the filter? `null` = all; entries are exact types or `prefix.*`. */
export function eventMatches(filter: readonly string[] | null, type: string): boolean {
  if (filter === null) return true;
  return filter.some((f) => f === '*' || f === type || (f.endsWith('.*') && type.startsWith(f.slice(0, -1))));
}

/** Backoff before attempt `failures + 1`, in ms: base·2^(failures-1) capped, times a factor in [1 - jitter, 1]. */
export function backoffMs(failures: number, o: Pick<QueueOptions, 'backoffBaseMs' | 'backoffMaxMs' | 'jitter'>, rng: Rng): number {
  const exp = Math.min(o.backoffMaxMs, o.backoffBaseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(exp * (1 - o.jitter * rng.next()));
}

/** 4xx answers that retrying can change (the receiver's own timeout, too early, rate limit). */
const RETRYABLE_4XX = new Set([408, 409, 425, 429]);

export class WebhookQueue {
  private events: QueuedEvent[] = [];
  private counters: QueueCounters = { delivered: 0, failed_attempts: 0, dropped_overflow: 0, dropped_rejected: 0, dropped_expired: 0 };
  private inFlight: string | null = null;
  /** Wall ms before which the head is not tried (after a failure). */
  private notBeforeMs = 0;
  private consecutiveFailures = 0;
  private lastError: string | null = null;
  private lastErrorAtMs: number | null = null;
  private lastDeliveredAtMs: number | null = null;
  private target: WebhookTarget | null = null;
  /** Bumped by every change worth persisting; the driver writes when it moved. */
  private revision = 0;
  readonly options: QueueOptions;

  constructor(
    private readonly rng: Rng,
    options: Partial<QueueOptions> = {},
    /** The node's id and address for each body (0/null before registration). */
    private readonly node: () => { node_id: number; address: string | null } = () => ({ node_id: 0, address: null }),
  ) {
    this.options = { ...DEFAULT_QUEUE_OPTIONS, ...options };
  }

  get changeRevision(): number {
    return this.revision;
  }

  get size(): number {
    return this.events.length;
  }

  /** Where to deliver; null stops deliveries (events are then not queued). Keeps the queue. */
  setTarget(t: WebhookTarget | null): void {
    this.target = t;
    this.notBeforeMs = 0;
    this.consecutiveFailures = 0;
  }

  getTarget(): WebhookTarget | null {
    return this.target;
  }

  /** Forget every queued event (clear-webhook); returns how many. */
  clear(): number {
    const n = this.events.length;
    this.events = [];
    this.inFlight = null;
    this.consecutiveFailures = 0;
    this.revision++;
    return n;
  }

  /** Queue one node event (when a target is set and its filter takes it). `id` is unique per event. */
  handleEvent(e: NodeEvent & { at_ms: number }, id: string): boolean {
    if (!this.target || !eventMatches(this.target.events, e.type)) return false;
    const node = this.node();
    const body = JSON.stringify({ id, type: e.type, time: new Date(e.at_ms).toISOString(), node_id: node.node_id, address: node.address, data: e.data });
    this.events.push({ id, type: e.type, at_ms: e.at_ms, body, attempts: 0 });
    while (this.events.length > this.options.maxEvents) {
      // Drop the oldest that is not on the wire (its answer would find nothing).
      const i = this.events[0]!.id === this.inFlight && this.events.length > 1 ? 1 : 0;
      this.events.splice(i, 1);
      this.counters.dropped_overflow++;
    }
    this.revision++;
    return true;
  }

  /** The next request to make now, or null (nothing queued, one in flight, backing off, no target). */
  pollRequest(nowMs: number): WebhookRequest | null {
    if (!this.target || this.inFlight !== null) return null;
    this.expire(nowMs);
    const head = this.events[0];
    if (!head || nowMs < this.notBeforeMs) return null;
    this.inFlight = head.id;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': this.options.userAgent,
      'x-pilot-event': head.type,
      'x-pilot-event-id': head.id,
      'x-pilot-timestamp': String(Math.floor(head.at_ms / 1000)),
      'x-pilot-delivery-attempt': String(head.attempts + 1),
    };
    if (this.target.secret !== null) headers['x-pilot-signature'] = signBody(this.target.secret, head.body);
    return { eventId: head.id, url: this.target.url, headers, body: head.body };
  }

  /** The answer to the request for `eventId`. A stale id (the queue was cleared meanwhile) is ignored. */
  handleResult(eventId: string, r: DeliveryResult, nowMs: number): void {
    if (this.inFlight !== eventId) return;
    this.inFlight = null;
    const i = this.events.findIndex((e) => e.id === eventId);
    const ev = i >= 0 ? this.events[i]! : null;
    if ('status' in r && r.status >= 200 && r.status < 300) {
      if (i >= 0) this.events.splice(i, 1);
      this.counters.delivered++;
      this.consecutiveFailures = 0;
      this.notBeforeMs = 0;
      this.lastDeliveredAtMs = nowMs;
      this.revision++;
      return;
    }
    this.counters.failed_attempts++;
    this.lastError = 'status' in r ? `HTTP ${r.status}` : r.error;
    this.lastErrorAtMs = nowMs;
    if ('status' in r && r.status >= 400 && r.status < 500 && !RETRYABLE_4XX.has(r.status)) {
      // The receiver refuses this event (a bad signature, a gone endpoint): retrying sends the same bytes.
      if (i >= 0) this.events.splice(i, 1);
      this.counters.dropped_rejected++;
      this.consecutiveFailures = 0;
      this.notBeforeMs = 0;
      this.revision++;
      return;
    }
    if (ev) ev.attempts++;
    this.consecutiveFailures++;
    this.notBeforeMs = nowMs + backoffMs(this.consecutiveFailures, this.options, this.rng);
    this.revision++;
  }

  /** Wall ms of the next pollRequest worth making, or null (idle, or waiting for an answer). */
  pollTimeout(): number | null {
    if (!this.target || this.inFlight !== null || this.events.length === 0) return null;
    return this.notBeforeMs;
  }

  status(): QueueStatus {
    const next = this.pollTimeout();
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    return {
      queued: this.events.length,
      queue_limit: this.options.maxEvents,
      in_flight: this.inFlight !== null,
      ...this.counters,
      consecutive_failures: this.consecutiveFailures,
      last_error: this.lastError,
      last_error_at: iso(this.lastErrorAtMs),
      last_delivered_at: iso(this.lastDeliveredAtMs),
      next_attempt_at: next === null || next === 0 ? null : iso(next),
    };
  }

  snapshot(): QueueSnapshot {
    return { version: 1, events: this.events.map((e) => ({ ...e })), counters: { ...this.counters } };
  }

  /** Take a persisted queue back (at start). Entries that do not decode are skipped; the bound applies. */
  restore(s: unknown): { restored: number; skipped: number } {
    const snap = decodeSnapshot(s);
    const incoming = snap.events;
    const overflow = Math.max(0, incoming.length - this.options.maxEvents);
    this.events = incoming.slice(overflow);
    this.counters = { ...snap.counters, dropped_overflow: snap.counters.dropped_overflow + overflow };
    this.inFlight = null;
    this.revision++;
    return { restored: this.events.length, skipped: snap.skipped };
  }

  private expire(nowMs: number): void {
    let n = 0;
    while (this.events.length > 0 && nowMs - this.events[0]!.at_ms > this.options.maxAgeMs) {
      this.events.shift();
      n++;
    }
    if (n > 0) {
      this.counters.dropped_expired += n;
      this.revision++;
    }
  }
}

/** Total decoder of a persisted snapshot: anything malformed becomes empty or skipped, never a throw. */
export function decodeSnapshot(s: unknown): QueueSnapshot & { skipped: number } {
  const o = typeof s === 'object' && s !== null ? (s as Record<string, unknown>) : {};
  const c = typeof o.counters === 'object' && o.counters !== null ? (o.counters as Record<string, unknown>) : {};
  const num = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);
  const events: QueuedEvent[] = [];
  let skipped = 0;
  for (const raw of Array.isArray(o.events) ? o.events : []) {
    const e = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : null;
    if (e && typeof e.id === 'string' && typeof e.type === 'string' && typeof e.body === 'string' && typeof e.at_ms === 'number' && Number.isFinite(e.at_ms)) {
      events.push({ id: e.id, type: e.type, at_ms: e.at_ms, body: e.body, attempts: num(e.attempts) });
    } else skipped++;
  }
  return {
    version: 1,
    events,
    counters: {
      delivered: num(c.delivered),
      failed_attempts: num(c.failed_attempts),
      dropped_overflow: num(c.dropped_overflow),
      dropped_rejected: num(c.dropped_rejected),
      dropped_expired: num(c.dropped_expired),
    },
    skipped,
  };
}

/** Event types as NodeEventType when known (for the filter's validation). */
export type WebhookEventFilter = readonly (NodeEventType | `${string}.*` | '*')[];
