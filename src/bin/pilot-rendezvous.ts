#!/usr/bin/env node
// pilot-rendezvous: registry (TCP) + beacon (UDP) in one process, as the original's cmd/rendezvous
// (defaults :9000 / :9001). Logs go to stderr; stdout carries exactly one JSON line once both listen:
// {"registry":"HOST:PORT","beacon":"HOST:PORT"} (with "beacon2" when --beacon-addr2 is given) — handy with port 0.
import { parseArgs } from 'node:util';
import { createLogger, type LogFormat } from '../core/logger.js';
import { BeaconServer } from '../registry/beacon.js';
import { RegistryServer } from '../registry/server.js';
import { FileStore, MemoryStore, type RegistryStore } from '../registry/store.js';
import { DEFAULT_BEACON_PORT, DEFAULT_REGISTRY_PORT, formatHostPort as joinHostPort, parseHostPort, type HostPort } from '../wire/endpoint.js';

const USAGE = `usage: pilot-rendezvous [--registry-addr HOST:PORT] [--beacon-addr HOST:PORT] [--beacon-addr2 HOST:PORT]
                        [--store PATH] [--require-fresh-signatures] [--max-connections-per-ip N]
                        [--partial-frame-budget BYTES] [--log-level L] [--log-format json|pretty]
defaults: --registry-addr 0.0.0.0:9000 --beacon-addr 0.0.0.0:9001, no --store = state in memory only,
          --max-connections-per-ip 16 (registry TCP connections from one IP; raise it for NATed fleets),
          --partial-frame-budget 16777216 (bytes of unfinished request frames buffered across all connections)`;

/** A listen flag: `HOST:PORT` / `[v6]:PORT` / `:PORT` (all interfaces); null when malformed. */
function listenAddr(text: string): HostPort | null {
  const hp = parseHostPort(text, { defaultHost: '0.0.0.0' });
  return hp.ok ? hp.value : null;
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        'registry-addr': { type: 'string', default: `:${DEFAULT_REGISTRY_PORT}` },
        'beacon-addr': { type: 'string', default: `:${DEFAULT_BEACON_PORT}` },
        'beacon-addr2': { type: 'string' },
        store: { type: 'string' },
        'require-fresh-signatures': { type: 'boolean', default: false },
        'max-connections-per-ip': { type: 'string' },
        'partial-frame-budget': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        'log-format': { type: 'string', default: 'json' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const format = args['log-format'];
  if (format !== 'json' && format !== 'pretty') {
    process.stderr.write(`--log-format must be json or pretty\n${USAGE}\n`);
    return 2;
  }
  const registryAddr = listenAddr(args['registry-addr']!);
  const beaconAddr = listenAddr(args['beacon-addr']!);
  const beaconAddr2 = args['beacon-addr2'] !== undefined ? listenAddr(args['beacon-addr2']) : undefined;
  if (!registryAddr || !beaconAddr || beaconAddr2 === null) {
    process.stderr.write(`addresses must be HOST:PORT\n${USAGE}\n`);
    return 2;
  }
  const positiveInt = (v: string | undefined): number | undefined | null => {
    if (v === undefined) return undefined;
    return /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : null;
  };
  const maxPerIp = positiveInt(args['max-connections-per-ip']);
  const frameBudget = positiveInt(args['partial-frame-budget']);
  if (maxPerIp === null || frameBudget === null) {
    process.stderr.write(`--max-connections-per-ip and --partial-frame-budget take a positive integer\n${USAGE}\n`);
    return 2;
  }
  const logger = createLogger({ level: args['log-level'], format: format as LogFormat, name: 'pilot-rendezvous' });

  const store: RegistryStore = args.store
    ? new FileStore(args.store, { logger: logger.child({ part: 'store' }) })
    : new MemoryStore();
  // The registry first: the beacon asks it who a node is (its beacon token) and who may punch whom.
  let beacon: BeaconServer | null = null;
  const registry = await RegistryServer.start({
    host: registryAddr.host,
    port: registryAddr.port,
    store,
    logger: logger.child({ part: 'registry' }),
    observedEndpoint: (id) => beacon?.observedEndpoint(id) ?? null,
    requireFreshSignatures: args['require-fresh-signatures'],
    ...(maxPerIp !== undefined ? { maxConnectionsPerIp: maxPerIp } : {}),
    ...(frameBudget !== undefined ? { maxPendingFrameBytesTotal: frameBudget } : {}),
  });
  if (!registry.ok) {
    logger.fatal({ err: registry.error }, registry.error.message);
    process.stderr.write(`pilot-rendezvous: ${registry.error.message}\n`);
    return 1;
  }
  const started = await BeaconServer.start({
    host: beaconAddr.host,
    port: beaconAddr.port,
    ...(beaconAddr2 ? { host2: beaconAddr2.host, port2: beaconAddr2.port } : {}),
    logger: logger.child({ part: 'beacon' }),
    authority: registry.value.beaconAuthority(),
  });
  if (!started.ok) {
    logger.fatal({ err: started.error }, started.error.message);
    await registry.value.close();
    return 1;
  }
  beacon = started.value;

  const ra = registry.value.address();
  const ba = beacon.address();
  const ba2 = beacon.address2();
  const ready: Record<string, string> = {
    registry: joinHostPort(ra.address, ra.port),
    beacon: joinHostPort(ba.address, ba.port),
  };
  if (ba2) ready.beacon2 = joinHostPort(ba2.address, ba2.port);
  process.stdout.write(JSON.stringify(ready) + '\n');
  logger.info(ready, 'rendezvous running');

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      logger.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await registry.value.close();
  await beacon.close();
  logger.flush?.();
  return 0;
}

main().then(
  (code) => {
    // Give pino's async destination a moment to drain before exiting.
    setTimeout(() => process.exit(code), 50).unref();
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`pilot-rendezvous: internal error: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
