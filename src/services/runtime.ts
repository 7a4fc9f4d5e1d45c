// Starts the built-in services on their well-known ports, as the original's startBuiltinServices
// (TeoSlayer/pilotprotocol, pkg/daemon/services.go): echo 7, dataexchange 1001, eventstream 1002, each
// switchable. Port 1000 is not bound (see stdio.ts); tasksubmit (1003) is not part of this module.
// Every accepted stream runs in its own task; a failure in one is logged and ends only that stream.
import { join } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import type { Logger } from '../core/logger.js';
import { PORT_DATAEXCHANGE, PORT_ECHO, PORT_EVENTSTREAM } from '../wire/address.js';
import type { PilotStream, PortListener, ServiceHost } from '../node/api.js';
import { serveEcho } from './echo.js';
import { serveDataExchange } from './data-exchange.js';
import { EventBroker } from './event-stream.js';
import { Inbox, type InboxEntryMeta } from './inbox.js';
import { inboxLimitsOf, receivedLimitsOf } from './quota.js';
import type { StorageQuotas } from '../node/daemon-options.js';
import { ReceivedFiles, type StoredReceivedFile } from './received-files.js';
import { MAX_FRAME_PAYLOAD_BYTES } from './data-exchange-codec.js';
import { MAX_EVENT_PAYLOAD_BYTES, MAX_TOPIC_BYTES } from './event-stream-codec.js';
import { messageOf } from './stream-io.js';
import { PartialStore } from './file-transfer-store.js';

export interface ServiceLimits {
  /** Data exchange frames longer than this drop the connection (original: 16 MiB). */
  maxFramePayloadBytes: number;
  /** Received files larger than this are discarded with an ERR ack (single-frame sends). */
  maxFileBytes: number;
  /** Resumable transfers larger than this are refused (0 = only the storage quotas limit them). */
  maxTransferFileBytes: number;
  /** Event topic bytes (original: 1024). */
  maxTopicBytes: number;
  /** Event payload bytes (original: 16 MiB). */
  maxEventPayloadBytes: number;
  /** Streams served at once per port; more are reset on arrival. */
  maxConnectionsPerService: number;
  /** Streams one peer (node id) may hold open per port, so one peer cannot use up the whole budget. */
  maxConnectionsPerPeer: number;
  /** Unsent bytes queued to one event subscriber before it is dropped. */
  maxSubscriberBacklogBytes: number;
}

export const DEFAULT_SERVICE_LIMITS: Readonly<ServiceLimits> = Object.freeze({
  maxFramePayloadBytes: MAX_FRAME_PAYLOAD_BYTES,
  maxFileBytes: MAX_FRAME_PAYLOAD_BYTES,
  maxTransferFileBytes: 0,
  maxTopicBytes: MAX_TOPIC_BYTES,
  maxEventPayloadBytes: MAX_EVENT_PAYLOAD_BYTES,
  maxConnectionsPerService: 256,
  maxConnectionsPerPeer: 32,
  maxSubscriberBacklogBytes: 8 * 1024 * 1024,
});

export interface ServiceOptions {
  echo: boolean;
  dataExchange: boolean;
  eventStream: boolean;
  logger: Logger;
  limits?: Partial<ServiceLimits>;
  /** Storage limits for the inbox and received files created here (defaults: DEFAULT_STORAGE_QUOTAS). */
  quotas?: StorageQuotas;
  /** Share these with NodeApi.inbox()/received(); created under host.home otherwise (with `quotas`). */
  inbox?: Inbox;
  received?: ReceivedFiles;
  /** Wall clock for received_at stamps (tests). */
  now?: () => Date;
  /** Webhook-style notifications (the original emits message.received, file.received, pubsub.published). */
  onMessage?(m: InboxEntryMeta): void;
  onFile?(f: StoredReceivedFile): void;
  onPublish?(e: { topic: string; bytes: number; from: string }): void;
}

export interface RunningServices {
  /** Ports bound, in start order. */
  readonly ports: number[];
  readonly inbox: Inbox;
  readonly received: ReceivedFiles;
  readonly broker: EventBroker | null;
  /** Streams being served right now, all ports together. */
  activeConnections(): number;
  /** Close the listeners, reset every served stream and wait for their tasks to finish. */
  stop(): Promise<void>;
}

interface Service {
  port: number;
  name: string;
  serve(stream: PilotStream): Promise<void>;
}

/**
 * Bind and serve the enabled services. Errors: whatever host.listen returns (e.g. already_exists when a
 * port is taken); nothing is left bound on failure. No I/O before the first stream arrives.
 */
export function startServices(host: ServiceHost, opts: ServiceOptions): Result<RunningServices> {
  const limits: ServiceLimits = { ...DEFAULT_SERVICE_LIMITS, ...opts.limits };
  const logger = opts.logger;
  const q = opts.quotas;
  const inbox = opts.inbox ?? new Inbox(join(host.home, 'inbox'), { logger, now: opts.now, ...(q ? { quota: inboxLimitsOf(q) } : {}) });
  const received =
    opts.received ?? new ReceivedFiles(join(host.home, 'received'), { logger, now: opts.now, ...(q ? { quota: receivedLimitsOf(q) } : {}) });
  const hostnameOf = (id: number): string | null => host.hostnameOf(id);
  // Resumable transfers keep their partial files outside received/ (file-transfer-store.ts).
  const partials = new PartialStore(join(host.home, 'partial'), { logger });
  if (opts.dataExchange) void partials.sweep();

  const services: Service[] = [];
  if (opts.echo) services.push({ port: PORT_ECHO, name: 'echo', serve: (s) => serveEcho(s, logger) });
  if (opts.dataExchange) {
    services.push({
      port: PORT_DATAEXCHANGE,
      name: 'dataexchange',
      serve: (s) =>
        serveDataExchange(s, {
          inbox,
          received,
          hostnameOf,
          logger,
          maxFramePayloadBytes: limits.maxFramePayloadBytes,
          maxFileBytes: limits.maxFileBytes,
          onMessage: opts.onMessage,
          onFile: opts.onFile,
          fileTransfer: { received, partials, hostnameOf, logger, maxFileBytes: limits.maxTransferFileBytes, onFile: opts.onFile },
        }),
    });
  }
  let broker: EventBroker | null = null;
  if (opts.eventStream) {
    const b = new EventBroker({
      logger,
      maxTopicBytes: limits.maxTopicBytes,
      maxPayloadBytes: limits.maxEventPayloadBytes,
      maxSubscriberBacklogBytes: limits.maxSubscriberBacklogBytes,
      onPublish: opts.onPublish,
    });
    broker = b;
    services.push({ port: PORT_EVENTSTREAM, name: 'eventstream', serve: (s) => b.serve(s) });
  }

  const listeners: PortListener[] = [];
  for (const svc of services) {
    const ln = host.listen(svc.port);
    if (!ln.ok) {
      for (const l of listeners) l.close();
      return err(ln.error.code, `${svc.name} service failed to start on port ${svc.port}: ${ln.error.message}`, {
        cause: ln.error,
        detail: { port: svc.port },
      });
    }
    listeners.push(ln.value);
  }

  const active = new Set<PilotStream>();
  const tasks = new Set<Promise<void>>();
  let isStopping = false;

  const acceptLoop = async (svc: Service, ln: PortListener): Promise<void> => {
    const activeHere = new Set<PilotStream>();
    const perPeer = new Map<number, number>();
    for (;;) {
      let stream: PilotStream | null;
      try {
        stream = await ln.accept();
      } catch (e) {
        logger.error({ port: svc.port, err: messageOf(e) }, 'accept failed; service stopped');
        return;
      }
      if (stream === null || isStopping) {
        stream?.destroy();
        return;
      }
      const peerCount = perPeer.get(stream.remoteNodeId) ?? 0;
      if (activeHere.size >= limits.maxConnectionsPerService || peerCount >= limits.maxConnectionsPerPeer) {
        logger.warn({ port: svc.port, remote: stream.remoteAddr, peer_connections: peerCount }, 'too many connections, stream reset');
        stream.destroy();
        continue;
      }
      const s = stream;
      active.add(s);
      activeHere.add(s);
      perPeer.set(s.remoteNodeId, peerCount + 1);
      const task = (async (): Promise<void> => {
        try {
          await svc.serve(s);
        } catch (e) {
          // A throw here is a bug in a service; it must not take the other connections down.
          logger.error({ port: svc.port, remote: s.remoteAddr, err: messageOf(e) }, 'service task failed');
          s.destroy();
        } finally {
          active.delete(s);
          activeHere.delete(s);
          const left = (perPeer.get(s.remoteNodeId) ?? 1) - 1;
          if (left > 0) perPeer.set(s.remoteNodeId, left);
          else perPeer.delete(s.remoteNodeId);
        }
      })();
      tasks.add(task);
      void task.finally(() => tasks.delete(task));
    }
  };

  const loops = services.map((svc, i) => acceptLoop(svc, listeners[i]!));
  for (const svc of services) logger.info({ port: svc.port }, `${svc.name} service listening`);

  return ok({
    ports: services.map((s) => s.port),
    inbox,
    received,
    broker,
    activeConnections: () => active.size,
    async stop(): Promise<void> {
      if (isStopping) return;
      isStopping = true;
      for (const l of listeners) l.close();
      for (const s of active) s.destroy();
      await Promise.all(loops);
      await Promise.all([...tasks]);
    },
  });
}
