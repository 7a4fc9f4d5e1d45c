// The trust state machine, as a table: for every (state, event) the next state and the effects, as data.
// Pure: trust/machine.ts reads the state off the store, looks the row up here and executes its effects in
// order (store writes, registry messages, dropping the peer's tunnels); test/unit/node/trust-transitions.test.ts
// checks every cell.
//
// States (per peer node id, derived from the store, which is the only state kept):
//   none      nothing between us
//   outgoing  we asked them (an outgoing request), no answer yet
//   incoming  they asked us (a pending request) and wait for the operator
//   crossed   both requests stand: only after an approval that failed half-way (a lookup or the registry
//             failed); the next chance approves
//   trusted   their key is pinned (trust/store.ts)
//
// Events: the operator's `local_handshake`, `approve`, `reject`, `untrust`; the registry's `request_received`
// (`request_received_auto` when the node auto-approves: --trust-auto-approve), `response_accept`,
// `response_reject`, and `revoked` (the peer untrusted us).

export type TrustState = 'none' | 'outgoing' | 'incoming' | 'crossed' | 'trusted';

export type TrustEvent =
  | 'local_handshake'
  | 'request_received'
  | 'request_received_auto'
  | 'response_accept'
  | 'response_reject'
  | 'approve'
  | 'reject'
  | 'untrust'
  | 'revoked';

/**
 * What to do, in order. A failing `fetch_key`, `respond_accept`, `respond_reject`, `request_handshake`,
 * `add_trusted`, `remove_pending` or `remove_trusted` stops the row (the store then still shows where it got);
 * the others are logged and the row goes on. `request_handshake` answered `already_exists` counts as sent; any
 * other failure of it removes the outgoing request again.
 */
export type TrustEffect =
  /** Remember the hostname a request carried (peers/resolver.ts hostnames). */
  | 'learn_hostname'
  /** Store (or refresh) their pending request, keeping what an earlier delivery told us. */
  | 'record_pending'
  /** Their Ed25519 key, from the registry (their request's key when it cannot answer). */
  | 'fetch_key'
  /** Tell them (via the registry) we accept: an approval, or a repeat of one. */
  | 'respond_accept'
  | 'respond_reject'
  /** Pin their key (removes their pending request). */
  | 'add_trusted'
  /** Mark the trust mutual (their accept of a request of ours, while we already trust them). */
  | 'set_mutual'
  | 'add_outgoing'
  | 'request_handshake'
  | 'remove_outgoing'
  | 'remove_pending'
  /** Unpin (also drops an outgoing request). */
  | 'remove_trusted'
  /** Close their tunnels and connections. */
  | 'drop_peer'
  /** Tell the registry we trust them, so they may resolve our endpoint. */
  | 'report_trust'
  /** Tell the registry we no longer do (a failure is only logged). */
  | 'revoke_trust';

export type TrustStatus = 'pending' | 'approved' | 'already_trusted' | 'rejected' | 'untrusted';

export interface TrustRow {
  next: TrustState;
  effects: readonly TrustEffect[];
  /** What an operator's event answers on success. */
  status?: TrustStatus;
  /** The event is refused in this state: nothing happens, the caller gets this error (not_found). */
  refuse?: 'no_pending' | 'not_trusted';
}

// The rows that recur.
const APPROVE: readonly TrustEffect[] = ['fetch_key', 'respond_accept', 'add_trusted', 'remove_outgoing', 'report_trust'];
/** Their accept of our request: pin them and tell the registry (no answer to send: they asked nothing). */
const ACCEPTED: readonly TrustEffect[] = ['fetch_key', 'add_trusted', 'remove_outgoing', 'report_trust'];
const ASK: readonly TrustEffect[] = ['add_outgoing', 'request_handshake'];
const UNPIN: readonly TrustEffect[] = ['remove_trusted', 'drop_peer'];
const stay = (s: TrustState): TrustRow => ({ next: s, effects: [] });
const refuse = (s: TrustState, why: 'no_pending' | 'not_trusted'): TrustRow => ({ next: s, effects: [], refuse: why });

export const TRUST_TABLE: Readonly<Record<TrustState, Readonly<Record<TrustEvent, TrustRow>>>> = {
  none: {
    local_handshake: { next: 'outgoing', effects: ASK, status: 'pending' },
    request_received: { next: 'incoming', effects: ['learn_hostname', 'record_pending'] },
    request_received_auto: { next: 'trusted', effects: ['learn_hostname', 'record_pending', ...APPROVE] },
    response_accept: stay('none'), // an answer to nothing we asked
    response_reject: stay('none'),
    approve: refuse('none', 'no_pending'),
    reject: refuse('none', 'no_pending'),
    untrust: refuse('none', 'not_trusted'),
    revoked: stay('none'),
  },
  outgoing: {
    // Asking again re-sends (a new justification); the registry may say it still waits: still pending.
    local_handshake: { next: 'outgoing', effects: ASK, status: 'pending' },
    // A handshake in both directions approves at once.
    request_received: { next: 'trusted', effects: ['learn_hostname', 'record_pending', ...APPROVE] },
    request_received_auto: { next: 'trusted', effects: ['learn_hostname', 'record_pending', ...APPROVE] },
    response_accept: { next: 'trusted', effects: ACCEPTED },
    response_reject: { next: 'none', effects: ['remove_outgoing'] },
    approve: refuse('outgoing', 'no_pending'),
    reject: refuse('outgoing', 'no_pending'),
    untrust: refuse('outgoing', 'not_trusted'),
    revoked: stay('outgoing'),
  },
  incoming: {
    // Our handshake to a node that asked us is our approval.
    local_handshake: { next: 'trusted', effects: APPROVE, status: 'approved' },
    // A repeat (or the registry's re-delivery after a restart) refreshes the request.
    request_received: { next: 'incoming', effects: ['learn_hostname', 'record_pending'] },
    request_received_auto: { next: 'trusted', effects: ['learn_hostname', 'record_pending', ...APPROVE] },
    response_accept: stay('incoming'),
    response_reject: stay('incoming'),
    approve: { next: 'trusted', effects: APPROVE, status: 'approved' },
    reject: { next: 'none', effects: ['respond_reject', 'remove_pending'], status: 'rejected' },
    untrust: refuse('incoming', 'not_trusted'),
    revoked: stay('incoming'),
  },
  crossed: {
    local_handshake: { next: 'trusted', effects: APPROVE, status: 'approved' },
    request_received: { next: 'trusted', effects: ['learn_hostname', 'record_pending', ...APPROVE] },
    request_received_auto: { next: 'trusted', effects: ['learn_hostname', 'record_pending', ...APPROVE] },
    response_accept: { next: 'trusted', effects: ACCEPTED },
    response_reject: { next: 'incoming', effects: ['remove_outgoing'] },
    approve: { next: 'trusted', effects: APPROVE, status: 'approved' },
    reject: { next: 'outgoing', effects: ['respond_reject', 'remove_pending'], status: 'rejected' },
    untrust: refuse('crossed', 'not_trusted'),
    revoked: stay('crossed'),
  },
  trusted: {
    local_handshake: { next: 'trusted', effects: [], status: 'already_trusted' },
    // They lost their state or retried: answer again so both sides agree.
    request_received: { next: 'trusted', effects: ['learn_hostname', 'respond_accept'] },
    request_received_auto: { next: 'trusted', effects: ['learn_hostname', 'respond_accept'] },
    response_accept: { next: 'trusted', effects: ['set_mutual', 'remove_outgoing'] },
    response_reject: { next: 'trusted', effects: ['remove_outgoing'] },
    approve: refuse('trusted', 'no_pending'),
    reject: refuse('trusted', 'no_pending'),
    untrust: { next: 'none', effects: [...UNPIN, 'revoke_trust'], status: 'untrusted' },
    revoked: { next: 'none', effects: UNPIN },
  },
};

/** The row for `event` in `state`. */
export function transition(state: TrustState, event: TrustEvent): TrustRow {
  return TRUST_TABLE[state][event];
}

/** The state the store shows for one peer. */
export function stateOf(s: { isTrusted: boolean; hasPending: boolean; hasOutgoing: boolean }): TrustState {
  if (s.isTrusted) return 'trusted';
  if (s.hasPending) return s.hasOutgoing ? 'crossed' : 'incoming';
  return s.hasOutgoing ? 'outgoing' : 'none';
}

/** Which event an incoming request is. */
export function requestEvent(isAutoApprove: boolean): TrustEvent {
  return isAutoApprove ? 'request_received_auto' : 'request_received';
}
