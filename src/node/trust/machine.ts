// Runs the trust state machine: reads a peer's state off the store, looks up the row of trust/transitions.ts
// and executes its effects in order. Nothing here decides what happens next; the table does.
import type { Logger } from 'pino';
import { err, ok, type Result } from '../../core/result.js';
import { pilotError, type PilotError } from '../../core/errors.js';
import type { WallClock } from '../../core/clock.js';
import type { RegistryClient } from '../registry-client.js';
import type { TrustStore } from './store.js';
import type { NodeEvent } from '../events.js';
import { requestEvent, stateOf, transition, type TrustEffect, type TrustEvent, type TrustState, type TrustStatus } from './transitions.js';

export interface TrustMachineDeps {
  store: TrustStore;
  registry: Pick<RegistryClient, 'requestHandshake' | 'respondHandshake' | 'reportTrust' | 'revokeTrust'>;
  /** peers/resolver.ts */
  peers: {
    peerKey(nodeId: number): Promise<Result<string>>;
    hostnameOf(nodeId: number): string | null;
    learnHostname(nodeId: number, hostname: string): void;
  };
  /** Close the peer's tunnels and connections. */
  dropPeer(nodeId: number, reason: PilotError): void;
  wall: WallClock;
  logger: Logger;
  isAutoApprove: boolean;
  /** The node's event stream (events.ts): trust.* events after a row completed. */
  emit?: (e: NodeEvent) => void;
}

/** What an event carries: a request's justification, hostname and key (absent on the registry's re-delivery). */
export interface TrustInput {
  justification?: string;
  hostname?: string | null;
  publicKey?: string | null;
}

/** Effects whose failure stops the row. */
const STOPS: ReadonlySet<TrustEffect> = new Set<TrustEffect>([
  'fetch_key', 'respond_accept', 'respond_reject', 'add_outgoing', 'request_handshake', 'add_trusted', 'remove_pending', 'remove_trusted',
]);

export class TrustMachine {
  /** Events for one peer run one after another, so each row starts from the state the previous one left. */
  private readonly queues = new Map<number, Promise<unknown>>();

  constructor(private readonly deps: TrustMachineDeps) {}

  stateOf(nodeId: number): TrustState {
    const s = this.deps.store;
    return stateOf({ isTrusted: s.isTrusted(nodeId), hasPending: s.getPending(nodeId) !== undefined, hasOutgoing: s.getOutgoing(nodeId) !== undefined });
  }

  /** A trust request from the registry. */
  requestReceived(from: number, input: TrustInput): Promise<Result<TrustStatus | null>> {
    return this.apply(from, requestEvent(this.deps.isAutoApprove), input);
  }

  /**
   * Apply `event` to the peer: the row's effects in order. Errors: the row's refusal (not_found), or the
   * failing effect's error (the store then shows how far it got).
   */
  apply(nodeId: number, event: TrustEvent, input: TrustInput = {}): Promise<Result<TrustStatus | null>> {
    const prior = this.queues.get(nodeId) ?? Promise.resolve();
    const run = prior.catch(() => {}).then(() => this.applyNow(nodeId, event, input));
    this.queues.set(nodeId, run);
    const forget = (): void => {
      if (this.queues.get(nodeId) === run) this.queues.delete(nodeId);
    };
    run.then(forget, forget);
    return run;
  }

  private async applyNow(nodeId: number, event: TrustEvent, input: TrustInput): Promise<Result<TrustStatus | null>> {
    const from = this.stateOf(nodeId);
    const row = transition(from, event);
    if (row.refuse === 'no_pending') return err('not_found', `no pending trust request from node ${nodeId}`, { hint: 'list them with `pilotctl pending`' });
    if (row.refuse === 'not_trusted') return err('not_found', `node ${nodeId} is not trusted`, { hint: 'list trusted peers with `pilotctl trust`' });
    const log = this.deps.logger;
    if (event === 'response_reject') log.info({ from: nodeId }, 'trust request rejected');
    const ctx: { key: string | null } = { key: null };
    for (const effect of row.effects) {
      const r = await this.run(effect, nodeId, event, input, ctx);
      if (r.ok) continue;
      if (STOPS.has(effect)) {
        if (event === 'response_accept' && effect === 'fetch_key') log.warn({ from: nodeId, error: r.error.message }, 'approved by a node we cannot look up');
        return r;
      }
      log.warn({ peer: nodeId, effect, error: r.error.message }, 'trust effect failed');
    }
    if (event === 'request_received' || event === 'request_received_auto') {
      if (from !== 'trusted') log.info({ from: nodeId, hostname: input.hostname ?? null, justification: input.justification ?? '' }, 'trust request received');
    } else if (event === 'response_accept' && row.effects.includes('add_trusted')) log.info({ peer: nodeId }, 'mutual trust established');
    else if (event === 'revoked' && from === 'trusted') log.info({ peer: nodeId }, 'peer revoked trust');
    const now = this.stateOf(nodeId);
    if (now !== row.next) log.warn({ peer: nodeId, event, from, want: row.next, got: now }, 'trust store disagrees with the transition table');
    for (const e of trustEvents(nodeId, event, from, now, input)) this.deps.emit?.(e);
    return ok(row.status ?? null);
  }

  private async run(effect: TrustEffect, id: number, event: TrustEvent, input: TrustInput, ctx: { key: string | null }): Promise<Result<void>> {
    const { store, registry, peers, wall } = this.deps;
    const nowIso = (): string => new Date(wall.nowMs()).toISOString();
    switch (effect) {
      case 'learn_hostname':
        if (input.hostname) peers.learnHostname(id, input.hostname);
        return ok();
      case 'record_pending': {
        // The registry re-delivers queued requests by poll after a restart, without hostname or key: keep what
        // the first delivery told us, and its time.
        const prior = store.getPending(id);
        const r = store.addPending({
          node_id: id,
          justification: input.justification || prior?.justification || '',
          hostname: input.hostname ?? prior?.hostname ?? null,
          public_key: input.publicKey ?? prior?.public_key ?? null,
          received_at: prior?.received_at ?? nowIso(),
        });
        if (!r.ok) return r;
        if (r.value.dropped !== null) this.deps.logger.warn({ dropped: r.value.dropped, from: id }, 'pending trust requests are full: dropped the oldest');
        return ok();
      }
      case 'fetch_key': {
        const k = await peers.peerKey(id);
        if (!k.ok) return k;
        ctx.key = k.value;
        return ok();
      }
      case 'respond_accept':
        return registry.respondHandshake(id, true);
      case 'respond_reject':
        return registry.respondHandshake(id, false);
      case 'add_trusted':
        return store.addTrusted({
          node_id: id,
          public_key: ctx.key!,
          hostname: store.getPending(id)?.hostname ?? peers.hostnameOf(id),
          approved_at: nowIso(),
          mutual: true,
        });
      case 'set_mutual':
        return store.setMutual(id, true);
      case 'add_outgoing':
        return store.addOutgoing({ node_id: id, justification: input.justification ?? '', sent_at: nowIso() });
      case 'request_handshake': {
        const r = await registry.requestHandshake(id, input.justification ?? '');
        // Asking again while our earlier request still waits is not an error: it is still pending.
        if (r.ok || r.error.code === 'already_exists') return ok();
        store.removeOutgoing(id);
        return r;
      }
      case 'remove_outgoing':
        return store.removeOutgoing(id);
      case 'remove_pending': {
        const r = store.removePending(id);
        return r.ok ? ok() : r;
      }
      case 'remove_trusted': {
        const r = store.removeTrusted(id);
        return r.ok ? ok() : r;
      }
      case 'drop_peer':
        this.deps.dropPeer(id, pilotError('connection_failed', event === 'revoked' ? `node ${id} revoked trust` : `trust in node ${id} was revoked`));
        return ok();
      case 'report_trust':
        return registry.reportTrust(id);
      case 'revoke_trust': {
        const r = await registry.revokeTrust(id);
        if (!r.ok) this.deps.logger.warn({ peer: id, error: r.error.message }, 'registry did not record the revocation');
        return ok();
      }
    }
  }
}

/** The node events one completed row stands for (by the state it really left the store in). Pure. */
export function trustEvents(nodeId: number, event: TrustEvent, from: TrustState, to: TrustState, input: TrustInput): NodeEvent[] {
  const out: NodeEvent[] = [];
  const isRequest = event === 'request_received' || event === 'request_received_auto';
  // Only a new request: the registry re-delivers a pending one by poll (after a restart) — no second event.
  if (isRequest && (from === 'none' || from === 'outgoing')) {
    out.push({ type: 'trust.request_received', data: { node_id: nodeId, hostname: input.hostname ?? null, justification: input.justification ?? '' } });
  }
  if (from !== 'trusted' && to === 'trusted') {
    const by = event === 'approve' || event === 'local_handshake' ? 'local' : event === 'request_received_auto' ? 'auto' : 'peer';
    out.push({ type: 'trust.approved', data: { node_id: nodeId, by } });
  } else if (event === 'reject' && (from === 'incoming' || from === 'crossed')) {
    out.push({ type: 'trust.rejected', data: { node_id: nodeId, by: 'local' } });
  } else if (event === 'response_reject' && (from === 'outgoing' || from === 'crossed')) {
    out.push({ type: 'trust.rejected', data: { node_id: nodeId, by: 'peer' } });
  } else if (from === 'trusted' && to === 'none' && (event === 'untrust' || event === 'revoked')) {
    out.push({ type: 'trust.revoked', data: { node_id: nodeId, by: event === 'untrust' ? 'local' : 'peer' } });
  }
  return out;
}
