#!/usr/bin/env -S node --initial-old-space-size=64
// pilot-daemon: one per agent. Flags as the original's daemon (see src/node/daemon-options.ts).
import { rmSync } from 'node:fs';
import { createLogger } from '../core/logger.js';
import { DATA_PLANE_HEAP_FLAGS, hasDataPlaneHeap, startHeapKeeper } from '../core/heap-flags.js';
import { writeFileSafe } from '../core/safe-file.js';
import { parseDaemonArgs } from '../node/daemon-options.js';
import { homePaths } from '../node/home.js';
import { createNode } from '../sdk/local-node.js';
import { serveIpc } from '../ipc/index.js';
import { serveLegacyIpc } from '../ipc/legacy-server.js';
import { VERSION } from '../node/node.js';

const USAGE = `pilot-daemon [--home DIR] [--registry HOST:PORT] [--beacon HOST:PORT] [--listen HOST:PORT]
             [--socket PATH] [--identity PATH] [--hostname NAME] [--public] [--trust-auto-approve]
             [--log-level debug|info|warn|error] [--log-format json|pretty]
             [--no-echo] [--no-dataexchange] [--no-eventstream] [--config FILE]
             [--keepalive 15s] [--idle-timeout 60s] [--beacon2 HOST:PORT] [--no-relay] [--relay-only] [--no-pmtud]
             [--no-legacy] [--allow-insecure-legacy] [--legacy-socket /tmp/pilot.sock]
compat transport (networks that block UDP or allow only an HTTPS proxy):
             [--transport auto|udp|tcp]   auto (default): UDP; relay over the WebSocket on the rendezvous TLS
                                          port when the beacon gives no UDP answer within 3 s, back when it does;
                                          tcp: no UDP at all (TLS registry + WebSocket relay); udp: UDP only
             [--compat HOST:PORT]         the rendezvous TLS port (default: the registry host, port 443)
             [--proxy http://[user:pass@]host:port]  HTTP CONNECT proxy (default HTTPS_PROXY; NO_PROXY honoured)
             [--registry-fingerprint SHA256]  pin the rendezvous certificate; default: trust on first use,
                                          kept in <home>/known_rendezvous.json
webhooks (docs/webhooks.md; pilotctl set-webhook does the same at run time):
             [--webhook URL] [--webhook-secret S (or env PILOT_WEBHOOK_SECRET)] [--webhook-events a,b] [--webhook-queue-limit 1000]
storage quotas for what peers store here (0 = no limit; over them the sender gets quota_exceeded):
             [--inbox-max-messages-per-peer 1000] [--inbox-max-bytes-per-peer 64MiB]
             [--inbox-max-messages 10000] [--inbox-max-bytes 512MiB]
             [--received-max-files-per-peer 1000] [--received-max-bytes-per-peer 256MiB]
             [--received-max-files 10000] [--received-max-bytes 2GiB]`;

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (argv.includes('--version')) {
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  const parsed = parseDaemonArgs(argv.filter((a) => a !== '--foreground'));
  if (!parsed.ok) {
    process.stderr.write(`pilot-daemon: ${parsed.error.message}\n${parsed.error.hint ?? ''}\n`);
    return 2;
  }
  const opts = parsed.value;
  const logger = createLogger({ level: opts.logLevel, format: opts.logFormat, name: 'pilot-daemon' });
  if (!hasDataPlaneHeap()) {
    logger.info({ hint: `start node with ${DATA_PLANE_HEAP_FLAGS.join(' ')} (pilotctl daemon start and the pilot-daemon bin do)` },
      'started without the data plane\'s heap flag: streams through this daemon spend more CPU in garbage collection');
  }
  const node = await createNode({ ...opts, logger });
  if (!node.ok) {
    logger.fatal({ code: node.error.code, hint: node.error.hint }, node.error.message);
    process.stderr.write(`pilot-daemon: ${node.error.message}\n${node.error.hint ?? ''}\n`);
    return 1;
  }
  const n = node.value;
  const heapLog = logger.child({ component: 'heap' });
  const stopHeapKeeper = await startHeapKeeper({
    onCollect: (before, after, ms) => heapLog.debug({ before_mb: +(before / 1e6).toFixed(1), after_mb: +(after / 1e6).toFixed(1), ms: +ms.toFixed(1) }, 'collected'),
  });
  let isStopping = false;
  const stop = async (why: string) => {
    if (isStopping) return;
    isStopping = true;
    logger.info({ why }, 'shutting down');
    stopHeapKeeper();
    await ipc.close().catch(() => undefined);
    if (legacyIpc?.ok) await legacyIpc.value.close().catch(() => undefined);
    await innerShutdown(why);
    rmSync(homePaths(opts.home).pidFile, { force: true });
    logger.flush?.();
    setTimeout(() => process.exit(0), 50);
  };
  const innerShutdown = n.shutdown.bind(n);
  // IPC `shutdown` reaches NodeApi.shutdown: stop the whole process, not just the node.
  n.shutdown = () => stop('ipc shutdown');
  const srv = await serveIpc(n, { socketPath: opts.socket, identity: n.daemon.identityRef, home: opts.home, logger: logger.child({ component: 'ipc' }) });
  if (!srv.ok) {
    process.stderr.write(`pilot-daemon: ${srv.error.message}\n${srv.error.hint ?? ''}\n`);
    await innerShutdown();
    return 1;
  }
  const ipc = srv.value;
  // The original Go pilotctl speaks its own binary protocol: serve it too when asked (issue 6).
  const legacyIpc = opts.legacySocket ? await serveLegacyIpc(n, { socketPath: opts.legacySocket, logger: logger.child({ component: 'legacy-ipc' }) }) : null;
  if (legacyIpc && !legacyIpc.ok) logger.warn({ socket: opts.legacySocket, error: legacyIpc.error.message }, 'legacy IPC socket not served');
  // Through core/safe-file: a planted daemon.pid symlink is replaced, never followed.
  const pidWritten = writeFileSafe(homePaths(opts.home).pidFile, String(process.pid) + '\n');
  if (!pidWritten.ok) logger.warn({ error: pidWritten.error.message }, 'pid file not written');
  const info = await n.info();
  if (info.ok) logger.info({ node_id: info.value.node_id, address: info.value.address, socket: opts.socket }, 'daemon ready');
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return -1; // keep running
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`pilot-daemon: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
