// Self-test of the compat-transport networks (issue 13) without daemons: a NAT that drops its LAN's UDP (and one
// whose rule is deleted at runtime), and a NAT under which only TCP to an HTTP proxy (tinyproxy, basic auth) gets
// out. Observed from the packets' point of view: UDP datagrams must not arrive, CONNECT through the proxy must
// work with credentials and be refused without, direct TCP must fail. Does I/O; root only.
import { err, ok, type Result } from '../src/core/index.js';
import { setUdpBlocked } from './egress.js';
import { PROXY_PASS, PROXY_PORT, PROXY_USER, startProxy, type ProxyHandle } from './proxy.js';
import { withTopology, type Topology, type TopologySpec } from './topology.js';
import { UdpAgent } from './udp-agent.js';

/** How long a negative check (datagram must NOT arrive) waits; namespaces deliver in well under 1 ms. */
const NEGATIVE_WAIT_MS = 400;
const UDP_PORT = 5000;
const TCP_PORTS = [443, 9000] as const;

export interface EgressCheck {
  name: string;
  /** What was observed, e.g. "delivered", "not delivered", "HTTP/1.1 407 Proxy Authentication Required". */
  observed: string;
  pass: boolean;
}

/**
 * srv: public server (UDP 5000 reflector, TCP echo 443 + 9000); proxy: tinyproxy; blk behind a UDP-blocking NAT;
 * cone behind a plain port-restricted cone (the punching peer); px behind a proxy-only NAT.
 */
export function egressCheckSpec(): TopologySpec {
  return {
    publicHosts: [{ name: 'srv' }, { name: 'proxy' }],
    nats: [
      { name: 'nat-blk', kind: 'port-restricted-cone', blockUdp: true, hosts: [{ name: 'blk' }] },
      { name: 'nat-cone', kind: 'port-restricted-cone', hosts: [{ name: 'cone' }] },
      { name: 'nat-px', kind: 'port-restricted-cone', proxyOnly: `proxy:${PROXY_PORT}`, hosts: [{ name: 'px' }] },
    ],
  };
}

// TCP echo server: argv ip port… ; prints "ready" once all listen.
const TCP_ECHO_JS = String.raw`
const net = require('node:net');
const [ip, ...ports] = process.argv.slice(1);
let n = 0;
for (const p of ports) net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(Number(p), ip, () => { if (++n === ports.length) console.log('ready'); });
`;

// TCP client: argv JSON {host, port, proxy?: {host, port, auth?}, target?}. Connects (through CONNECT when proxy is
// given), sends "hello", prints one JSON line {connected, status, echoed, error}.
const TCP_CLIENT_JS = String.raw`
const net = require('node:net');
const o = JSON.parse(process.argv[1]);
const res = { connected: false, status: null, echoed: false, error: null };
const done = () => { console.log(JSON.stringify(res)); process.exit(0); };
setTimeout(() => { res.error = res.error || 'timeout'; done(); }, o.timeoutMs || 1500);
const s = net.connect(o.proxy ? o.proxy.port : o.port, o.proxy ? o.proxy.host : o.host);
s.on('error', (e) => { res.error = e.code || e.message; done(); });
s.on('connect', () => {
  res.connected = true;
  if (!o.proxy) { s.write('hello'); return; }
  const auth = o.proxy.auth ? 'Proxy-Authorization: Basic ' + Buffer.from(o.proxy.auth).toString('base64') + '\r\n' : '';
  s.write('CONNECT ' + o.host + ':' + o.port + ' HTTP/1.1\r\nHost: ' + o.host + ':' + o.port + '\r\n' + auth + '\r\n');
});
let buf = '';
let tunnel = !o.proxy;
s.on('data', (d) => {
  buf += d.toString('latin1');
  if (!tunnel) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    res.status = buf.slice(0, buf.indexOf('\r\n'));
    buf = buf.slice(end + 4);
    if (!/^HTTP\/1\.[01] 200/.test(res.status)) return done();
    tunnel = true;
    s.write('hello');
  }
  if (buf.includes('hello')) { res.echoed = true; done(); }
});
s.on('end', () => done());
`;

interface TcpProbe {
  connected: boolean;
  status: string | null;
  echoed: boolean;
  error: string | null;
}

/** TCP from `host` to host:port, optionally through an HTTP CONNECT proxy; never throws. */
export async function tcpProbe(
  topo: Topology,
  from: string,
  target: { host: string; port: number },
  proxy?: { host: string; port: number; auth?: string },
): Promise<TcpProbe> {
  const arg = JSON.stringify({ ...target, ...(proxy ? { proxy } : {}), timeoutMs: 1500 });
  const r = await topo.exec(from, [process.execPath, '-e', TCP_CLIENT_JS, arg], { timeoutMs: 10_000 });
  if (!r.ok) return { connected: false, status: null, echoed: false, error: r.error.message };
  try {
    return JSON.parse(r.value.stdout.trim().split('\n').pop()!) as TcpProbe;
  } catch {
    return { connected: false, status: null, echoed: false, error: `unparseable: ${r.value.stdout} ${r.value.stderr}` };
  }
}

/** Run every egress check in one topology (~3 s). err only when the topology or a helper cannot start. */
export async function runEgressCheck(): Promise<Result<EgressCheck[]>> {
  const r = await withTopology(egressCheckSpec(), (topo) => egressChecks(topo), { timeoutMs: 60_000 });
  return r.ok ? r.value : r;
}

async function egressChecks(topo: Topology): Promise<Result<EgressCheck[]>> {
  const agents: UdpAgent[] = [];
  let proxy: ProxyHandle | null = null;
  const checks: EgressCheck[] = [];
  const check = (name: string, observed: string, pass: boolean) => checks.push({ name, observed, pass });
  try {
    const srvIp = topo.ipOf('srv');
    const echo = topo.spawn('srv', [process.execPath, '-e', TCP_ECHO_JS, srvIp, ...TCP_PORTS.map(String)]);
    const isEchoReady = await new Promise<boolean>((res) => {
      const t = setTimeout(() => res(false), 10_000);
      echo.stdout?.on('data', () => (clearTimeout(t), res(true)));
      echo.once('exit', () => (clearTimeout(t), res(false)));
    });
    if (!isEchoReady) return err('internal', 'tcp echo server on srv did not start');
    const p = await startProxy(topo, 'proxy');
    if (!p.ok) return p;
    proxy = p.value;
    const start = async (host: string, bind: string, reflect = false): Promise<UdpAgent> => {
      const a = await UdpAgent.start(topo, host, [bind], { reflect });
      if (!a.ok) throw new Error(a.error.message);
      agents.push(a.value);
      return a.value;
    };
    const srv = await start('srv', `${srvIp}:${UDP_PORT}`, true);
    const blk = await start('blk', `${topo.ipOf('blk')}:40000`);
    const cone = await start('cone', `${topo.ipOf('cone')}:40000`);
    const px = await start('px', `${topo.ipOf('px')}:40000`);
    let seq = 0;
    /** Does a datagram from `agent` reach srv? */
    const udpArrives = async (agent: UdpAgent, waitMs: number): Promise<boolean> => {
      const tag = `udp-${agent.host}-${seq++}`;
      agent.send(0, `${srvIp}:${UDP_PORT}`, tag, 3, 20);
      return (await srv.waitFor((m) => m.text === tag, waitMs)) !== null;
    };
    const seen = (b: boolean) => (b ? 'delivered' : 'not delivered');
    const tcpSeen = (t: TcpProbe) => (t.echoed ? 'connected, echoed' : `failed (${t.error ?? t.status ?? 'no echo'})`);

    // UDP-blocked NAT
    let got = await udpArrives(blk, NEGATIVE_WAIT_MS);
    check('udp-blocked: UDP LAN → internet is dropped', seen(got), !got);
    let t = await tcpProbe(topo, 'blk', { host: srvIp, port: 443 });
    check('udp-blocked: TCP LAN → internet still works', tcpSeen(t), t.echoed);
    // punch attempts while blocked (as a daemon's would be) must leave nothing that stops a later punch
    const coneMapped = await cone.mappedVia(0, `${srvIp}:${UDP_PORT}`, 'cone-0');
    if (!coneMapped) return err('internal', 'no mapping for the cone host');
    blk.send(0, coneMapped, 'early-blk', 3, 20);
    cone.send(0, `${topo.publicIpOf('blk')}:40000`, 'early-cone', 3, 20);
    await new Promise((r) => setTimeout(r, 100));
    const un = await setUdpBlocked(topo, 'nat-blk', false);
    if (!un.ok) return un;
    got = await udpArrives(blk, 2000);
    check('udp-blocked: after deleting the rule, UDP arrives', seen(got), got);
    const blkMapped = await blk.mappedVia(0, `${srvIp}:${UDP_PORT}`, 'blk-0');
    let isPunched = false;
    if (blkMapped) {
      blk.send(0, coneMapped, 'punch-blk', 5, 50);
      cone.send(0, blkMapped, 'punch-cone', 5, 50);
      const [toCone, toBlk] = await Promise.all([
        cone.waitFor((m) => m.text === 'punch-blk', 2000),
        blk.waitFor((m) => m.text === 'punch-cone', 2000),
      ]);
      isPunched = toCone !== null && toBlk !== null;
    }
    check('udp-blocked: after unblocking, a punch with a cone LAN goes through both ways', `mapped ${blkMapped ?? 'none'}; ${isPunched ? 'both ways' : 'not both ways'}`, isPunched);
    const re = await setUdpBlocked(topo, 'nat-blk', true);
    if (!re.ok) return re;
    got = await udpArrives(blk, NEGATIVE_WAIT_MS);
    check('udp-blocked: blocked again at runtime, UDP is dropped', seen(got), !got);

    // proxy-only NAT
    const via = (auth?: string) => ({ host: proxy!.ip, port: proxy!.port, ...(auth ? { auth } : {}) });
    t = await tcpProbe(topo, 'px', { host: srvIp, port: 443 }, via(`${PROXY_USER}:${PROXY_PASS}`));
    check('proxy-only: CONNECT srv:443 with basic auth tunnels', `${t.status ?? t.error}; ${tcpSeen(t)}`, t.echoed && /^HTTP\/1\.[01] 200/.test(t.status ?? ''));
    t = await tcpProbe(topo, 'px', { host: srvIp, port: 443 }, via());
    check('proxy-only: CONNECT without credentials is refused (407)', t.status ?? String(t.error), / 407/.test(t.status ?? '') && !t.echoed);
    t = await tcpProbe(topo, 'px', { host: srvIp, port: 443 }, via(`${PROXY_USER}:wrong`));
    // tinyproxy 1.11 answers a wrong password with 401, not 407 (observed); either is a refusal
    check('proxy-only: CONNECT with a wrong password is refused (401/407)', t.status ?? String(t.error), / 40[17]/.test(t.status ?? '') && !t.echoed);
    t = await tcpProbe(topo, 'px', { host: srvIp, port: 9000 }, via(`${PROXY_USER}:${PROXY_PASS}`));
    check('proxy-only: CONNECT to a port other than 443 is refused (ConnectPort)', t.status ?? String(t.error), !t.echoed && /^HTTP\/1\.[01] 4\d\d/.test(t.status ?? ''));
    for (const port of TCP_PORTS) {
      t = await tcpProbe(topo, 'px', { host: srvIp, port });
      check(`proxy-only: direct TCP to srv:${port} fails`, tcpSeen(t), !t.connected && !t.echoed);
    }
    got = await udpArrives(px, NEGATIVE_WAIT_MS);
    check('proxy-only: UDP LAN → internet is dropped', seen(got), !got);
    return ok(checks);
  } catch (cause) {
    return err('internal', `egress check: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  } finally {
    for (const a of agents) a.stop();
    await proxy?.stop();
  }
}

export function formatEgressChecks(checks: readonly EgressCheck[]): string {
  const w = Math.max(...checks.map((c) => c.name.length));
  return checks.map((c) => `${c.name.padEnd(w)}  ${c.pass ? 'PASS' : 'FAIL'}  ${c.observed}`).join('\n');
}
