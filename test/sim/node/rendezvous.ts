// The simulated rendezvous: the real registry server (src/registry/server.ts, in-memory store, connections
// attached as in-memory streams) and the real beacon (src/registry/beacon.ts) on simulated UDP sockets of two
// public hosts (the beacon and its second address, for NAT classification).
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../../src/core/logger.js';
import { RegistryServer } from '../../../src/registry/server.js';
import { BeaconServer, type BeaconSocket } from '../../../src/registry/beacon.js';
import { MemoryStore } from '../../../src/registry/store.js';
import type { Micros } from '../../../src/core/clock.js';
import type { RecvBatch } from '../../../src/datapath/types.js';
import type { SimDatapath, SimHost, SimNet } from './net.js';
import { connectPair, type SimStream } from './stream.js';

export const REGISTRY_PORT = 9000;
export const BEACON_PORT = 9001;

/** A SimDatapath as the beacon's socket (src/registry/beacon.ts BeaconSocket). */
function beaconSocket(dp: SimDatapath): BeaconSocket {
  return {
    send: (data, ip, port) => void dp.send(data, ip, port),
    onReceive: (fn) =>
      dp.onReceive((b: RecvBatch) => {
        for (let i = 0; i < b.count; i++) fn(b.payload(i).slice(), { address: b.ip(i), port: b.port(i) });
      }),
    address: () => ({ address: dp.localAddress.ip, port: dp.localAddress.port, family: 'IPv4' }),
    close: () => dp.close(),
  };
}

export interface Rendezvous {
  registry: RegistryServer;
  beacon: BeaconServer;
  /** host:port texts for the daemon's flags. */
  registryAddr: string;
  beaconAddr: string;
  beacon2Addr: string;
  /** Open TCP connections to the registry (client ends). */
  readonly connections: Set<SimStream>;
  /** A node's connectRegistry: a connection from `from` (its public address) to the registry. */
  connect(from: SimHost, host: string, port: number): Duplex;
  close(): Promise<void>;
}

export async function startRendezvous(net: SimNet, opts: { wallMs: () => number; tcpLatencyUs?: Micros }): Promise<Rendezvous> {
  const host = net.addPublicHost('rendezvous', '198.18.0.10');
  const host2 = net.addPublicHost('rendezvous-2', '198.18.0.11');
  let beacon: BeaconServer | null = null;
  const reg = await RegistryServer.open({
    store: new MemoryStore(),
    logger: silentLogger(),
    nowMs: opts.wallMs,
    observedEndpoint: (id) => beacon?.observedEndpoint(id) ?? null,
  });
  if (!reg.ok) throw new Error(`registry: ${reg.error.message}`);
  const s1 = host.bind(BEACON_PORT);
  const s2 = host2.bind(BEACON_PORT);
  if (!s1.ok || !s2.ok) throw new Error('beacon sockets');
  const theBeacon = BeaconServer.over({ primary: beaconSocket(s1.value), secondary: beaconSocket(s2.value) }, {
    logger: silentLogger(),
    authority: reg.value.beaconAuthority(),
    nowMs: opts.wallMs,
  });
  beacon = theBeacon;
  const connections = new Set<SimStream>();
  const latency = opts.tcpLatencyUs ?? 10_000;
  let nextPort = 30000;
  const registry = reg.value;
  return {
    registry,
    beacon: theBeacon,
    registryAddr: `${host.ip}:${REGISTRY_PORT}`,
    beaconAddr: `${host.ip}:${BEACON_PORT}`,
    beacon2Addr: `${host2.ip}:${BEACON_PORT}`,
    connections,
    connect(from, toHost, toPort) {
      const client = { ip: from.publicIp, port: nextPort++ };
      const c = connectPair(net, latency, client, { ip: toHost, port: toPort }, (serverEnd) => {
        if (toHost === host.ip && toPort === REGISTRY_PORT) registry.attach(serverEnd, client);
        else serverEnd.destroy(); // nothing listens there: the client sees a close
      });
      connections.add(c);
      c.once('close', () => connections.delete(c));
      return c;
    },
    async close() {
      for (const c of connections) c.destroy();
      await theBeacon.close();
      await registry.close();
    },
  };
}
