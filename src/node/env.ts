// What the node core gets from the world: clocks, timers, randomness, UDP sockets and the registry's byte
// stream. `realEnv()` is the process's; test/sim builds a simulated one (virtual time, a simulated network and
// rendezvous), so everything but the sockets and the clock runs the same code in simulation.
import { connect as netConnect } from 'node:net';
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { monotonicClock, realTimers, realWallClock, type Clock, type Timers, type WallClock } from '../core/clock.js';
import { Rng } from '../core/rng.js';
import type { Result } from '../core/result.js';
import { openDatapath, openDgramDatapath, type Datapath, type OpenDatapathOptions } from '../datapath/index.js';
import { dialCompat, type CompatConnection, type CompatDialOptions } from './compat/dial.js';

export interface NodeEnv {
  /** Monotonic µs (protocol time). */
  clock: Clock;
  /** Epoch ms (timestamps people read). */
  wall: WallClock;
  /** The driver's timer source (src/node/driver.ts is the only consumer in node/). */
  timers: Timers;
  /** All randomness that is not key material (jitter, probe ports, ephemeral ports). */
  rng: Rng;
  /** The tunnel socket (native when it loads). */
  openDatapath(opts: OpenDatapathOptions): Promise<Result<Datapath>>;
  /** Extra sockets (birthday probing): small buffers, node:dgram is enough. */
  openExtraSocket(opts: OpenDatapathOptions): Promise<Result<Datapath>>;
  /** A byte stream to the registry; emits 'connect' when open (a net.Socket in the real world). */
  connectRegistry(host: string, port: number): Duplex;
  /**
   * One verified TLS connection to the rendezvous's compat port (proxy, TLS, fingerprint: src/node/compat/dial.ts);
   * absent where there is none (simulations): the node then has no compat transport and stays on UDP.
   */
  dialCompat?(opts: CompatDialOptions): Promise<Result<CompatConnection>>;
}

export function realEnv(seed?: number): NodeEnv {
  return {
    clock: monotonicClock,
    wall: realWallClock,
    timers: realTimers,
    rng: new Rng(seed ?? (process.env.PILOT_SEED ? Number(process.env.PILOT_SEED) : randomInt(0, 2 ** 32))),
    openDatapath,
    openExtraSocket: (o) => openDgramDatapath(o),
    connectRegistry: (host, port) => netConnect({ host, port }),
    dialCompat,
  };
}
