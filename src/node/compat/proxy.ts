// The HTTP CONNECT proxy of the compat transport, as values: `--proxy URL` / HTTPS_PROXY parsed once where it
// enters (daemon-options.ts), and NO_PROXY's rules (curl's and Go's reading: `*`, an exact host, `.suffix` or
// `suffix` matching the host and its subdomains, `host:port` matching one port). Pure: no I/O.
import { err, ok, type Result } from '../../core/result.js';
import { parseHostPort, formatHostPort } from '../../wire/endpoint.js';

export interface ProxyConfig {
  host: string;
  port: number;
  /** `Proxy-Authorization` value (`Basic <base64 user:pass>`), or null without credentials in the URL. */
  authorization: string | null;
  /** The URL as shown to people: scheme, user (no password), host and port. */
  display: string;
}

/** One NO_PROXY entry. `port` null = any port. */
export interface NoProxyRule {
  host: string;
  port: number | null;
}

const PROXY_HINT = 'http://[user:pass@]host:port, e.g. --proxy http://proxy.corp:3128';

/**
 * `http://[user[:pass]@]host[:port][/]` → ProxyConfig (port default 80; user/pass percent-decoded). https:// proxies
 * (TLS to the proxy itself) are not supported. invalid_argument otherwise.
 */
export function parseProxyUrl(text: string): Result<ProxyConfig> {
  const t = text.trim();
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `http://${t}`);
  } catch {
    return err('invalid_argument', `--proxy '${t.slice(0, 120)}' is not a URL`, { hint: PROXY_HINT });
  }
  if (u.protocol !== 'http:') {
    return err('invalid_argument', `--proxy '${redact(u)}': only http:// proxies (HTTP CONNECT) are supported`, { hint: PROXY_HINT });
  }
  if (u.hostname === '' || (u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    return err('invalid_argument', `--proxy '${redact(u)}' must be http://host:port without a path`, { hint: PROXY_HINT });
  }
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port === '' ? 80 : Number(u.port);
  let authorization: string | null = null;
  if (u.username !== '' || u.password !== '') {
    let user: string;
    let pass: string;
    try {
      user = decodeURIComponent(u.username);
      pass = decodeURIComponent(u.password);
    } catch {
      return err('invalid_argument', '--proxy: the user or password is not valid percent-encoding', { hint: PROXY_HINT });
    }
    authorization = `Basic ${Buffer.from(`${user}:${pass}`, 'utf8').toString('base64')}`;
  }
  return ok({ host, port, authorization, display: redact(u) });
}

function redact(u: URL): string {
  const host = u.hostname;
  const port = u.port === '' ? (u.protocol === 'http:' ? 80 : '') : u.port;
  return `${u.protocol}//${u.username ? `${u.username}@` : ''}${host}${port === '' ? '' : `:${port}`}`;
}

/** NO_PROXY text (comma or space separated) → rules; entries that are not hosts are ignored, as curl does. */
export function parseNoProxy(text: string | null | undefined): NoProxyRule[] {
  if (!text) return [];
  const rules: NoProxyRule[] = [];
  for (const raw of text.split(/[\s,]+/)) {
    const e = raw.trim().toLowerCase();
    if (e === '') continue;
    if (e === '*') {
      rules.push({ host: '*', port: null });
      continue;
    }
    const hp = /:\d{1,5}$/.test(e) ? parseHostPort(e) : null;
    if (hp && hp.ok) rules.push({ host: hp.value.host.replace(/^\*?\./, '.'), port: hp.value.port });
    else rules.push({ host: e.replace(/^\[|\]$/g, '').replace(/^\*\./, '.'), port: null });
  }
  return rules;
}

/** Does a NO_PROXY rule exempt `host:port` from the proxy? */
export function isNoProxy(rules: readonly NoProxyRule[], host: string, port: number): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  for (const r of rules) {
    if (r.host === '*') return true;
    if (r.port !== null && r.port !== port) continue;
    const suffix = r.host.startsWith('.') ? r.host.slice(1) : r.host;
    if (h === suffix || h.endsWith(`.${suffix}`)) return true;
  }
  return false;
}

/** The proxy for a connection to `host:port`: `proxy` unless NO_PROXY exempts the destination. */
export function proxyFor(proxy: ProxyConfig | null, noProxy: readonly NoProxyRule[], host: string, port: number): ProxyConfig | null {
  if (!proxy) return null;
  return isNoProxy(noProxy, host, port) ? null : proxy;
}

/** `host:port` as a CONNECT request target. */
export function connectTarget(host: string, port: number): string {
  return formatHostPort(host, port);
}
