// Runtime control of a NAT router's egress filter (table `ip pn_egress`, see nat.ts egressRuleset): block or
// unblock the LAN's UDP while processes run, e.g. to watch a daemon in `--transport auto` move from the
// WebSocket relay back to UDP. Does I/O (nft inside the router's namespace); root only.
import { err, ok, type Result } from '../src/core/index.js';
import { EGRESS_CHAIN, EGRESS_TABLE, UDP_BLOCK_COMMENT, udpBlockRules } from './nat.js';
import { NAT_LAN_IF, NAT_WAN_IF, type Topology } from './topology.js';

/** Handles of the UDP-block rules in `nat`'s egress chain (empty when UDP is not blocked). */
export async function udpBlockHandles(topo: Topology, nat: string): Promise<Result<number[]>> {
  const r = await topo.exec(nat, ['nft', '-a', 'list', 'chain', 'ip', EGRESS_TABLE, EGRESS_CHAIN], { timeoutMs: 10_000 });
  if (!r.ok) return r;
  if (r.value.code !== 0) return err('internal', `nft list chain in ${nat}: ${r.value.stderr.trim()}`);
  const handles: number[] = [];
  for (const line of r.value.stdout.split('\n')) {
    const m = /# handle (\d+)\s*$/.exec(line);
    if (m && line.includes(`comment "${UDP_BLOCK_COMMENT}"`)) handles.push(Number(m[1]));
  }
  return ok(handles);
}

/**
 * Drop (blocked = true) or pass the UDP between `nat`'s LAN and the internet from now on. Unblocking deletes the
 * rules by handle; conntrack is left alone (a dropped flow was never confirmed, so there is nothing stale).
 * Idempotent. err('internal') when nft fails; `nat` must be a NAT router of the topology.
 */
export async function setUdpBlocked(topo: Topology, nat: string, blocked: boolean): Promise<Result<void>> {
  if (topo.host(nat).role !== 'nat') return err('invalid_argument', `${nat} is not a NAT router`);
  const handles = await udpBlockHandles(topo, nat);
  if (!handles.ok) return handles;
  let script: string;
  if (blocked) {
    if (handles.value.length > 0) return ok();
    script = udpBlockRules({ wanIf: NAT_WAN_IF, lanIf: NAT_LAN_IF })
      .map((rule) => `insert rule ip ${EGRESS_TABLE} ${EGRESS_CHAIN} ${rule}`)
      .join('\n');
  } else {
    if (handles.value.length === 0) return ok();
    script = handles.value.map((h) => `delete rule ip ${EGRESS_TABLE} ${EGRESS_CHAIN} handle ${h}`).join('\n');
  }
  const r = await topo.exec(nat, ['nft', '-f', '-'], { input: script + '\n', timeoutMs: 10_000 });
  if (!r.ok) return r;
  if (r.value.code !== 0) return err('internal', `nft in ${nat}: ${r.value.stderr.trim()}`, { detail: { script } });
  return ok();
}
