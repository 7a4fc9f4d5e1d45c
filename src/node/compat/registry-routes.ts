// How the daemon reaches its registry (issue 13): plain TCP to the registry port, or TLS on the rendezvous's
// compat port with ALPN pilot-registry; with `--transport auto` one connect dials both happy-eyeballs style
// (first-of.ts) and the winner becomes the preferred route (TransportChoice). Also the compat port's one TLS
// dial (dial.ts: proxy, fingerprint pin / TOFU), which the WebSocket link uses too.
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { err, ok, type Result } from '../../core/result.js';
import type { PilotError } from '../../core/errors.js';
import { COMPAT_ALPN_REGISTRY, type Fingerprint } from '../../wire/compat-frames.js';
import { formatHostPort, type HostPort } from '../../wire/endpoint.js';
import type { RegistryRoute, TransportChoice } from '../../nat/index.js';
import type { Driver } from '../driver.js';
import type { NodeEnv } from '../env.js';
import type { CompatConnection } from './dial.js';
import { dialFirstOf } from './first-of.js';
import type { ProxyConfig } from './proxy.js';

export interface RegistryRoutesDeps {
  env: NodeEnv;
  driver: Driver;
  transport: TransportChoice;
  /** `--transport udp` or no relay: the registry is plain TCP only, as in simulations. */
  isUdpOnly: boolean;
  compat: HostPort;
  pinned: Fingerprint | null;
  proxy: ProxyConfig | null;
  knownFile: string;
  /** The registry client's own connect timeout; each route ends within it. */
  connectTimeoutMs: number;
  logger: Logger;
}

export class RegistryRoutes {
  /** The TLS route's last failure (info's transport_error when the link has none); cleared by any connect. */
  tlsError: PilotError | null = null;

  constructor(private readonly d: RegistryRoutesDeps) {}

  /** The registry client's connect: today's plain stream in udp mode (and simulations), else as the choice says. */
  connect(host: string, port: number): Duplex | Promise<Result<Duplex>> {
    const { env, transport } = this.d;
    if (!env.dialCompat || this.d.isUdpOnly) return env.connectRegistry(host, port);
    const dial = (route: RegistryRoute): Promise<Result<Duplex>> => (route === 'tls' ? this.dialTls() : this.dialPlain(host, port));
    return dialFirstOf({
      routes: transport.registryRoutes,
      dial,
      dispose: (s) => s.destroy(),
      headStartMs: transport.timing.registryFallbackDelayUs / 1000,
      after: (ms, fn) => this.d.driver.after(ms, fn),
    }).then((r) => {
      if (!r.ok) return r;
      transport.handleRegistryConnected(r.value.route);
      return ok(r.value.value);
    });
  }

  /** Plain TCP to the registry port (one route of connect). */
  private dialPlain(host: string, port: number): Promise<Result<Duplex>> {
    const s = this.d.env.connectRegistry(host, port);
    return new Promise((resolve) => {
      const done = (r: Result<Duplex>): void => {
        timer.cancel();
        s.off('connect', onConnect);
        s.off('error', onError);
        s.off('close', onClose);
        resolve(r);
      };
      const fail = (why: string): void => {
        s.on('error', () => undefined);
        s.destroy();
        done(err('connection_failed', `registry ${formatHostPort(host, port)}: ${why}`));
      };
      const onConnect = (): void => {
        this.tlsError = null; // a TLS failure on the way here is not the state any more
        done(ok(s));
      };
      const onError = (e: Error): void => fail(e.message);
      const onClose = (): void => fail('connection closed');
      // Ends no later than the registry client's own connect timeout (same length, armed after this one).
      const timer = this.d.driver.after(this.d.connectTimeoutMs, () => fail('connect timeout'));
      s.once('connect', onConnect);
      s.once('error', onError);
      s.once('close', onClose);
    });
  }

  /** The registry over TLS on the compat port (ALPN pilot-registry). */
  private async dialTls(): Promise<Result<Duplex>> {
    // Within the registry client's connect timeout (armed after this dial's deadline, so this one ends first).
    let r = await this.dialCompat([COMPAT_ALPN_REGISTRY], this.d.connectTimeoutMs);
    if (r.ok && r.value.alpnProtocol !== COMPAT_ALPN_REGISTRY) {
      r.value.socket.destroy();
      r = err('connection_failed', `the compat port ${formatHostPort(this.d.compat.host, this.d.compat.port)} did not take ALPN ${COMPAT_ALPN_REGISTRY} (a rendezvous without the compat transport?)`, {
        hint: 'update the rendezvous, or check --compat',
      });
    }
    this.tlsError = r.ok ? null : r.error;
    return r.ok ? ok(r.value.socket) : r;
  }

  /** One verified TLS connection to the compat port (dial.ts), for the registry and the link. */
  dialCompat(alpn: string[], timeoutMs: number): Promise<Result<CompatConnection>> {
    return this.d.env.dialCompat!({
      target: this.d.compat,
      alpn,
      proxy: this.d.proxy,
      pinned: this.d.pinned,
      knownFile: this.d.knownFile,
      timeoutMs,
      after: (ms, fn) => this.d.driver.after(ms, fn),
      nowMs: () => this.d.env.wall.nowMs(),
      logger: this.d.logger,
    });
  }
}
