// The one TLS dial of the compat transport (issue 13), for both of its users: the registry over TLS (ALPN
// `pilot-registry`) and the WebSocket beacon channel (link.ts). Through an HTTP CONNECT proxy when one applies
// (proxy.ts: `Proxy-Authorization: Basic` from the URL; a non-2xx answer → proxy_failed with its status line),
// then TLS (SNI = the host unless it is an IP; the certificate chain is not checked — the rendezvous's certificate
// is usually self-signed) and the fingerprint check (known-rendezvous.ts: the pin, else trust on first use).
// Does network and file-system I/O; its one deadline comes from the caller (the Driver).
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { err, ok, type Result } from '../../core/result.js';
import { pilotError, type PilotError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { HostPort } from '../../wire/endpoint.js';
import type { Fingerprint } from '../../wire/compat-frames.js';
import { checkFingerprint } from './known-rendezvous.js';
import { connectTarget, type ProxyConfig } from './proxy.js';

/** A proxy's answer to CONNECT must fit in this (status line + headers). */
const MAX_PROXY_RESPONSE_BYTES = 16 * 1024;

export interface CompatDialOptions {
  /** The rendezvous's compat (TLS) port. */
  target: HostPort;
  /** ALPN offered: [COMPAT_ALPN_REGISTRY] for the registry, ['http/1.1'] for the WebSocket. */
  alpn: string[];
  /** The proxy to go through (already decided with proxyFor), or null for a direct connection. */
  proxy: ProxyConfig | null;
  /** --registry-fingerprint, normalized; null = trust on first use with `knownFile`. */
  pinned: Fingerprint | null;
  /** `<home>/known_rendezvous.json`. */
  knownFile: string;
  /** The whole dial (proxy, CONNECT, TLS, check) must finish within this. */
  timeoutMs: number;
  /** A deadline from the Driver (the only timers in src/node); returns its cancel. */
  after(ms: number, fn: () => void): { cancel(): void };
  nowMs(): number;
  logger?: Logger;
}

export interface CompatConnection {
  socket: TLSSocket;
  fingerprint: Fingerprint;
  /** The fingerprint was seen for the first time and stored. */
  isFirstUse: boolean;
  alpnProtocol: string | false;
}

/**
 * An open, verified TLS connection to the compat port. Errors: proxy_failed (proxy unreachable, CONNECT refused
 * with its status line), fingerprint_mismatch, connection_failed (the rendezvous unreachable, TLS failed),
 * timeout, internal (known_rendezvous.json unreadable/unwritable). Never rejects.
 */
export function dialCompat(o: CompatDialOptions): Promise<Result<CompatConnection>> {
  const targetText = connectTarget(o.target.host, o.target.port);
  return new Promise((resolve) => {
    let isDone = false;
    let raw: Socket | null = null;
    let tls: TLSSocket | null = null;
    const finish = (r: Result<CompatConnection>): void => {
      if (isDone) return;
      isDone = true;
      timer.cancel();
      if (!r.ok) {
        tls?.destroy();
        raw?.destroy();
      }
      resolve(r);
    };
    const fail = (e: PilotError): void => finish({ ok: false, error: e });
    const timer = o.after(o.timeoutMs, () =>
      finish(err('timeout', `compat dial to ${targetText}${o.proxy ? ` via ${o.proxy.display}` : ''} did not finish within ${o.timeoutMs} ms`, {
        hint: 'check that the rendezvous compat port (--compat) is reachable, or set --proxy',
      })),
    );

    const startTls = (socket: Socket | null): void => {
      const servername = isIP(o.target.host) === 0 ? o.target.host : undefined;
      const t = tlsConnect({
        ...(socket ? { socket } : { host: o.target.host, port: o.target.port }),
        ...(servername ? { servername } : {}),
        ALPNProtocols: o.alpn,
        // The chain is not verified (self-signed rendezvous); the fingerprint check below is the authentication.
        rejectUnauthorized: false,
      });
      tls = t;
      const onError = (e: Error): void => {
        const reached = socket !== null || t.connecting === false;
        fail(
          pilotError('connection_failed', `compat ${reached ? 'TLS' : 'connection'} to ${targetText} failed: ${e.message}`, {
            hint: 'check --compat HOST:PORT (the rendezvous --compat-addr) and that TCP to it gets out, or set --proxy',
            cause: e,
          }),
        );
      };
      t.on('error', onError);
      t.once('secureConnect', () => {
        const cert = t.getPeerX509Certificate();
        if (!cert) return fail(pilotError('connection_failed', `the rendezvous at ${targetText} presented no certificate`));
        const checked = checkFingerprint({ target: targetText, seen: cert.fingerprint256, pinned: o.pinned, file: o.knownFile, nowMs: o.nowMs() });
        if (!checked.ok) return fail(checked.error);
        const isFirstUse = checked.value.kind === 'stored';
        if (isFirstUse) o.logger?.info({ compat: targetText, fingerprint: cert.fingerprint256, file: o.knownFile }, 'rendezvous certificate seen for the first time: trusted and stored (trust on first use)');
        t.off('error', onError);
        finish(ok({ socket: t, fingerprint: cert.fingerprint256, isFirstUse, alpnProtocol: t.alpnProtocol ?? false }));
      });
    };

    const proxy = o.proxy;
    if (!proxy) {
      startTls(null);
      return;
    }
    const s = netConnect({ host: proxy.host, port: proxy.port });
    raw = s;
    let buf = Buffer.alloc(0);
    const onProxyError = (e: Error): void =>
      fail(pilotError('proxy_failed', `proxy ${proxy.display}: ${e.message}`, { detail: { proxy: proxy.display }, cause: e }));
    const onClose = (): void => fail(pilotError('proxy_failed', `proxy ${proxy.display} closed the connection before answering CONNECT ${targetText}`, { detail: { proxy: proxy.display } }));
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_PROXY_RESPONSE_BYTES) fail(pilotError('proxy_failed', `proxy ${proxy.display} sent an oversized answer to CONNECT`));
        return;
      }
      s.off('data', onData);
      s.off('error', onProxyError);
      s.off('close', onClose);
      s.pause();
      const statusLine = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      const status = m ? Number(m[1]) : 0;
      if (status < 200 || status > 299) {
        return fail(
          pilotError('proxy_failed', `proxy ${proxy.display} refused CONNECT ${targetText}: ${JSON.stringify(statusLine.slice(0, 200))}`, {
            detail: { proxy: proxy.display, status, status_line: statusLine.slice(0, 200) },
          }),
        );
      }
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) s.unshift(rest);
      startTls(s);
    };
    s.on('error', onProxyError);
    s.on('close', onClose);
    s.on('data', onData);
    s.once('connect', () => {
      s.setNoDelay(true);
      const lines = [`CONNECT ${targetText} HTTP/1.1`, `Host: ${targetText}`];
      if (proxy.authorization) lines.push(`Proxy-Authorization: ${proxy.authorization}`);
      s.write(lines.join('\r\n') + '\r\n\r\n');
    });
  });
}
