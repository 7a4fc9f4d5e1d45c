// `pilotctl health` (issues 14 and 17): is this node healthy, and if not, what is wrong and why — the daemon,
// the registry, the beacon / NAT, the transport, the datapath and a path summary over the peers, each with the
// reason the daemon gives. Healthy: `{"status":"ok","data":{healthy:true,…}}`, exit 0. Unhealthy: the error
// envelope (not_running when the daemon does not answer, connection_failed when it is not registered or has
// lost the registry) with the whole report in `detail`, exit 1 — so `pilotctl health && …` works in scripts.
import { err, ok } from '../core/result.js';
import type { NodeInfo, PeerEntry } from '../node/api.js';
import { defineCommand, type Command } from './command.js';
import { fields, formatDuration } from './output.js';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

interface PathCounts {
  total: number;
  direct: number;
  relayed: number;
}

function pathCounts(peers: PeerEntry[]): PathCounts {
  return { total: peers.length, direct: peers.filter((p) => p.path === 'direct').length, relayed: peers.filter((p) => p.path === 'relay').length };
}

function checksOf(i: NodeInfo, { total, direct, relayed }: PathCounts): Check[] {
  return [
    { name: 'daemon', ok: true, detail: `running ${formatDuration(i.uptime_s)}, version ${i.version}` },
    { name: 'registry', ok: i.registered && i.registry_connected, detail: i.registry_reason },
    { name: 'nat', ok: true, detail: i.nat_type ? `${i.nat_type} — ${i.nat_reason}` : i.nat_reason },
    {
      name: 'transport',
      ok: i.transport_error === null || i.transport === 'udp',
      detail: `${i.transport} (mode ${i.transport_mode}): ${i.transport_reason}${i.transport_error ? `; last compat error: ${i.transport_error.message}` : ''}`,
    },
    { name: 'datapath', ok: true, detail: `${i.datapath}: ${i.datapath_reason}` },
    { name: 'paths', ok: true, detail: `${total} peer(s): ${direct} direct, ${relayed} relayed, ${total - direct - relayed} without a session` },
  ];
}

const health = defineCommand<null>({
  name: 'health',
  group: 'Diagnostics',
  summary: 'Is this node healthy? Daemon, registry, NAT, transport, datapath and paths, each with why; exit 1 when not',
  args: [],
  flags: [],
  returns:
    'healthy (bool), checks [{name: daemon|registry|nat|transport|datapath|paths, ok, detail}], node_id, address, registry, beacon, nat_type, transport, datapath, peers_direct, peers_relayed; unhealthy: the error envelope with this report in detail',
  errors: ['not_running', 'connection_failed', 'daemon_unverified'],
  parse: () => ok(null),
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) {
      return err('not_running', `unhealthy: the daemon does not answer (${c.error.message})`, {
        hint: c.error.hint ?? 'start it with: pilotctl daemon start',
        detail: { healthy: false, checks: [{ name: 'daemon', ok: false, detail: c.error.message }] },
      });
    }
    const [ir, pr] = await Promise.all([c.value.info(), c.value.peers()]);
    if (!ir.ok) return ir;
    const i = ir.value;
    const paths = pathCounts(pr.ok ? pr.value.peers : []);
    const checks = checksOf(i, paths);
    const healthy = checks.every((k) => k.ok);
    const data = {
      healthy,
      checks,
      node_id: i.node_id,
      address: i.address,
      registry: i.registry,
      beacon: i.beacon,
      nat_type: i.nat_type,
      transport: i.transport,
      datapath: i.datapath,
      peers_direct: paths.direct,
      peers_relayed: paths.relayed,
    };
    if (!healthy) {
      const bad = checks.filter((k) => !k.ok);
      return err('connection_failed', `unhealthy: ${bad.map((k) => `${k.name}: ${k.detail}`).join('; ')}`, {
        hint: i.registered ? 'the daemon keeps retrying; pilotctl info shows the details' : 'start a rendezvous (pilotctl rendezvous start) or point at yours (--registry HOST:PORT)',
        detail: data,
      });
    }
    const text = `healthy\n` + fields(checks.map((k): [string, string] => [k.name, k.detail]));
    return ok({ data, text });
  },
});

export const HEALTH_COMMANDS: Command[] = [health];
