// An HTTP CONNECT proxy on a netsim public host: Debian's tinyproxy (1.11), started by the test with a config
// written to a temp dir and stopped by PID — the network where nothing but a proxy gets out (NatOptions.proxyOnly).
// Does I/O; root only.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { err, ok, type Result } from '../src/core/index.js';
import { which } from './exec.js';
import type { Topology } from './topology.js';

export const PROXY_PORT = 3128;
export const PROXY_USER = 'user';
export const PROXY_PASS = 'pass';

export interface ProxyOptions {
  port?: number;
  /** BasicAuth credentials; null = no authentication. Default user/pass. */
  auth?: { user: string; pass: string } | null;
  /** Ports CONNECT may reach (tinyproxy ConnectPort); empty = any. Default [443], as corporate proxies do. */
  connectPorts?: number[];
  /** Who may use the proxy (tinyproxy Allow). Default the simulated internet. */
  allow?: string[];
}

export interface ProxyHandle {
  host: string;
  ip: string;
  port: number;
  pid: number;
  /** `http://user:pass@ip:port` (or without credentials). */
  url: string;
  /** The proxy's log so far (tinyproxy -d logs to stderr). */
  log(): string;
  /** SIGTERM by PID, then SIGKILL after 1 s; removes the config dir. Idempotent. */
  stop(): Promise<void>;
}

/** tinyproxy.conf text for `listenIp`. */
export function tinyproxyConfig(listenIp: string, opts: ProxyOptions = {}): string {
  const auth = opts.auth === undefined ? { user: PROXY_USER, pass: PROXY_PASS } : opts.auth;
  const lines = [
    `Port ${opts.port ?? PROXY_PORT}`,
    `Listen ${listenIp}`,
    'Timeout 600',
    'MaxClients 100',
    'LogLevel Info',
    'DisableViaHeader Yes',
    ...(opts.allow ?? ['198.18.0.0/15']).map((a) => `Allow ${a}`),
    ...(opts.connectPorts ?? [443]).map((p) => `ConnectPort ${p}`),
  ];
  if (auth) lines.push(`BasicAuth ${auth.user} ${auth.pass}`);
  return lines.join('\n') + '\n';
}

/**
 * Start tinyproxy in `host`'s namespace (a public host of `topo`) on its primary IP and wait until it accepts
 * connections. err('internal') when tinyproxy is missing or does not come up within 5 s. The process is also
 * killed at topology teardown.
 */
export async function startProxy(topo: Topology, host: string, opts: ProxyOptions = {}): Promise<Result<ProxyHandle>> {
  const bin = which('tinyproxy');
  if (!bin) return err('internal', 'tinyproxy not installed: apt-get install -y tinyproxy');
  const info = topo.host(host);
  const port = opts.port ?? PROXY_PORT;
  const dir = mkdtempSync(join(tmpdir(), 'pn-proxy-'));
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(conf, tinyproxyConfig(info.ip, opts));
  const child: ChildProcess = topo.spawn(host, [bin, '-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (d: Buffer) => {
    if (log.length < 200_000) log += d.toString();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let hasExited = false;
  const exited = new Promise<void>((r) => child.once('exit', () => ((hasExited = true), r())));
  const auth = opts.auth === undefined ? { user: PROXY_USER, pass: PROXY_PASS } : opts.auth;
  const pid = child.pid ?? 0;
  let isStopped = false;
  const handle: ProxyHandle = {
    host,
    ip: info.ip,
    port,
    pid,
    url: `http://${auth ? `${auth.user}:${auth.pass}@` : ''}${info.ip}:${port}`,
    log: () => log,
    stop: async () => {
      if (isStopped) return;
      isStopped = true;
      if (!hasExited && pid > 0) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
        if (!hasExited) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // ready = the port is listening in the namespace (ss, since the root namespace cannot reach it)
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !hasExited) {
    const ss = await topo.exec(host, ['ss', '-Hltn', `sport = :${port}`], { timeoutMs: 5000 });
    if (ss.ok && ss.value.stdout.includes(`:${port}`)) return ok(handle);
    await new Promise((r) => setTimeout(r, 50));
  }
  await handle.stop();
  return err('internal', `tinyproxy did not start on ${info.ip}:${port}: ${log.slice(-1000)}`);
}
