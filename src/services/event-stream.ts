// Event stream broker (port 1002) and its clients publish / subscribe. Event layout: see
// event-stream-codec.ts. Broker semantics are the original's eventBroker (TeoSlayer/pilotprotocol,
// pkg/daemon/services.go):
// - a connection's first event is its one subscription; topic "*" receives every topic;
// - each later event is published to subscribers of exactly that topic, plus "*" subscribers when the
//   topic is not "*" itself, never back to the sender;
// - there are no other wildcards (no prefixes or patterns) and no acknowledgement.
// Topics are compared byte for byte as the original's Go strings are. Forwarded events are the
// received bytes unchanged. Unlike the original, one slow subscriber cannot stall a publish: a
// subscriber whose unsent backlog exceeds the cap is dropped.
import type { Duplex } from 'node:stream';
import { err, ok, type Result } from '../core/result.js';
import type { PilotError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { PORT_EVENTSTREAM } from '../wire/address.js';
import type { EventMessage, PeerRef, PilotStream, ServiceHost } from '../node/api.js';
import {
  decodePayloadLength,
  decodeTopicLength,
  encodeEvent,
  MAX_EVENT_PAYLOAD_BYTES,
  MAX_TOPIC_BYTES,
  PAYLOAD_LEN_BYTES,
  TOPIC_LEN_BYTES,
  TOPIC_WILDCARD,
} from './event-stream-codec.js';
import { closeStream, endStream, guardStream, StreamReader, withTimeout, writeChunk } from './stream-io.js';
import { rfc3339 } from './inbox.js';

export interface EventLimits {
  maxTopicBytes: number;
  maxPayloadBytes: number;
}

export interface ReadEvent {
  /** Topic bytes as latin1, so distinct byte strings stay distinct map keys. */
  topicKey: string;
  topic: string;
  payload: Buffer;
  /** The event exactly as received. */
  raw: Buffer;
}

/** Next event from `reader`; ok(null) on a clean end between events. Over-limit lengths are errors. */
export async function readEvent(
  reader: StreamReader,
  limits: EventLimits = { maxTopicBytes: MAX_TOPIC_BYTES, maxPayloadBytes: MAX_EVENT_PAYLOAD_BYTES },
): Promise<Result<ReadEvent | null>> {
  const tlb = await reader.readExact(TOPIC_LEN_BYTES);
  if (!tlb.ok || tlb.value === null) return tlb as Result<null>;
  const tl = decodeTopicLength(tlb.value, limits.maxTopicBytes);
  if (!tl.ok) return tl;
  const topic = await reader.readExactStrict(tl.value);
  if (!topic.ok) return topic;
  const plb = await reader.readExactStrict(PAYLOAD_LEN_BYTES);
  if (!plb.ok) return plb;
  const pl = decodePayloadLength(plb.value, limits.maxPayloadBytes);
  if (!pl.ok) return pl;
  const payload = await reader.readExactStrict(pl.value);
  if (!payload.ok) return payload;
  return ok({
    topicKey: topic.value.toString('latin1'),
    topic: topic.value.toString('utf8'),
    payload: payload.value,
    raw: Buffer.concat([tlb.value, topic.value, plb.value, payload.value]),
  });
}

export interface EventBrokerOptions extends EventLimits {
  logger: Logger;
  /** Unsent bytes queued to one subscriber before it is dropped. */
  maxSubscriberBacklogBytes: number;
  onPublish?(e: { topic: string; bytes: number; from: string }): void;
}

interface Subscriber {
  stream: Duplex;
  remote: string;
}

export class EventBroker {
  private readonly subs = new Map<string, Set<Subscriber>>();

  constructor(private readonly opts: EventBrokerOptions) {}

  /** Number of live subscriptions per topic (tests, status). */
  subscriptionCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, set] of this.subs) out[Buffer.from(k, 'latin1').toString('utf8')] = set.size;
    return out;
  }

  /** Serve one connection: its first event subscribes, the rest publish. */
  async serve(stream: PilotStream): Promise<void> {
    const log = this.opts.logger.child({ service: 'eventstream', remote: stream.remoteAddr });
    guardStream(stream, log);
    const reader = new StreamReader(stream);
    const sub: Subscriber = { stream, remote: stream.remoteAddr };
    let topicKey: string | null = null;
    try {
      const first = await readEvent(reader, this.opts);
      if (!first.ok) {
        log.debug({ err: first.error.message }, 'bad subscription, dropping connection');
        stream.destroy();
        return;
      }
      if (first.value === null) return;
      topicKey = first.value.topicKey;
      this.add(topicKey, sub);
      log.debug({ topic: first.value.topic }, 'subscribed');
      for (;;) {
        const e = await readEvent(reader, this.opts);
        if (!e.ok) {
          log.debug({ err: e.error.message }, 'bad event, dropping connection');
          stream.destroy();
          return;
        }
        if (e.value === null) return;
        this.publish(e.value, sub, log);
      }
    } finally {
      if (topicKey !== null) this.remove(topicKey, sub);
      closeStream(stream, 1000);
    }
  }

  private add(key: string, sub: Subscriber): void {
    let set = this.subs.get(key);
    if (!set) this.subs.set(key, (set = new Set()));
    set.add(sub);
  }

  private remove(key: string, sub: Subscriber): void {
    const set = this.subs.get(key);
    if (!set) return;
    set.delete(sub);
    if (set.size === 0) this.subs.delete(key);
  }

  private publish(e: ReadEvent, sender: Subscriber, log: Logger): void {
    const targets: Subscriber[] = [];
    for (const s of this.subs.get(e.topicKey) ?? []) if (s !== sender) targets.push(s);
    if (e.topicKey !== TOPIC_WILDCARD) {
      for (const s of this.subs.get(TOPIC_WILDCARD) ?? []) if (s !== sender) targets.push(s);
    }
    for (const s of targets) {
      if (s.stream.destroyed || s.stream.writableEnded) continue;
      if (s.stream.writableLength + e.raw.length > this.opts.maxSubscriberBacklogBytes) {
        log.warn({ subscriber: s.remote, backlog_bytes: s.stream.writableLength }, 'slow subscriber dropped');
        s.stream.destroy(); // its serve() loop ends and unsubscribes it
        continue;
      }
      s.stream.write(e.raw);
    }
    log.debug({ topic: e.topic, bytes: e.payload.length, subscribers: targets.length }, 'published');
    this.opts.onPublish?.({ topic: e.topic, bytes: e.payload.length, from: sender.remote });
  }
}

// ---------------------------------------------------------------- clients

export const DEFAULT_EVENT_TIMEOUT_MS = 30_000;

export interface EventClientOptions {
  timeoutMs?: number;
  logger?: Logger;
}

export interface PublishReport {
  target: string;
  topic: string;
  bytes: number;
}

function checkTopic(topic: string): Result<void> {
  if (topic === '') return err('invalid_argument', 'topic is required');
  return ok();
}

/**
 * Publish one event the way the original's `pilotctl publish` does: subscribe to the topic (the broker
 * requires a subscription first), publish, close. No acknowledgement exists in the protocol; success
 * means the bytes were handed to the stream. Errors: invalid_argument, dial errors, connection_failed.
 */
export async function publish(
  host: ServiceHost,
  peer: PeerRef,
  topic: string,
  data: Uint8Array,
  opts: EventClientOptions = {},
): Promise<Result<PublishReport>> {
  const t = checkTopic(topic);
  if (!t.ok) return t;
  const sub = encodeEvent(topic, new Uint8Array(0));
  if (!sub.ok) return sub;
  const ev = encodeEvent(topic, data);
  if (!ev.ok) return ev;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EVENT_TIMEOUT_MS;
  const d = await host.dial(peer, PORT_EVENTSTREAM, { timeoutMs });
  if (!d.ok) return d;
  const stream = d.value;
  guardStream(stream, opts.logger);
  try {
    const both = Buffer.concat([sub.value, ev.value]);
    const w = await writeChunk(stream, both);
    if (!w.ok) return err('connection_failed', `publish failed: ${w.error.message}`);
    await withTimeout(endStream(stream).then(() => ok()), timeoutMs, 'publish');
    return ok({ target: stream.remoteAddr, topic, bytes: data.length });
  } finally {
    closeStream(stream, 1000);
  }
}

/** An event as the subscribe client reports it: the contract's fields plus the original's `bytes`. */
export interface ReceivedEvent extends EventMessage {
  bytes: number;
}

export interface Subscription {
  readonly target: string;
  /** Stop receiving (FIN; the broker unsubscribes us). */
  close(): void;
  /** Resolves when the subscription ended: close(), broker gone, or a protocol error. */
  done: Promise<void>;
  /** Why it ended; null while running or after close(). */
  closeReason(): PilotError | null;
  /** Publish on this connection (the original's Client.Publish); we never receive our own events. */
  publish(topic: string, data: Uint8Array): Promise<Result<void>>;
}

/**
 * Subscribe to `topic` ("*" = all) on `peer`'s broker; `onEvent` runs for each event until close().
 * Errors: invalid_argument, dial errors, connection_failed. Does I/O.
 */
export async function subscribe(
  host: ServiceHost,
  peer: PeerRef,
  topic: string,
  onEvent: (e: ReceivedEvent) => void,
  opts: EventClientOptions & { now?: () => Date } = {},
): Promise<Result<Subscription>> {
  const t = checkTopic(topic);
  if (!t.ok) return t;
  const sub = encodeEvent(topic, new Uint8Array(0));
  if (!sub.ok) return sub;
  const d = await host.dial(peer, PORT_EVENTSTREAM, { timeoutMs: opts.timeoutMs ?? DEFAULT_EVENT_TIMEOUT_MS });
  if (!d.ok) return d;
  const stream = d.value;
  guardStream(stream, opts.logger);
  const w = await writeChunk(stream, sub.value);
  if (!w.ok) {
    stream.destroy();
    return err('connection_failed', `cannot subscribe: ${w.error.message}`);
  }
  const now = opts.now ?? (() => new Date());
  let reason: PilotError | null = null;
  let isClosedByUs = false;
  const reader = new StreamReader(stream);
  const done = (async (): Promise<void> => {
    for (;;) {
      const e = await readEvent(reader);
      if (!e.ok) {
        if (!isClosedByUs) reason = e.error;
        break;
      }
      if (e.value === null) {
        if (!isClosedByUs) reason = { code: 'connection_failed', message: 'event stream closed by peer' };
        break;
      }
      try {
        onEvent({
          topic: e.value.topic,
          data: e.value.payload.toString('utf8'),
          bytes: e.value.payload.length,
          from: stream.remoteAddr,
          received_at: rfc3339(now()),
        });
      } catch (x) {
        opts.logger?.warn({ err: (x as Error).message }, 'subscribe: event handler threw');
      }
    }
    closeStream(stream, 1000);
  })();
  return ok({
    target: stream.remoteAddr,
    close(): void {
      isClosedByUs = true;
      closeStream(stream, 1000);
    },
    done,
    closeReason: () => reason,
    async publish(pubTopic: string, data: Uint8Array): Promise<Result<void>> {
      const ev = encodeEvent(pubTopic, data);
      if (!ev.ok) return ev;
      return writeChunk(stream, ev.value);
    },
  });
}
