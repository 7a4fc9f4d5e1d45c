// The shared error table. Codes are the original pilotctl's lowercase strings so agent scripts keep working.
export const ERRORS = {
  invalid_argument: { hint: 'see `pilotctl help <command>`' },
  not_found: { hint: 'check the hostname with `pilotctl find`; private nodes need a handshake first' },
  already_exists: { hint: 'choose another hostname' },
  not_running: { hint: 'start the daemon with: pilotctl daemon start' },
  connection_failed: {
    hint: 'peer offline or not trusted yet: `pilotctl handshake <peer>`; `pilotctl peers` shows the path',
  },
  timeout: { hint: 'raise --timeout, or check `pilotctl ping <peer>`' },
  internal: { hint: 'a bug: rerun with --log-level debug and keep the log' },
  // The home is ours (issue 10): a home another user owns or may write could hold planted trust, keys or sockets.
  unsafe_home: { hint: 'the home must be a directory you own that group/others cannot write: chown it and chmod 700 it, or pass another --home' },
  // pilotctl/SDK found something on the socket that is not this home's daemon (socket owner, or no proof of the node key).
  daemon_unverified: {
    hint: 'the socket is not served by the daemon of this home: check --socket/--home, stop whatever listens there, then run pilotctl daemon start',
  },
  quota_exceeded: {
    hint: "the receiver's inbox or received files are full: its operator frees space (pilotctl inbox --clear, received --clear) or raises the daemon's --inbox-max-* / --received-max-* limits",
  },
  identity_changed: {
    hint: 'the registry now maps this peer to a different node or key than the one you trust; if it really rotated keys, `pilotctl untrust <old node id>` and handshake again',
  },
  // The compat transport (issue 13): the rendezvous's TLS certificate is not the pinned / first-seen one.
  fingerprint_mismatch: {
    hint: 'the rendezvous presented another certificate than the one pinned or first seen: if it changed on purpose, pass --registry-fingerprint with the new one (pilot-rendezvous --print-fingerprint shows it) or delete its line in <home>/known_rendezvous.json',
  },
  // An HTTP CONNECT proxy refused or failed the tunnel (status, auth).
  proxy_failed: {
    hint: 'check --proxy / HTTPS_PROXY (http://user:pass@host:port), that the proxy allows CONNECT to the rendezvous port, and NO_PROXY',
  },
  // Networks, policy and audit (issue 15).
  policy_denied: { hint: "the network's policy does not allow this connection: `pilotctl policy test` shows which rule decides; ask the network owner to change it" },
  permission_denied: { hint: 'only the network owner (or an admin) may do this: ask them, or use a network you own' },
  verify_failed: {
    hint: 'the audit export was changed after the node signed it (edited, records deleted or reordered) or is not signed by the expected key: ask the node for a fresh `pilotctl audit export` and compare',
  },
  // Issue 14: a key that rotate-key replaced (src/crypto/key-rotation.ts); the registry and peers refuse it.
  key_retired: {
    hint: 'this identity key was rotated out of its node: use the identity file rotate-key wrote, or take the node back with `pilotctl rotate-key --recovery-file PATH --node-id N`',
  },
  // A received file's SHA-256 differs from the one its sender offered (issue 14, resumable send-file): not kept.
  hash_mismatch: {
    hint: 'the file changed while it was sent, or the data was damaged on the way: send it again (the receiver starts over)',
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface PilotError {
  code: ErrorCode;
  message: string;
  hint?: string;
  detail?: Record<string, unknown>;
  cause?: unknown;
}

export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, s);
}

/** Build a PilotError; the hint defaults to the table's hint for the code. */
export function pilotError(
  code: ErrorCode,
  message: string,
  extra: { hint?: string; detail?: Record<string, unknown>; cause?: unknown } = {},
): PilotError {
  const e: PilotError = { code, message, hint: extra.hint ?? ERRORS[code].hint };
  if (extra.detail !== undefined) e.detail = extra.detail;
  if (extra.cause !== undefined) e.cause = extra.cause;
  return e;
}

/** An Error carrying a PilotError, for the few boundaries (Node streams, promises) that must throw. */
export class PilotException extends Error {
  readonly error: PilotError;
  constructor(error: PilotError) {
    super(error.message);
    this.name = 'PilotException';
    this.error = error;
  }
  get code(): ErrorCode {
    return this.error.code;
  }
}

/**
 * A PilotException for a network event (a peer's reset, a stream the daemon closed) rather than a bug: no stack
 * trace. Node's stream destroy(err) formats err.stack at once, and a stack of event-loop frames says nothing about
 * a peer's RST; it was a tenth of a daemon's CPU per short-lived stream (`npm run bench -- --profile=setup`).
 */
export function eventException(error: PilotError): PilotException {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new PilotException(error);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
