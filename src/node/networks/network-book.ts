// The daemon's networks (issue 15): the verified membership chain of every network this node is a member of,
// and the operations that extend one (create, join, invite, accept, reject, leave, kick, promote, demote,
// rename, delete). Chains come from the registry (get_network, and a push of each accepted change) but are
// folded here with src/crypto/network-chain.ts: a member the registry adds without an owner's or admin's
// signature never verifies, and a registry that rewrites a chain we already hold is refused.
// Membership is trust for reachability: a verified co-member may open a tunnel to us with the key the chain
// records for it (authorize), without a handshake; when it leaves or is kicked, `onMemberGone` drops its
// tunnel at once (pushed, like trust revocation).
import type { Logger } from 'pino';
import { err, errFrom, ok, type Result } from '../../core/result.js';
import { pilotError } from '../../core/errors.js';
import {
  applyNetworkChange,
  changeHash,
  decodeNetworkChange,
  foldNetworkChain,
  JOIN_RULES,
  makeChange,
  MAX_CHAIN_POLICY_CHARS,
  networkNameProblem,
  tokenCheckOf,
  tokenMacOf,
  type ChangeOp,
  type JoinRule,
  type NetworkChange,
  type NetworkRole,
  type NetworkView,
} from '../../crypto/network-chain.js';
import { toBase64 } from '../../crypto/index.js';
import { registryAddressText, type RegistryMessage } from '../../wire/registry-frame.js';
import {
  decodeGetNetworkOk,
  decodeListNetworksOk,
  decodePushNetworkChange,
  networkReadText,
  type NetworkSummary,
} from '../../wire/network-messages.js';
import { fieldString, fieldU32 } from '../../wire/registry-messages.js';
import { evaluate, parsePolicy, type Decision, type Policy } from '../../policy/index.js';
import type { RegistryClient } from '../registry-client.js';
import { readJsonFile, writeJsonFile } from '../json-file.js';

export interface NetworkBookDeps {
  registry: Pick<RegistryClient, 'request' | 'freshSignatureFields' | 'onPushFrame' | 'lookup'>;
  nodeId(): number;
  /** The node's current public key (rotate-key may change it). */
  publicKey(): Uint8Array;
  sign(msg: Uint8Array): Uint8Array;
  nowSec(): number;
  /** A node stopped being a co-member (left, kicked, we left, network deleted): drop what membership allowed. */
  onMemberGone(nodeId: number, networkName: string): void;
  /** Every change verified from now on (pushed, ours, or new in a fetched chain), in order (events, audit). */
  onChange?(networkId: number, networkName: string, change: NetworkChange): void;
  logger: Logger;
  /** Where the tokens of token networks we are in are kept (0600; checks later token joins after a restart). */
  tokenFile?: string;
  nowMs?: () => number;
}

interface TokenFile {
  version: 1;
  tokens: [number, string][];
}

function isTokenFile(v: unknown): v is TokenFile {
  const o = v as TokenFile;
  return typeof v === 'object' && v !== null && o.version === 1 && Array.isArray(o.tokens) && o.tokens.every((t) => Array.isArray(t) && typeof t[0] === 'number' && typeof t[1] === 'string');
}

interface HeldNetwork {
  id: number;
  view: NetworkView;
  changes: NetworkChange[];
  /** The token of a token network, when this node created or joined it with one (checks later token joins). */
  token?: string;
}

export interface NetworkEntry {
  network_id: number;
  name: string;
  join_rule: string;
  members: number;
  /** '' when not a member. */
  role: NetworkRole | '';
  invited: boolean;
  address: string | null;
}

export interface NetworkMemberEntry {
  node_id: number;
  address: string;
  hostname: string | null;
  role: NetworkRole;
  public_key: string;
  /** Its tags in this network (an owner or admin sets them: `network tag`). */
  tags: string[];
  /** The hostname it signed into this network's chain (policy hostname selectors match it); null before it did. */
  network_hostname: string | null;
}

export class NetworkBook {
  private readonly held = new Map<number, HeldNetwork>();
  /** Tokens of token networks by id, persisted in deps.tokenFile. */
  private readonly tokens = new Map<number, string>();

  constructor(private readonly deps: NetworkBookDeps) {
    if (deps.tokenFile) {
      const f = readJsonFile<TokenFile>(deps.tokenFile, { version: 1, tokens: [] }, isTokenFile, deps.nowMs?.() ?? 0);
      if (f.ok) for (const [id, t] of f.value.tokens) this.tokens.set(id, t);
      else deps.logger.warn({ err: f.error.message }, 'network tokens not loaded');
    }
    deps.registry.onPushFrame((m) => {
      if (fieldString(m, 'type') === 'push_network_change') void this.handlePush(m);
    });
  }

  // ---- membership as trust ----

  /** The key a verified co-member holds per the chain, or null when `nodeId` shares no network with us. */
  coMemberKey(nodeId: number): string | null {
    for (const h of this.held.values()) {
      const m = h.view.members.get(nodeId);
      if (m && nodeId !== this.deps.nodeId()) return m.key;
    }
    return null;
  }

  isCoMember(nodeId: number): boolean {
    return this.coMemberKey(nodeId) !== null;
  }

  /**
   * May `nodeId`, presenting `key`, open a tunnel to us as a co-member? Ok when a verified chain makes it a
   * member with that key; else connection_failed. The policy hook: a network's policy (src/policy, allow/deny
   * rules per network) would be consulted here, between the membership check and the ok.
   */
  authorize(nodeId: number, key: Uint8Array): Result<{ networkId: number }> {
    const text = toBase64(key);
    for (const h of this.held.values()) {
      const m = h.view.members.get(nodeId);
      if (!m) continue;
      if (m.key !== text) return err('connection_failed', `node ${nodeId} presented a key that differs from the one network ${h.view.name} records`);
      // The policy is per port: checkPolicy, at each SYN and datagram (the tunnel itself is membership's).
      return ok({ networkId: h.id });
    }
    return err('connection_failed', `node ${nodeId} is not trusted and shares no network with us`);
  }

  /**
   * May `from` reach `to` on `port` under the policies of the networks both are members of (one of them is
   * us)? null when allowed (no shared network has a policy, or every one that has allows it); else the first
   * denying network's decision. Pure over the verified chains; a policy that does not parse denies everything
   * (setPolicy refuses such text, so only a foreign setter could sign one; it is logged once).
   */
  checkPolicy(from: number, to: number, port: number): { network: string; networkId: number; decision: Decision } | null {
    if (this.held.size === 0) return null; // per SYN and per datagram: no networks, no policy
    for (const h of this.held.values()) {
      if (h.view.policy === '') continue;
      const a = h.view.members.get(from);
      const b = h.view.members.get(to);
      if (!a || !b) continue;
      const policy = this.parsedPolicy(h);
      // A signed policy that does not parse denies everything (fail closed): its signer meant to restrict.
      const d: Decision = policy
        ? evaluate(policy, subjectOf(a), subjectOf(b), port)
        : { allow: false, action: 'deny', rule_index: null, rule: 'policy does not parse', line: null, reason: `network ${h.view.name}'s signed policy does not parse: everything is denied until an owner sets a valid one` };
      if (!d.allow) return { network: h.view.name, networkId: h.id, decision: d };
    }
    return null;
  }

  private readonly policyCache = new Map<string, Policy | null>();

  private parsedPolicy(h: HeldNetwork): Policy | null {
    const key = h.view.policySha256;
    if (this.policyCache.has(key)) return this.policyCache.get(key)!;
    const r = parsePolicy(h.view.policy, `${h.view.name} policy`);
    if (!r.ok) this.deps.logger.warn({ network: h.view.name, err: r.error.message }, 'network policy does not parse: everything is denied (fail closed)');
    if (this.policyCache.size >= 64) this.policyCache.clear();
    this.policyCache.set(key, r.ok ? r.value : null);
    return r.ok ? r.value : null;
  }

  /** `policy get NAME`: the network's policy text as the verified chain holds it (null: none). */
  getPolicy(name: string): Result<{ network_id: number; name: string; policy: string | null; sha256: string | null; seq: number | null; rules: number; default: string | null }> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const v = h.view;
    if (v.policy === '') return ok({ network_id: h.id, name: v.name, policy: null, sha256: null, seq: null, rules: 0, default: null });
    const p = this.parsedPolicy(h);
    return ok({ network_id: h.id, name: v.name, policy: v.policy, sha256: v.policySha256, seq: v.policySeq, rules: p?.rules.length ?? 0, default: p?.default ?? null });
  }

  /** `policy set NAME FILE` (owner or admin): validate, sign a `policy` change, push it through the registry. '' clears. */
  async setPolicy(name: string, text: string): Promise<Result<{ network_id: number; name: string; sha256: string | null; seq: number; rules: number }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    if (text.length > MAX_CHAIN_POLICY_CHARS) return err('invalid_argument', `a network policy is at most ${MAX_CHAIN_POLICY_CHARS} characters (this one has ${text.length})`, { hint: 'merge rules: port ranges ("1000-1999"), lists of selectors, role: and tag: selectors' });
    let rules = 0;
    if (text !== '') {
      const p = parsePolicy(text, 'policy');
      if (!p.ok) return p;
      rules = p.value.rules.length;
    }
    const r = await this.adminChange(h, 'policy', this.deps.nodeId(), { policy: text });
    if (!r.ok) return r;
    const cur = this.held.get(h.id);
    return ok({ network_id: h.id, name: h.view.name, sha256: text === '' ? null : (cur?.view.policySha256 ?? null), seq: cur?.view.policySeq ?? -1, rules });
  }

  /** Networks (id → name) this node is a member of, verified. */
  heldNetworks(): { id: number; name: string }[] {
    return [...this.held.values()].map((h) => ({ id: h.id, name: h.view.name }));
  }

  /** Members of every held network but us (broadcast's audience), by network name. */
  membersOf(name: string): Result<{ networkId: number; nodeIds: number[] }> {
    const h = this.byName(name);
    if (!h) return err('not_found', `not a member of network "${name}"`, { hint: 'see `pilotctl network list`' });
    const me = this.deps.nodeId();
    return ok({ networkId: h.id, nodeIds: [...h.view.members.keys()].filter((n) => n !== me).sort((a, b) => a - b) });
  }

  // ---- sync with the registry ----

  /** Learn which networks we are in (after every registration) and fetch + verify their chains. */
  async refresh(): Promise<Result<{ networks: number }>> {
    const list = await this.listRemote();
    if (!list.ok) return list;
    const mine = new Set(list.value.filter((n) => n.role !== undefined && n.role !== '').map((n) => n.id));
    for (const id of [...this.held.keys()]) if (!mine.has(id)) this.forget(id);
    for (const id of mine) {
      const r = await this.fetch(id);
      if (!r.ok) this.deps.logger.warn({ networkId: id, err: r.error.message }, 'network chain refused');
    }
    return ok({ networks: this.held.size });
  }

  /** Fetch a chain, verify it, and keep it when we are a member (a chain that rewrites ours is refused). */
  private async fetch(id: number, newToken?: string): Promise<Result<NetworkView>> {
    const r = await this.getChain({ id });
    if (!r.ok) {
      if (r.error.code === 'not_found' || r.error.code === 'permission_denied') this.forget(id);
      return r;
    }
    return this.adopt(id, r.value.changes, newToken);
  }

  private adopt(id: number, changes: NetworkChange[], newToken?: string): Result<NetworkView> {
    if (changes.length === 0) {
      this.forget(id);
      return err('not_found', `not a member of network ${id}`);
    }
    const old = this.held.get(id);
    const token = newToken ?? old?.token ?? this.tokens.get(id);
    if (newToken !== undefined && this.tokens.get(id) !== newToken) {
      this.tokens.set(id, newToken);
      this.saveTokens();
    }
    const folded = foldNetworkChain(changes, token === undefined ? {} : { token });
    if (!folded.ok) return folded;
    if (old && (changes.length <= old.view.seq || changeHash(changes[old.view.seq]!) !== old.view.head)) {
      return err('permission_denied', `the registry's chain of network ${old.view.name} does not extend the one we verified (history rewritten?)`);
    }
    // New to us: everything after what we held, or (first fetch) just the change that made us a member.
    const fresh = old ? changes.slice(old.view.seq + 1) : changes.slice(-1);
    for (const c of fresh) this.deps.onChange?.(id, folded.value.name, c);
    const me = this.deps.nodeId();
    if (!folded.value.members.has(me)) {
      this.forget(id);
      return ok(folded.value);
    }
    this.replace(id, { id, view: folded.value, changes, ...(token !== undefined ? { token } : {}) });
    return ok(folded.value);
  }

  private async handlePush(m: RegistryMessage): Promise<void> {
    const p = decodePushNetworkChange(m);
    if (!p.ok) return;
    const c = decodeNetworkChange(p.value.change);
    if (!c.ok) return;
    const change = c.value;
    const h = this.held.get(p.value.networkId);
    if (h && change.seq <= h.view.seq) return; // already have it (our own change, or a duplicate)
    if (h && change.seq === h.view.seq + 1) {
      const next = applyNetworkChange(h.view, change, h.token === undefined ? {} : { token: h.token });
      if (next.ok) {
        this.applyVerified(h, change, next.value);
        return;
      }
      this.deps.logger.warn({ networkId: h.id, seq: change.seq, err: next.error.message }, 'pushed network change refused');
      return;
    }
    // A gap, or a network we do not hold yet (we joined elsewhere): fetch and verify the whole chain.
    if (h || change.node_id === this.deps.nodeId()) {
      const r = await this.fetch(p.value.networkId);
      if (!r.ok) this.deps.logger.warn({ networkId: p.value.networkId, err: r.error.message }, 'network chain refused');
    }
  }

  private applyVerified(h: HeldNetwork, change: NetworkChange, view: NetworkView): void {
    this.deps.onChange?.(h.id, view.name || h.view.name, change);
    if (!view.members.has(this.deps.nodeId())) {
      this.forget(h.id);
      return;
    }
    this.replace(h.id, { ...h, view, changes: [...h.changes, change] });
  }

  /** Set a network's new state and report every node that stopped being a co-member through it. */
  private replace(id: number, next: HeldNetwork | null): void {
    const old = this.held.get(id);
    if (next) this.held.set(id, next);
    else this.held.delete(id);
    if (!old) return;
    for (const n of old.view.members.keys()) {
      if (n === this.deps.nodeId() || next?.view.members.has(n)) continue;
      this.deps.onMemberGone(n, old.view.name);
    }
  }

  private forget(id: number): void {
    if (this.held.has(id)) this.replace(id, null);
    if (this.tokens.delete(id)) this.saveTokens();
  }

  private saveTokens(): void {
    if (!this.deps.tokenFile) return;
    const w = writeJsonFile(this.deps.tokenFile, { version: 1, tokens: [...this.tokens] } satisfies TokenFile);
    if (!w.ok) this.deps.logger.warn({ err: w.error.message }, 'network tokens not saved');
  }

  // ---- operations (NodeApi `network`) ----

  async list(): Promise<Result<{ networks: NetworkEntry[] }>> {
    const r = await this.listRemote();
    if (!r.ok) return r;
    const me = this.deps.nodeId();
    return ok({
      networks: r.value.map((n) => {
        const h = this.held.get(n.id);
        const role = (h?.view.members.get(me)?.role ?? (n.id === 0 ? 'member' : '')) as NetworkRole | '';
        return {
          network_id: n.id,
          name: h?.view.name ?? n.name,
          join_rule: n.joinRule,
          members: h?.view.members.size ?? n.members,
          role,
          invited: n.isInvited ?? false,
          address: role !== '' ? registryAddressText(me, n.id) : null,
        };
      }),
    });
  }

  async create(name: string, joinRule: JoinRule, token: string | undefined): Promise<Result<NetworkEntry>> {
    const problem = networkNameProblem(name);
    if (problem) return err('invalid_argument', problem);
    if (joinRule === 'token' && !token) return err('invalid_argument', 'a token network needs --token');
    const me = this.deps.nodeId();
    const genesis = makeChange(
      null,
      { op: 'create', by: me, node_id: me, key: toBase64(this.deps.publicKey()), name, join_rule: joinRule, token_check: joinRule === 'token' ? tokenCheckOf(token!) : '', ts: this.deps.nowSec() },
      this.deps.sign,
    );
    const r = await this.deps.registry.request({ type: 'create_network', node_id: me, name, join_rule: joinRule, token: token ?? '', change: genesis });
    if (!r.ok) return r;
    const id = fieldU32(r.value, 'network_id');
    const adopted = this.adopt(id, [genesis], joinRule === 'token' ? token : undefined);
    if (!adopted.ok) return adopted;
    return ok(this.entry(id));
  }

  async join(name: string, token: string | undefined): Promise<Result<NetworkEntry>> {
    const found = await this.findRemote(name);
    if (!found.ok) return found;
    const id = found.value.id;
    if (this.held.has(id)) return err('already_exists', `already a member of network "${name}"`);
    // Members and invitees read the chain; a newcomer to an open or token network gets only the head to sign
    // against (the registry refuses a join that does not extend it), and verifies the whole chain once in.
    const chain = await this.getChain({ id });
    if (!chain.ok) {
      if (chain.error.code === 'permission_denied' && found.value.joinRule === 'invite') {
        return err('permission_denied', `network "${name}" is invite-only and has no invite for this node`, { hint: 'ask an owner or admin: `pilotctl network invite <network> <your node id>`' });
      }
      return chain;
    }
    if (chain.value.changes.length > 0) {
      const folded = foldNetworkChain(chain.value.changes, token ? { token } : {});
      if (!folded.ok) return folded;
      if (folded.value.joinRule === 'invite' && !folded.value.invites.has(this.deps.nodeId())) {
        return err('permission_denied', `network "${name}" is invite-only and has no invite for this node`);
      }
      return this.sendJoin(id, { head: folded.value.head, seq: folded.value.seq }, token, 0);
    }
    return this.sendJoin(id, { head: chain.value.head, seq: chain.value.seq }, token, 0);
  }

  private async sendJoin(id: number, head: { head: string; seq: number }, token: string | undefined, attempt: number): Promise<Result<NetworkEntry>> {
    const me = this.deps.nodeId();
    const key = toBase64(this.deps.publicKey());
    const change = makeChange(head, { op: 'join', by: me, node_id: me, key, token_mac: token ? tokenMacOf(token, head.head, me, key) : '', ts: this.deps.nowSec() }, this.deps.sign);
    const r = await this.deps.registry.request({ type: 'join_network', node_id: me, network_id: id, token: token ?? '', change });
    if (!r.ok) {
      if (attempt === 0 && /does not extend/.test(r.error.message)) {
        const again = await this.getChain({ id });
        if (again.ok) return this.sendJoin(id, { head: again.value.head, seq: again.value.seq }, token, 1);
      }
      return r;
    }
    const fetched = await this.fetch(id, token);
    if (!fetched.ok) return fetched;
    const h = this.held.get(id);
    if (!h) return err('internal', `joined network ${id} but the chain does not show it`);
    return ok(this.entry(id));
  }

  /** Leave a network (our own signed `leave`). */
  async leave(name: string): Promise<Result<{ network_id: number; name: string; status: 'left' }>> {
    const r = await this.selfChange(name, 'leave', 'leave_network');
    return r.ok ? ok({ network_id: r.value.id, name, status: 'left' }) : r;
  }

  async invites(): Promise<Result<{ invites: { network_id: number; name: string; join_rule: string }[] }>> {
    const r = await this.listRemote();
    if (!r.ok) return r;
    return ok({ invites: r.value.filter((n) => n.isInvited).map((n) => ({ network_id: n.id, name: n.name, join_rule: n.joinRule })) });
  }

  /** Take an invite: verify it in the chain, then sign our join. */
  async accept(name: string): Promise<Result<NetworkEntry>> {
    const found = await this.findRemote(name);
    if (!found.ok) return found;
    const chain = await this.getChain({ id: found.value.id });
    if (!chain.ok) return chain.error.code === 'permission_denied' ? err('not_found', `no invite to network "${name}"`) : chain;
    const v = foldNetworkChain(chain.value.changes);
    if (!v.ok) return v;
    const inv = v.value.invites.get(this.deps.nodeId());
    if (!inv || inv.key !== toBase64(this.deps.publicKey())) return err('not_found', `no invite to network "${name}"`);
    return this.sendJoin(found.value.id, { head: v.value.head, seq: v.value.seq }, undefined, 0);
  }

  async reject(name: string): Promise<Result<{ network_id: number; name: string; status: 'declined' }>> {
    const found = await this.findRemote(name);
    if (!found.ok) return found;
    const chain = await this.getChain({ id: found.value.id });
    if (!chain.ok) return chain.error.code === 'permission_denied' ? err('not_found', `no invite to network "${name}"`) : chain;
    const v = foldNetworkChain(chain.value.changes);
    if (!v.ok) return v;
    if (!v.value.invites.has(this.deps.nodeId())) return err('not_found', `no invite to network "${name}"`);
    const me = this.deps.nodeId();
    const change = makeChange(v.value, { op: 'decline', by: me, node_id: me, key: toBase64(this.deps.publicKey()), ts: this.deps.nowSec() }, this.deps.sign);
    const r = await this.deps.registry.request({ type: 'network_change', node_id: me, network_id: found.value.id, change });
    return r.ok ? ok({ network_id: found.value.id, name, status: 'declined' }) : r;
  }

  async invite(name: string, peerId: number): Promise<Result<{ network_id: number; name: string; node_id: number; status: 'invited' }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const l = await this.deps.registry.lookup(peerId);
    if (!l.ok) return l;
    const r = await this.adminChange(h, 'invite', peerId, { key: l.value.publicKey });
    return r.ok ? ok({ network_id: h.id, name, node_id: peerId, status: 'invited' }) : r;
  }

  async kick(name: string, peerId: number): Promise<Result<{ network_id: number; name: string; node_id: number; status: 'kicked' }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const r = await this.adminChange(h, 'remove', peerId, {});
    return r.ok ? ok({ network_id: h.id, name, node_id: peerId, status: 'kicked' }) : r;
  }

  async setRole(name: string, peerId: number, op: 'promote' | 'demote'): Promise<Result<{ network_id: number; name: string; node_id: number; role: NetworkRole }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const r = await this.adminChange(h, op, peerId, {});
    return r.ok ? ok({ network_id: h.id, name, node_id: peerId, role: op === 'promote' ? 'admin' : 'member' }) : r;
  }

  async rename(name: string, newName: string): Promise<Result<{ network_id: number; name: string; old_name: string }>> {
    const problem = networkNameProblem(newName);
    if (problem) return err('invalid_argument', problem);
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const r = await this.adminChange(h, 'rename', this.deps.nodeId(), { name: newName });
    return r.ok ? ok({ network_id: h.id, name: newName, old_name: name }) : r;
  }

  async remove(name: string): Promise<Result<{ network_id: number; name: string; status: 'deleted' }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const r = await this.adminChange(h, 'delete', this.deps.nodeId(), {});
    if (r.ok) this.forget(h.id);
    return r.ok ? ok({ network_id: h.id, name, status: 'deleted' }) : r;
  }

  async members(name: string): Promise<Result<{ network_id: number; name: string; members: NetworkMemberEntry[] }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    // Hostnames from the registry (not part of the chain); the member set and roles from the verified chain.
    const hostnames = new Map<number, string>();
    const me = this.deps.nodeId();
    const nodes = await this.deps.registry.request({ type: 'list_nodes', node_id: me, network_id: h.id, ...this.deps.registry.freshSignatureFields(networkReadText('list_nodes', me, h.id)) });
    if (nodes.ok && Array.isArray(nodes.value.nodes)) {
      for (const n of nodes.value.nodes as RegistryMessage[]) {
        if (typeof n === 'object' && n !== null && typeof n.hostname === 'string') hostnames.set(fieldU32(n, 'node_id'), n.hostname);
      }
    }
    const members = [...h.view.members.values()]
      .sort((a, b) => a.nodeId - b.nodeId)
      .map((m) => ({ node_id: m.nodeId, address: registryAddressText(m.nodeId, h.id), hostname: hostnames.get(m.nodeId) ?? null, role: m.role, public_key: m.key, tags: [...(m.tags ?? [])], network_hostname: m.hostname ?? null }));
    return ok({ network_id: h.id, name: h.view.name, members });
  }

  /** `network tag NAME PEER --tags a,b`: an owner or admin sets a member's tags in the network ([] clears). */
  async setTags(name: string, peerId: number, tags: string[]): Promise<Result<{ network_id: number; name: string; node_id: number; tags: string[] }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const r = await this.adminChange(h, 'tags', peerId, { tags });
    return r.ok ? ok({ network_id: h.id, name: h.view.name, node_id: peerId, tags }) : r;
  }

  /**
   * Sign our hostname into every network we are in whose chain holds another one for us (after a join, an
   * accept, a create, or `set-hostname`), so hostname selectors of the networks' policies match us. Failures
   * are logged per network (the registry checks it is our registered hostname).
   */
  async publishHostname(hostname: string): Promise<void> {
    const me = this.deps.nodeId();
    for (const h of [...this.held.values()]) {
      const mine = h.view.members.get(me);
      if (!mine || (mine.hostname ?? '') === hostname) continue;
      const r = await this.adminChange(h, 'hostname', me, { key: toBase64(this.deps.publicKey()), hostname });
      if (!r.ok) this.deps.logger.warn({ network: h.view.name, hostname, err: r.error.message }, 'could not sign our hostname into the network');
    }
  }

  /**
   * After rotate-key: in every network we are in, a `rekey` change signed with the OLD key (the one each chain
   * holds for us) names the new one, so co-members admit the new key at once (no re-invite). Per-network failures
   * are logged and returned.
   */
  async rekey(signWithOld: (msg: Uint8Array) => Uint8Array, newKey: string): Promise<{ network: string; error: string }[]> {
    const me = this.deps.nodeId();
    const failed: { network: string; error: string }[] = [];
    for (const h of [...this.held.values()]) {
      const mine = h.view.members.get(me);
      if (!mine || mine.key === newKey) continue;
      const change = makeChange(h.view, { op: 'rekey', by: me, node_id: me, key: newKey, ts: this.deps.nowSec() }, signWithOld);
      const r = await this.submit(h, change);
      if (!r.ok) {
        failed.push({ network: h.view.name, error: r.error.message });
        this.deps.logger.warn({ network: h.view.name, err: r.error.message }, 'could not sign the rotated key into the network');
      }
    }
    return failed;
  }

  role(name: string): Result<{ network_id: number; name: string; role: NetworkRole }> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    return ok({ network_id: h.id, name: h.view.name, role: h.view.members.get(this.deps.nodeId())!.role });
  }

  // ---- helpers ----

  private entry(id: number): NetworkEntry {
    const h = this.held.get(id)!;
    const me = this.deps.nodeId();
    return {
      network_id: id,
      name: h.view.name,
      join_rule: h.view.joinRule,
      members: h.view.members.size,
      role: h.view.members.get(me)?.role ?? '',
      invited: false,
      address: registryAddressText(me, id),
    };
  }

  private byName(name: string): HeldNetwork | null {
    for (const h of this.held.values()) if (h.view.name === name) return h;
    // A numeric network id names it too.
    if (/^\d+$/.test(name)) return this.held.get(Number(name)) ?? null;
    return null;
  }

  private notMember(name: string): Result<never> {
    return err('not_found', `not a member of network "${name}"`, { hint: '`pilotctl network list` shows your networks' });
  }

  /** A change an owner or admin signs (invite, remove, promote, demote, rename, delete); our view decides first. */
  private async adminChange(h: HeldNetwork, op: ChangeOp, subject: number, fields: { key?: string; name?: string; policy?: string; tags?: string[]; hostname?: string }): Promise<Result<void>> {
    const me = this.deps.nodeId();
    return this.submit(h, makeChange(h.view, { op, by: me, node_id: subject, ...fields, ts: this.deps.nowSec() }, this.deps.sign));
  }

  /** Fold a signed change locally, send it to the registry, and apply it to our view when the registry took it. */
  private async submit(h: HeldNetwork, change: NetworkChange): Promise<Result<void>> {
    const me = this.deps.nodeId();
    // Fold it locally first: a member's kick is permission_denied here, with the same words as the registry's.
    const local = applyNetworkChange(h.view, change);
    if (!local.ok) return errFrom(local.error);
    const r = await this.deps.registry.request({ type: 'network_change', node_id: me, network_id: h.id, change });
    if (!r.ok) {
      if (/does not extend/.test(r.error.message)) await this.fetch(h.id);
      return r;
    }
    const cur = this.held.get(h.id);
    if (cur && cur.view.seq === change.seq - 1) {
      if (local.value.isDeleted) {
        this.deps.onChange?.(h.id, h.view.name, change);
        this.forget(h.id);
      }
      else this.applyVerified(cur, change, local.value);
    }
    return ok();
  }

  private async selfChange(name: string, op: 'leave', type: 'leave_network'): Promise<Result<{ id: number }>> {
    const h = this.byName(name);
    if (!h) return this.notMember(name);
    const me = this.deps.nodeId();
    const change = makeChange(h.view, { op, by: me, node_id: me, key: toBase64(this.deps.publicKey()), ts: this.deps.nowSec() }, this.deps.sign);
    const local = applyNetworkChange(h.view, change);
    if (!local.ok) return errFrom(local.error);
    const r = await this.deps.registry.request({ type, node_id: me, network_id: h.id, change });
    if (!r.ok) return r;
    this.forget(h.id);
    return ok({ id: h.id });
  }

  private async listRemote(): Promise<Result<NetworkSummary[]>> {
    const me = this.deps.nodeId();
    if (me === 0) return err('not_running', 'not registered with the registry yet', { hint: 'wait for `pilotctl info` to show registry_connected' });
    const r = await this.deps.registry.request({ type: 'list_networks', node_id: me, ...this.deps.registry.freshSignatureFields(networkReadText('list_networks', me, 0)) });
    if (!r.ok) return r;
    const d = decodeListNetworksOk(r.value);
    return d.ok ? ok(d.value.networks) : d;
  }

  private async findRemote(name: string): Promise<Result<NetworkSummary>> {
    const l = await this.listRemote();
    if (!l.ok) return l;
    const n = l.value.find((x) => x.id !== 0 && (x.name === name || String(x.id) === name));
    return n ? ok(n) : err('not_found', `network "${name}" not found`, { hint: '`pilotctl network list` shows the networks' });
  }

  private async getChain(q: { id: number }): Promise<Result<{ changes: NetworkChange[]; head: string; seq: number }>> {
    const me = this.deps.nodeId();
    const r = await this.deps.registry.request({ type: 'get_network', node_id: me, network_id: q.id, ...this.deps.registry.freshSignatureFields(networkReadText('get_network', me, q.id)) });
    if (!r.ok) return r;
    const d = decodeGetNetworkOk(r.value);
    if (!d.ok) return d;
    const changes: NetworkChange[] = [];
    for (const raw of d.value.changes) {
      const c = decodeNetworkChange(raw);
      if (!c.ok) return errFrom(pilotError('invalid_argument', `registry sent a malformed chain: ${c.error.message}`));
      changes.push(c.value);
    }
    return ok({ changes, head: d.value.head, seq: d.value.seq });
  }
}

export function parseJoinRule(s: string): Result<JoinRule> {
  return (JOIN_RULES as readonly string[]).includes(s) ? ok(s as JoinRule) : err('invalid_argument', `--join-rule must be one of ${JOIN_RULES.join(', ')}`);
}

/** A member as a policy subject: node id, role, and the hostname and tags the chain holds for it. */
function subjectOf(m: { nodeId: number; role: string; hostname?: string; tags?: readonly string[] }): { node_id: number; roles: string[]; hostname: string | null; tags: readonly string[] } {
  return { node_id: m.nodeId, roles: [m.role], hostname: m.hostname ?? null, tags: m.tags ?? [] };
}
