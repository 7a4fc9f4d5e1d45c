// The registry's custom networks (issue 15). It stores each network's signed membership chain
// (src/crypto/network-chain.ts), appends a change only when it verifies against the chain (the same fold the
// members run), and pushes every accepted change to the members before and after it, the subject and an
// invitee (`push_network_change`). It holds no member key, so it cannot add a member on its own: a member
// that folds the chain refuses a change nobody with the right role signed.
// What the registry decides besides the chain: the id of a new network, that a name is unique, that a join's or
// an invite's key is the key the node registered (one node id, one key), a token's check, and who may read a
// chain (members and invitees). Co-membership also lets members resolve each other's endpoints (as the
// original's resolve does for nodes sharing a non-backbone network).
import type { Logger } from '../core/logger.js';
import type { ErrorCode } from '../core/errors.js';
import {
  applyNetworkChange,
  decodeNetworkChange,
  foldNetworkChain,
  tokenCheckOf,
  type NetworkChange,
  type NetworkView,
} from '../crypto/network-chain.js';
import { registryAddressText, type RegistryMessage } from '../wire/registry-frame.js';
import type { RegistryRequest } from '../wire/registry-messages.js';
import {
  decodeNetworkRequest,
  networkReadText,
  type GetNetworkOkWire,
  type NetworkRequest,
  type NetworkSummaryWire,
  type PushNetworkChangeWire,
} from '../wire/network-messages.js';
import type { Change, NetworkRecord, NodeRecord, RegistryState } from './state.js';

/** The server's outcome shape (src/registry/server.ts). */
export interface NetworkOutcome {
  reply: Record<string, unknown>;
  after?: () => void;
}

export interface NetworkHost {
  readonly state: RegistryState;
  put(tx: Change[], c: Change): void;
  push(nodeId: number, msg: Record<string, unknown>): void;
  /** A fresh signature by `node` over `text` (the server's authenticate with requireFresh); null when it verifies. */
  authenticate(node: NodeRecord, msg: RegistryRequest, text: string): NetworkOutcome | null;
  logger: Logger;
}

/** uint16 address space of the original; 0 is the backbone. */
const MAX_NETWORK_ID = 0xffff;
const MAX_NETWORKS_PER_NODE = 256;
/** All policy texts of one chain together (get_network sends the whole chain in one frame of ≤ 1 MiB). */
const MAX_CHAIN_POLICY_TOTAL = 256 * 1024;

export class NetworkRegistry {
  /** Verified views, derived from the chains in state (rebuilt at start, kept in step with every change). */
  private readonly views = new Map<number, NetworkView>();
  /** node id → the networks it is a member of. */
  private readonly memberOf = new Map<number, Set<number>>();

  constructor(private readonly host: NetworkHost) {
    for (const rec of host.state.networks.values()) {
      const v = foldNetworkChain(rec.changes);
      if (!v.ok) {
        host.logger.error({ networkId: rec.id, err: v.error.message }, 'stored network chain does not verify; network ignored');
        continue;
      }
      this.setView(rec.id, v.value);
    }
  }

  /** The state's chain of network `id` changed outside this replica's requests (etcd): refold its view. */
  refresh(id: number): void {
    const rec = this.host.state.networks.get(id);
    if (!rec) return this.dropView(id);
    const v = foldNetworkChain(rec.changes);
    if (!v.ok) {
      this.host.logger.error({ networkId: id, err: v.error.message }, 'network chain from the shared store does not verify; network ignored');
      return this.dropView(id);
    }
    this.setView(id, v.value);
  }

  /** Do `a` and `b` share a custom network? (resolve, punch, and the hostname of a private node.) */
  areCoMembers(a: number, b: number): boolean {
    const na = this.memberOf.get(a);
    const nb = this.memberOf.get(b);
    if (!na || !nb) return false;
    for (const id of na) if (nb.has(id)) return true;
    return false;
  }

  /** The networks a node is a member of (lookup_ok `networks`, after 0). */
  networksOf(nodeId: number): number[] {
    return [...(this.memberOf.get(nodeId) ?? [])].sort((x, y) => x - y);
  }

  handle(raw: RegistryMessage, msg: RegistryRequest, tx: Change[]): NetworkOutcome {
    const decoded = decodeNetworkRequest(raw);
    if (!decoded.ok) return fail('invalid_argument', decoded.error.message);
    const req = decoded.value;
    switch (req.type) {
      case 'list_networks':
        return this.listNetworks(req, msg);
      case 'list_nodes':
        return this.listNodes(req, msg);
      case 'get_network':
        return this.getNetwork(req, msg);
      case 'create_network':
        return this.create(req, tx);
      case 'join_network':
      case 'leave_network':
      case 'network_change':
        return this.change(req, tx);
    }
  }

  // ---- reads ----

  private listNetworks(req: NetworkRequest, msg: RegistryRequest): NetworkOutcome {
    let requester: number | null = null;
    if (msg.signed.hasSignature) {
      const who = this.identify(req.nodeId, msg, networkReadText('list_networks', req.nodeId, 0));
      if (!isId(who)) return who;
      requester = who;
    }
    const networks: NetworkSummaryWire[] = [{ id: 0, name: 'backbone', members: this.host.state.nodes.size, join_rule: 'open' }];
    for (const [id, v] of [...this.views].sort((a, b) => a[0] - b[0])) {
      const s: NetworkSummaryWire = { id, name: v.name, members: v.members.size, join_rule: v.joinRule };
      if (requester !== null) {
        s.role = v.members.get(requester)?.role ?? '';
        s.invited = v.invites.has(requester);
      }
      networks.push(s);
    }
    return { reply: { type: 'list_networks_ok', networks } };
  }

  private getNetwork(req: NetworkRequest, msg: RegistryRequest): NetworkOutcome {
    const who = this.identify(req.nodeId, msg, networkReadText('get_network', req.nodeId, req.networkId, req.name));
    if (!isId(who)) return who;
    const found = this.find(req);
    if (!found) return notFound(req);
    const [id, v] = found;
    const head = { network_id: id, name: v.name, join_rule: v.joinRule, head: v.head, seq: v.seq };
    // Members and invitees read the chain (an invitee verifies its invite before it signs a join). Others may
    // join an open or token network: they get the head to sign against, not the member list.
    if (!v.members.has(who) && !v.invites.has(who)) {
      if (v.joinRule === 'invite') return fail('permission_denied', `node ${who} is not a member of network ${v.name}`);
      return { reply: { type: 'get_network_ok', ...head, changes: [] } satisfies GetNetworkOkWire };
    }
    const rec = this.host.state.networks.get(id)!;
    return { reply: { type: 'get_network_ok', ...head, changes: rec.changes } satisfies GetNetworkOkWire };
  }

  private listNodes(req: NetworkRequest, msg: RegistryRequest): NetworkOutcome {
    if (req.networkId === 0) return fail('invalid_argument', 'listing backbone nodes is not permitted (use lookup with a specific node_id)');
    const v = this.views.get(req.networkId);
    if (!v) return fail('not_found', `network ${req.networkId} not found`);
    // Ours: only members list members (the original lists any network to anyone).
    const who = this.identify(req.nodeId, msg, networkReadText('list_nodes', req.nodeId, req.networkId));
    if (!isId(who)) return who;
    if (!v.members.has(who)) return fail('permission_denied', `node ${who} is not a member of network ${v.name}`);
    const nodes = [...v.members.values()]
      .sort((a, b) => a.nodeId - b.nodeId)
      .map((m) => {
        const n = this.host.state.nodes.get(m.nodeId);
        const e: Record<string, unknown> = { node_id: m.nodeId, address: registryAddressText(m.nodeId, req.networkId), role: m.role, public_key: m.key };
        if (n?.hostname) e.hostname = n.hostname;
        if (n?.taskExec) e.task_exec = true;
        if (n?.isPublic) e.real_addr = n.realAddr;
        e.online = n !== undefined;
        return e;
      });
    return { reply: { type: 'list_nodes_ok', network_id: req.networkId, nodes } };
  }

  // ---- writes ----

  private create(req: NetworkRequest, tx: Change[]): NetworkOutcome {
    const node = this.host.state.nodes.get(req.nodeId);
    if (!node) return fail('not_found', `node ${req.nodeId} not registered`);
    if (req.change === undefined) {
      return fail('invalid_argument', 'create_network needs a signed genesis change (`change`): membership is signed by its members, see docs/networks.md');
    }
    const c = decodeNetworkChange(req.change);
    if (!c.ok) return fail(c.error.code, c.error.message);
    const change = c.value;
    if (change.op !== 'create' || change.node_id !== req.nodeId) return fail('invalid_argument', 'create_network needs a create change by the requesting node');
    if (change.key !== node.publicKey) return fail('permission_denied', 'the genesis must be signed with the key the node registered');
    if (req.joinRule !== '' && req.joinRule !== change.join_rule) return fail('invalid_argument', 'join_rule differs from the signed genesis');
    if (change.join_rule === 'token' && (req.token === '' || tokenCheckOf(req.token) !== change.token_check)) {
      return fail('invalid_argument', 'a token network needs its token, matching the genesis token_check');
    }
    for (const v of this.views.values()) if (v.name === change.name) return fail('already_exists', `network "${change.name}" already exists`);
    if ((this.memberOf.get(req.nodeId)?.size ?? 0) >= MAX_NETWORKS_PER_NODE) return fail('invalid_argument', `a node is a member of at most ${MAX_NETWORKS_PER_NODE} networks`);
    const v = applyNetworkChange(null, change);
    if (!v.ok) return fail(v.error.code, v.error.message);
    let id = 1;
    while (id <= MAX_NETWORK_ID && this.host.state.networks.has(id)) id++;
    if (id > MAX_NETWORK_ID) return fail('invalid_argument', 'network ID space exhausted (max 65535 networks)');
    this.host.put(tx, { k: 'network', id, v: { id, changes: [change] } });
    this.setView(id, v.value);
    return {
      reply: {
        type: 'create_network_ok',
        network_id: id,
        name: change.name,
        join_rule: change.join_rule,
        address: registryAddressText(req.nodeId, id),
        seq: 0,
        role: 'owner',
      },
    };
  }

  private change(req: NetworkRequest, tx: Change[]): NetworkOutcome {
    const rec = this.host.state.networks.get(req.networkId);
    const view = this.views.get(req.networkId);
    if (req.networkId === 0) return fail('invalid_argument', req.type === 'leave_network' ? 'cannot leave the backbone network' : 'the backbone (network 0) has no membership changes');
    if (!rec || !view) return fail('not_found', `network ${req.networkId} not found`);
    if (req.change === undefined) {
      return fail('invalid_argument', `${req.type} needs a signed membership change (\`change\`): see docs/networks.md`);
    }
    const c = decodeNetworkChange(req.change);
    if (!c.ok) return fail(c.error.code, c.error.message);
    const change = c.value;
    const expected = req.type === 'join_network' ? 'join' : req.type === 'leave_network' ? 'leave' : null;
    if (expected && change.op !== expected) return fail('invalid_argument', `${req.type} carries a ${expected} change`);
    if (change.op === 'create') return fail('invalid_argument', 'create only through create_network');
    // One node id, one key: a join, invite or rekey names the key that node registered.
    if (change.op === 'join' || change.op === 'invite' || change.op === 'rekey') {
      const subject = this.host.state.nodes.get(change.node_id);
      if (!subject) return fail('not_found', `node ${change.node_id} not registered`);
      if (subject.publicKey !== change.key) return fail('permission_denied', `the change names another key than node ${change.node_id} registered`);
      if (change.op === 'join' && (this.memberOf.get(change.node_id)?.size ?? 0) >= MAX_NETWORKS_PER_NODE) {
        return fail('invalid_argument', `a node is a member of at most ${MAX_NETWORKS_PER_NODE} networks`);
      }
    }
    if (change.op === 'hostname' && change.hostname) {
      // A member's hostname in a network is the one it registered (the chain keeps it unique among members).
      const subject = this.host.state.nodes.get(change.node_id);
      if (!subject || subject.hostname !== change.hostname) return fail('permission_denied', `hostname ${change.hostname} is not the registered hostname of node ${change.node_id}`);
    }
    if (change.op === 'policy') {
      // Every get_network frames the whole chain: bound what policy changes add to it (a frame is ≤ 1 MiB).
      let bytes = (change.policy ?? '').length;
      for (const old of rec.changes) bytes += old.policy?.length ?? 0;
      if (bytes > MAX_CHAIN_POLICY_TOTAL) return fail('invalid_argument', `policy changes of network ${req.networkId} would exceed ${MAX_CHAIN_POLICY_TOTAL} chars in all`);
    }
    if (change.op === 'rename') {
      for (const [other, v] of this.views) if (other !== req.networkId && v.name === change.name) return fail('already_exists', `network "${change.name}" already exists`);
    }
    let token: string | undefined;
    if (change.op === 'join' && view.joinRule === 'token' && !view.invites.has(change.node_id)) {
      if (req.token === '' || tokenCheckOf(req.token) !== view.tokenCheck) return fail('permission_denied', `invalid token for network ${req.networkId}`);
      token = req.token;
    }
    const next = applyNetworkChange(view, change, token === undefined ? {} : { token });
    if (!next.ok) return fail(next.error.code, next.error.message);
    const id = req.networkId;
    const before = [...view.members.keys()];
    if (next.value.isDeleted) {
      this.host.put(tx, { k: 'network', id, v: null });
      this.dropView(id);
    } else {
      const updated: NetworkRecord = { id, changes: [...rec.changes, change] };
      this.host.put(tx, { k: 'network', id, v: updated });
      this.setView(id, next.value);
    }
    const audience = new Set<number>([...before, ...next.value.members.keys(), change.node_id]);
    const push: PushNetworkChangeWire = { type: 'push_network_change', network_id: id, change: change as NetworkChange };
    const reply: Record<string, unknown> = { type: `${req.type}_ok`, network_id: id, op: change.op, node_id: change.node_id, seq: change.seq };
    if (change.op === 'join') reply.address = registryAddressText(change.node_id, id);
    if (change.op === 'rename') reply.name = change.name;
    return {
      reply,
      after: () => {
        for (const n of audience) this.host.push(n, push);
      },
    };
  }

  // ---- helpers ----

  private identify(nodeId: number, msg: RegistryRequest, text: string): number | NetworkOutcome {
    const node = this.host.state.nodes.get(nodeId);
    if (!node) return fail('not_found', `node ${nodeId} not registered`);
    const denied = this.host.authenticate(node, msg, text);
    return denied ?? nodeId;
  }

  private find(req: NetworkRequest): [number, NetworkView] | null {
    if (req.name !== '') {
      for (const [id, v] of this.views) if (v.name === req.name) return [id, v];
      return null;
    }
    const v = this.views.get(req.networkId);
    return v ? [req.networkId, v] : null;
  }

  private setView(id: number, v: NetworkView): void {
    const old = this.views.get(id);
    if (old) for (const m of old.members.keys()) this.memberOf.get(m)?.delete(id);
    this.views.set(id, v);
    for (const m of v.members.keys()) {
      let s = this.memberOf.get(m);
      if (!s) this.memberOf.set(m, (s = new Set()));
      s.add(id);
    }
  }

  private dropView(id: number): void {
    const old = this.views.get(id);
    if (old) for (const m of old.members.keys()) this.memberOf.get(m)?.delete(id);
    this.views.delete(id);
  }
}

function isId(v: number | NetworkOutcome): v is number {
  return typeof v === 'number';
}

function notFound(req: NetworkRequest): NetworkOutcome {
  return fail('not_found', req.name !== '' ? `network "${req.name.slice(0, 63)}" not found` : `network ${req.networkId} not found`);
}

function fail(code: ErrorCode, message: string): NetworkOutcome {
  return { reply: { type: 'error', error: message, code } };
}
