#!/usr/bin/env node
// pilot-rendezvous: registry (TCP) + beacon (UDP) in one process, as the original's cmd/rendezvous
// (defaults :9000 / :9001), plus the compat TLS port (issue 13, default :443; src/registry/compat-server.ts):
// the registry over TLS and the beacon/relay over WebSocket for nodes whose UDP does not get out. Logs go to
// stderr; stdout carries exactly one JSON line once all listen:
// {"registry":"HOST:PORT","beacon":"HOST:PORT","compat":"HOST:PORT","fingerprint":"AB:…"} (with "beacon2" when
// --beacon-addr2 is given, "dashboard" with --dashboard-addr; compat/fingerprint absent when the compat port is
// off) — handy with port 0.
// `--print-fingerprint` prints the compat certificate's SHA-256 fingerprint and exits (making the self-signed
// certificate first when there is none), so the operator can hand it to nodes before the first start.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createLogger, type LogFormat } from '../core/logger.js';
import { BeaconServer, type ReplicaRelayOptions } from '../registry/beacon.js';
import { replicaRelayKey } from '../wire/beacon-message.js';
import { compatCertDir, loadCompatCert, SELF_SIGNED_FILE } from '../registry/compat-cert.js';
import { CompatServer } from '../registry/compat-server.js';
import { RegistryServer } from '../registry/server.js';
import { MemoryStore, type RegistryStore } from '../registry/store.js';
import { SqliteStore } from '../registry/sqlite-store.js';
import { EtcdStore, parseEtcdStoreUrl } from '../registry/etcd-store.js';
import { Dashboard } from '../registry/dashboard.js';
import { DEFAULT_COMPAT_PORT } from '../wire/compat-frames.js';
import { DEFAULT_BEACON_PORT, DEFAULT_REGISTRY_PORT, formatHostPort as joinHostPort, parseHostPort, type HostPort } from '../wire/endpoint.js';

const USAGE = `usage: pilot-rendezvous [--registry-addr HOST:PORT] [--beacon-addr HOST:PORT] [--beacon-addr2 HOST:PORT]
                        [--compat-addr HOST:PORT|off] [--tls-cert PATH --tls-key PATH]
                        [--max-channels-per-ip N] [--max-channels N] [--relay-bytes-per-sec N]
                        [--store PATH|etcd://HOST:PORT[,HOST:PORT…][/prefix]] [--beacon-secret-file PATH]
                        [--beacon-advertise IP:PORT]
                        [--dashboard-addr HOST:PORT --admin-token T]
                        [--require-fresh-signatures] [--max-connections-per-ip N] [--stale-node-secs N]
                        [--partial-frame-budget BYTES] [--log-level L] [--log-format json|pretty]
       pilot-rendezvous --print-fingerprint [--json] [--store PATH | --tls-cert PATH --tls-key PATH]
defaults: --registry-addr 0.0.0.0:9000 --beacon-addr 0.0.0.0:9001, no --store = state in memory only
          (--store PATH: a SQLite database; a previous JSON+log store at PATH is migrated once, old files kept;
           --store etcd://…: the directory in etcd, shared by every replica given the same members and prefix
           (default prefix /pilot/); give the replicas one --beacon-secret-file so their beacon tokens agree
           and their beacons relay to each other; --beacon-advertise: the beacon address the other replicas
           send to, needed when --beacon-addr is a wildcard (default: --beacon-addr with the bound port)),
          no dashboard (--dashboard-addr: the live dashboard, /api/stats, /metrics; needs --admin-token or
            PILOT_ADMIN_TOKEN, at least 16 characters),
          --compat-addr 0.0.0.0:${DEFAULT_COMPAT_PORT} (registry over TLS + beacon/relay over WebSocket for nodes without UDP;
            if the default cannot bind, a warning and no compat port: use e.g. --compat-addr :8443),
          without --tls-cert/--tls-key a self-signed certificate kept in ${SELF_SIGNED_FILE} (0600) in the
            directory of --store, or in $HOME/.pilot-rendezvous/ without --store,
          --max-channels-per-ip 256 --max-channels 65536 (open WebSocket channels),
          --relay-bytes-per-sec 67108864 (relay budget per source: UDP endpoint or channel),
          --stale-node-secs 180 (a node without a heartbeat for this long is removed, as the original),
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
        'beacon-secret-file': { type: 'string' },
        'beacon-advertise': { type: 'string' },
        'stale-node-secs': { type: 'string' },
        'dashboard-addr': { type: 'string' },
        'admin-token': { type: 'string' },
        'require-fresh-signatures': { type: 'boolean', default: false },
        'max-connections-per-ip': { type: 'string' },
        'partial-frame-budget': { type: 'string' },
        'compat-addr': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'max-channels-per-ip': { type: 'string' },
        'max-channels': { type: 'string' },
        'relay-bytes-per-sec': { type: 'string' },
        'print-fingerprint': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
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
  const certOpts = {
    dir: compatCertDir(args.store?.startsWith('etcd://') ? undefined : args.store),
    ...(args['tls-cert'] !== undefined ? { certPath: args['tls-cert'] } : {}),
    ...(args['tls-key'] !== undefined ? { keyPath: args['tls-key'] } : {}),
  };
  if (args['print-fingerprint']) {
    const cert = loadCompatCert(certOpts);
    if (!cert.ok) {
      process.stderr.write(`pilot-rendezvous: ${cert.error.message}${cert.error.hint ? ` (${cert.error.hint})` : ''}\n`);
      return 1;
    }
    process.stdout.write(args.json ? JSON.stringify({ fingerprint: cert.value.fingerprint }) + '\n' : cert.value.fingerprint + '\n');
    return 0;
  }
  const isCompatDefault = args['compat-addr'] === undefined;
  const compatText = args['compat-addr'] ?? `:${DEFAULT_COMPAT_PORT}`;
  const compatAddr = compatText === 'off' ? null : listenAddr(compatText);
  if (compatText !== 'off' && !compatAddr) {
    process.stderr.write(`--compat-addr must be HOST:PORT or off\n${USAGE}\n`);
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
  const maxChannelsPerIp = positiveInt(args['max-channels-per-ip']);
  const maxChannels = positiveInt(args['max-channels']);
  const relayBytesPerSec = positiveInt(args['relay-bytes-per-sec']);
  const staleNodeSecs = positiveInt(args['stale-node-secs']);
  if (staleNodeSecs === null) {
    process.stderr.write(`--stale-node-secs takes a positive integer\n${USAGE}\n`);
    return 2;
  }
  if (maxPerIp === null || frameBudget === null || maxChannelsPerIp === null || maxChannels === null || relayBytesPerSec === null) {
    process.stderr.write(`--max-connections-per-ip, --partial-frame-budget, --max-channels-per-ip, --max-channels and --relay-bytes-per-sec take a positive integer\n${USAGE}\n`);
    return 2;
  }
  const dashboardAddr = args['dashboard-addr'] !== undefined ? listenAddr(args['dashboard-addr']) : undefined;
  const adminToken = args['admin-token'] ?? process.env.PILOT_ADMIN_TOKEN ?? '';
  if (dashboardAddr === null) {
    process.stderr.write(`--dashboard-addr must be HOST:PORT\n${USAGE}\n`);
    return 2;
  }
  if (dashboardAddr && adminToken.length < 16) {
    process.stderr.write(`the dashboard needs --admin-token (or PILOT_ADMIN_TOKEN) of at least 16 characters, e.g. --admin-token $(openssl rand -hex 24)\n`);
    return 2;
  }
  const logger = createLogger({ level: args['log-level'], format: format as LogFormat, name: 'pilot-rendezvous' });

  const etcdUrl = args.store?.startsWith('etcd://') ? parseEtcdStoreUrl(args.store) : null;
  if (etcdUrl && !etcdUrl.ok) {
    process.stderr.write(`${etcdUrl.error.message}\n${USAGE}\n`);
    return 2;
  }
  let beaconSecret: Uint8Array | undefined;
  if (args['beacon-secret-file'] !== undefined) {
    try {
      beaconSecret = new Uint8Array(readFileSync(args['beacon-secret-file']));
    } catch (e) {
      process.stderr.write(`pilot-rendezvous: cannot read --beacon-secret-file: ${(e as Error).message}\n`);
      return 1;
    }
    if (beaconSecret.length < 32) {
      process.stderr.write(`pilot-rendezvous: --beacon-secret-file must hold at least 32 bytes (e.g. head -c 32 /dev/urandom > FILE)\n`);
      return 2;
    }
  }
  const advertise = args['beacon-advertise'] !== undefined ? parseHostPort(args['beacon-advertise']) : null;
  if (advertise && (!advertise.ok || !isIP(advertise.value.host) || advertise.value.port === 0)) {
    process.stderr.write(`--beacon-advertise must be IP:PORT (an address the other replicas reach)
${USAGE}
`);
    return 2;
  }
  const etcdStore = etcdUrl?.ok ? new EtcdStore({ ...etcdUrl.value, logger: logger.child({ part: 'store' }) }) : null;
  const store: RegistryStore = etcdStore
    ? etcdStore
    : args.store
      ? new SqliteStore(args.store, { logger: logger.child({ part: 'store' }) })
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
    ...(beaconSecret ? { beaconSecret } : {}),
    ...(staleNodeSecs !== undefined ? { staleNodeMs: staleNodeSecs * 1000 } : {}),
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
    ...(relayBytesPerSec !== undefined ? { relayBytesPerSec } : {}),
    ...(etcdStore && beaconSecret ? { replicaRelay: replicaRelayVia(etcdStore, beaconSecret) } : {}),
  });
  if (!started.ok) {
    logger.fatal({ err: started.error }, started.error.message);
    await registry.value.close();
    return 1;
  }
  beacon = started.value;
  if (etcdStore) {
    // Publish where the other replicas' beacons send relay frames for the nodes held here.
    const bound = beacon.address();
    const host = advertise?.ok ? advertise.value.host : beaconAddr.host;
    const port = advertise?.ok ? advertise.value.port : bound.port;
    if (!beaconSecret) {
      logger.warn('etcd store without --beacon-secret-file: beacon tokens differ across replicas and beacons do not relay to each other');
    } else if (!isIP(host) || host === '0.0.0.0' || host === '::') {
      logger.warn({ beacon: beaconAddr.host }, 'beacon listens on a wildcard address: give --beacon-advertise IP:PORT so other replicas can relay to this one');
    } else {
      const r = await etcdStore.advertiseBeacon(joinHostPort(host, port));
      if (!r.ok) logger.warn({ err: r.error.message }, 'beacon address not published: other replicas cannot relay to this one');
    }
  }

  // The compat port last: it hands connections to both.
  let compat: CompatServer | null = null;
  let fingerprint: string | null = null;
  if (compatAddr) {
    const fail = async (message: string): Promise<number> => {
      process.stderr.write(`pilot-rendezvous: ${message}\n`);
      await registry.value.close();
      await beacon!.close();
      return 1;
    };
    const cert = loadCompatCert(certOpts);
    if (!cert.ok) {
      logger.fatal({ err: cert.error }, cert.error.message);
      return fail(`${cert.error.message}${cert.error.hint ? ` (${cert.error.hint})` : ''}`);
    }
    if (cert.value.origin === 'self-signed-new') logger.info({ path: cert.value.path }, 'compat: self-signed certificate created');
    const cs = await CompatServer.start({
      host: compatAddr.host,
      port: compatAddr.port,
      cert: cert.value.cert,
      key: cert.value.key,
      registry: registry.value,
      beacon,
      logger: logger.child({ part: 'compat' }),
      ...(maxChannelsPerIp !== undefined ? { maxChannelsPerIp } : {}),
      ...(maxChannels !== undefined ? { maxChannels } : {}),
    });
    if (cs.ok) {
      compat = cs.value;
      fingerprint = cert.value.fingerprint;
    } else if (isCompatDefault) {
      // The default port is privileged and may be taken: the rendezvous still serves UDP nodes.
      logger.warn(
        { err: cs.error.message, errno: cs.error.detail?.errno },
        `compat port ${compatText} not available (${String(cs.error.detail?.errno ?? cs.error.message)}): running without it; nodes without UDP cannot join — start with e.g. --compat-addr :8443 (or --compat-addr off to silence this)`,
      );
    } else {
      logger.fatal({ err: cs.error }, cs.error.message);
      return fail(cs.error.message);
    }
  }

  let dashboard: Dashboard | null = null;
  if (dashboardAddr) {
    const reg = registry.value;
    const bcn = beacon;
    const d = Dashboard.create({
      adminToken,
      logger: logger.child({ part: 'dashboard' }),
      source: {
        registry: () => reg.dashboardStats(),
        onEvent: (fn) => reg.onEvent(fn),
        beacon: () => bcn.stats,
        reports: () => reg.nodeReports(),
      },
    });
    const listening = d.ok ? await d.value.listen(dashboardAddr.host, dashboardAddr.port) : d;
    if (!d.ok || !listening.ok) {
      const e = !listening.ok ? listening.error : null;
      process.stderr.write(`pilot-rendezvous: ${e?.message ?? 'dashboard failed'}\n`);
      await compat?.close();
      await registry.value.close();
      await beacon.close();
      return 1;
    }
    dashboard = d.value;
  }

  const ra = registry.value.address();
  const ba = beacon.address();
  const ba2 = beacon.address2();
  const ready: Record<string, string> = {
    registry: joinHostPort(ra.address, ra.port),
    beacon: joinHostPort(ba.address, ba.port),
  };
  if (ba2) ready.beacon2 = joinHostPort(ba2.address, ba2.port);
  if (compat && fingerprint) {
    const ca = compat.address();
    ready.compat = joinHostPort(ca.address, ca.port);
    ready.fingerprint = fingerprint;
  }
  if (dashboard) {
    const da = dashboard.address();
    if (da) ready.dashboard = joinHostPort(da.address, da.port);
  }
  // The signal handlers before the ready line: a supervisor may SIGTERM the moment it reads it.
  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      logger.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  process.stdout.write(JSON.stringify(ready) + '\n');
  logger.info(ready, fingerprint ? `rendezvous running; compat certificate SHA-256 fingerprint ${fingerprint}` : 'rendezvous running');
  await stopped;
  await dashboard?.close();
  await compat?.close();
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

/** The beacon's view of the shared directory: which other replica's beacon holds a node (issue 16). */
function replicaRelayVia(store: EtcdStore, beaconSecret: Uint8Array): ReplicaRelayOptions {
  const parsed = new Map<string, { address: string; port: number } | null>();
  return {
    key: replicaRelayKey(beaconSecret),
    onObserved: (nodeId) => store.observedAtBeacon(nodeId),
    peerBeaconFor: (nodeId) => {
      // The replica whose beacon observed the node; else the one holding its registry session.
      const replica = store.beaconHolderOf(nodeId) ?? store.holderOf(nodeId);
      if (replica === null || replica === store.replicaId) return null;
      const text = store.beaconAddressOf(replica);
      if (text === null) return null;
      let peer = parsed.get(text);
      if (peer === undefined) {
        const hp = parseHostPort(text);
        peer = hp.ok && isIP(hp.value.host) ? { address: hp.value.host, port: hp.value.port } : null;
        if (parsed.size > 4096) parsed.clear();
        parsed.set(text, peer);
      }
      return peer;
    },
  };
}
