// The simulated rendezvous: the real registry server (src/registry/server.ts, in-memory store, connections
// attached as in-memory streams) and the real beacon (src/registry/beacon.ts) on simulated UDP sockets of two
// public hosts (the beacon and its second address, for NAT classification).
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../../src/core/logger.js';
import { RegistryServer } from '../../../src/registry/server.js';
import { BeaconServer } from '../../../src/registry/beacon.js';
import { MemoryStore } from '../../../src/registry/store.js';
import type { Micros } from '../../../src/core/clock.js';
import type { RecvBatch } from '../../../src/datapath/types.js';
import type { SimDatapath, SimHost, SimNet } from './net.js';
import { connectPair, type SimStream } from './stream.js';

export const REGISTRY_PORT = 9000;
export const BEACON_PORT = 9001;

/** A SimDatapath dressed as the node:dgram socket the beacon expects (message events, send with callback). */
class BeaconSocket extends EventEmitter {
  constructor(private readonly dp: SimDatapath) {
    super();
    dp.onReceive((b: RecvBatch) => {
      for (let i = 0; i < b.count; i++) {
        const msg = Buffer.from(b.payload(i));
        this.emit('message', msg, { address: b.ip(i), port: b.port(i), family: 'IPv4', size: msg.length });
      }
    });
  }
  send(msg: Uint8Array, port: number, address: string, cb?: (e: Error | null) => void): void {
    this.dp.send(msg, address, port);
    cb?.(null);
  }
  address(): { address: string; port: number; family: string } {
    return { address: this.dp.localAddress.ip, port: this.dp.localAddress.port, family: 'IPv4' };
  }
  close(cb?: () => void): void {
    void this.dp.close().then(() => cb?.());
  }
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
  const reg = await RegistryServer.unbound({
    store: new MemoryStore(),
    logger: silentLogger(),
    nowMs: opts.wallMs,
    observedEndpoint: (id) => beacon?.observedEndpoint(id) ?? null,
  });
  if (!reg.ok) throw new Error(`registry: ${reg.error.message}`);
  const s1 = host.bind(BEACON_PORT);
  const s2 = host2.bind(BEACON_PORT);
  if (!s1.ok || !s2.ok) throw new Error('beacon sockets');
  beacon = BeaconServer.attach(new BeaconSocket(s1.value) as unknown as dgram.Socket, new BeaconSocket(s2.value) as unknown as dgram.Socket, {
    host: host.ip,
    port: BEACON_PORT,
    logger: silentLogger(),
    authority: reg.value.beaconAuthority(),
    nowMs: opts.wallMs,
  });
  const connections = new Set<SimStream>();
  const latency = opts.tcpLatencyUs ?? 10_000;
  let nextPort = 30000;
  const registry = reg.value;
  return {
    registry,
    beacon,
    registryAddr: `${host.ip}:${REGISTRY_PORT}`,
    beaconAddr: `${host.ip}:${BEACON_PORT}`,
    beacon2Addr: `${host2.ip}:${BEACON_PORT}`,
    connections,
    connect(from, toHost, toPort) {
      const client = { ip: from.publicIp, port: nextPort++ };
      const c = connectPair(net, latency, client, { ip: toHost, port: toPort }, (serverEnd) => {
        if (toHost === host.ip && toPort === REGISTRY_PORT) registry.attach(serverEnd);
        else serverEnd.destroy(); // nothing listens there: the client sees a close
      });
      connections.add(c);
      c.once('close', () => connections.delete(c));
      return c;
    },
    async close() {
      for (const c of connections) c.destroy();
      await beacon!.close();
      await registry.close();
    },
  };
}
