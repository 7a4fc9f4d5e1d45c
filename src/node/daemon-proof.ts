// How pilotctl and the SDK know that the process answering the control socket is this home's daemon, before
// they send it anything: the daemon publishes its node public key in the home (<home>/identity.pub, written
// through core/safe-file), and on every connection signs the client's fresh random nonce with its Ed25519
// identity. The signed bytes are domain-separated (IPC_AUTH_DOMAIN) so the proof can never be replayed as, or
// obtained through, a registry or tunnel signature; they also carry the daemon's pid, which `daemon stop` uses
// to be sure whom it signals. A squatter on the socket path (another user's socket, or any process without the
// node key) cannot produce the proof, and the client refuses it with `daemon_unverified`.
//
// Resumption (a client's later connections): a client that asks (`want_ticket`) gets, with a full proof, a ticket
// {id, key} where key = HMAC-SHA256(daemon secret, id); the secret is random per daemon process and never leaves
// it. On its next connections the client sends {nonce, ticket: id} and the daemon answers {pid, mac} with
// mac = HMAC-SHA256(key, IPC_RESUME_DOMAIN + nonce + ":" + pid): ~3 µs on each side where the signature costs the
// daemon ~25 µs and the client ~50 µs plus reading the key file, and every dial and accept of an SDK opens a
// connection. Only the process behind the first, signature-checked connection knows the key. A daemon that
// does not know the ticket (it restarted: the id names another instance) answers with a full proof and a
// fresh ticket, which the client checks against <home>/identity.pub as on a first connection.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { err, ok, type Result } from '../core/result.js';
import { readSmallFileNoFollow, writeFileSafe } from '../core/safe-file.js';
import { fromBase64, sign, toBase64, verify, ED25519_PUBLIC_KEY_BYTES, type Identity } from '../crypto/identity.js';
import { checkHome, homePaths } from './home.js';

export type { Identity };

export const IPC_AUTH_DOMAIN = 'pilot-ipc-auth:v1:';
export const IPC_AUTH_NONCE_BYTES = 32;

/** The daemon's answer to the `auth` IPC method. */
export interface DaemonProof {
  public_key: string;
  pid: number;
  signature: string;
}

function proofMessage(nonce: Uint8Array, pid: number): Uint8Array {
  return Buffer.from(`${IPC_AUTH_DOMAIN}${toBase64(nonce)}:${pid}`, 'utf8');
}

export const IPC_RESUME_DOMAIN = 'pilot-ipc-resume:v1:';

/** What a client keeps of a full proof for its next connections to the same daemon. */
export interface ResumeTicket {
  id: string;
  key: Uint8Array;
}

function hmac(key: Uint8Array, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/**
 * The daemon's side of `auth`: the Ed25519 proof, tickets, and the cheap proof for a ticket it issued.
 * One per daemon process (the secret and instance id are random at start).
 */
export class DaemonProver {
  private readonly secret = randomBytes(32);
  /** Prefix of every ticket id this process issues: a ticket from another instance gets a full proof. */
  private readonly instance = randomBytes(8).toString('hex');

  constructor(
    private readonly identity: Identity,
    private readonly pid: number,
  ) {}

  /** Answer `auth` params: {nonce, want_ticket?, ticket?}. `invalid_argument` for a bad nonce. */
  answer(params: unknown): Result<DaemonProof | ResumedProof> {
    const p = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
    const nonceB64 = p.nonce;
    const ticket = p.ticket;
    if (typeof ticket === 'string' && ticket.length <= 64 && ticket.startsWith(`${this.instance}.`) && typeof nonceB64 === 'string') {
      const nonce = fromBase64(nonceB64);
      if (nonce === null || nonce.length !== IPC_AUTH_NONCE_BYTES) return badNonce();
      const key = hmac(this.secret, ticket);
      return ok({ pid: this.pid, mac: hmac(key, `${IPC_RESUME_DOMAIN}${nonceB64}:${this.pid}`).toString('base64') });
    }
    const full = proveDaemon(this.identity, nonceB64, this.pid);
    if (!full.ok || (p.want_ticket !== true && typeof ticket !== 'string')) return full;
    const id = `${this.instance}.${randomBytes(16).toString('hex')}`;
    return ok({ ...full.value, ticket: { id, key: hmac(this.secret, id).toString('base64') } });
  }
}

/** The daemon's answer to `auth` with a ticket it issued. */
export interface ResumedProof {
  pid: number;
  mac: string;
}

function isPid(pid: unknown): pid is number {
  return typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 0;
}

function noValidProof(socketPath: string): Result<never> {
  return err('daemon_unverified', `the process on ${socketPath} gave no valid proof of the node key`, { detail: { socket: socketPath } });
}

function badNonce(): Result<never> {
  return err('invalid_argument', `auth nonce must be base64 of ${IPC_AUTH_NONCE_BYTES} bytes`);
}

/**
 * Client side, resumed connection: does `proof` carry the mac of `ticket` over our nonce? ok({pid}) when it does,
 * ok(null) when the daemon answered with a full proof instead (it does not know the ticket: check that one with
 * checkDaemonProof), `daemon_unverified` for a wrong mac. Total on any input.
 */
export function checkResumedProof(ticket: ResumeTicket, nonce: Uint8Array, proof: unknown, socketPath: string): Result<{ pid: number } | null> {
  const p = (typeof proof === 'object' && proof !== null ? proof : {}) as Record<string, unknown>;
  if (typeof p.mac !== 'string') return ok(null);
  const pid = p.pid;
  const mac = fromBase64(p.mac);
  if (mac === null || !isPid(pid)) return noValidProof(socketPath);
  const expected = hmac(ticket.key, `${IPC_RESUME_DOMAIN}${toBase64(nonce)}:${pid}`);
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) {
    return err('daemon_unverified', `the process on ${socketPath} is not the daemon this client verified: its resumption proof is wrong`, {
      detail: { socket: socketPath },
    });
  }
  return ok({ pid });
}

/** The ticket in a full proof's answer (asked for with want_ticket), or null. Total on any input. */
export function ticketOf(proof: unknown): ResumeTicket | null {
  const t = (typeof proof === 'object' && proof !== null ? (proof as Record<string, unknown>).ticket : null) as Record<string, unknown> | null;
  if (typeof t !== 'object' || t === null || typeof t.id !== 'string' || t.id.length > 64 || typeof t.key !== 'string') return null;
  const key = fromBase64(t.key);
  return key !== null && key.length === 32 ? { id: t.id, key } : null;
}

/** A fresh client nonce (CSPRNG). */
export function newAuthNonce(): Uint8Array {
  return new Uint8Array(randomBytes(IPC_AUTH_NONCE_BYTES));
}

/** Daemon side: sign the client's nonce. `invalid_argument` for a nonce that is not base64 of 32 bytes. */
export function proveDaemon(identity: Identity, nonceB64: unknown, pid: number): Result<DaemonProof> {
  const nonce = typeof nonceB64 === 'string' ? fromBase64(nonceB64) : null;
  if (nonce === null || nonce.length !== IPC_AUTH_NONCE_BYTES) return badNonce();
  return ok({ public_key: toBase64(identity.publicKey), pid, signature: toBase64(sign(identity, proofMessage(nonce, pid))) });
}

/**
 * Client side: does `proof` (the daemon's untrusted answer) show the key `expected` signed our `nonce`?
 * ok(pid) or `daemon_unverified`. Total on any input.
 */
export function checkDaemonProof(expected: Uint8Array, nonce: Uint8Array, proof: unknown, socketPath: string): Result<{ pid: number }> {
  const p = (typeof proof === 'object' && proof !== null ? proof : {}) as Record<string, unknown>;
  const sig = typeof p.signature === 'string' ? fromBase64(p.signature) : null;
  const pid = p.pid;
  if (sig === null || !isPid(pid)) return noValidProof(socketPath);
  if (!verify(expected, proofMessage(nonce, pid), sig)) {
    return err('daemon_unverified', `the process on ${socketPath} is not this home's daemon: its proof does not verify against the node key`, {
      detail: { socket: socketPath, expected_public_key: toBase64(expected), claimed_public_key: typeof p.public_key === 'string' ? p.public_key : null },
    });
  }
  return ok({ pid });
}

/** Daemon side: publish the node's public key as <home>/identity.pub (mode 0600, via core/safe-file). */
export function publishDaemonKey(home: string, publicKey: Uint8Array): Result<void> {
  return writeFileSafe(homePaths(home).publicKey, JSON.stringify({ public_key: toBase64(publicKey) }) + '\n');
}

/**
 * Client side: the key this home's daemon must prove. The home must pass checkHome and the key file must be a
 * regular file (not a symlink) owned by us — else anyone who could plant it could pass the check.
 * Errors: `daemon_unverified` (with why in the message). Does file-system I/O.
 */
export function readDaemonKey(home: string): Result<Uint8Array> {
  const path = homePaths(home).publicKey;
  const h = checkHome(home);
  if (!h.ok) {
    return err('daemon_unverified', `cannot verify the daemon: ${h.error.message}`, { hint: h.error.hint ?? '', detail: { home, key_file: path } });
  }
  const f = readSmallFileNoFollow(path);
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  if (f === null || (uid !== null && f.uid !== uid)) {
    return err('daemon_unverified', `cannot verify the daemon: ${path} is missing, not a regular file of yours, or unreadable`, {
      hint: `the daemon writes it at start; is the daemon of --home ${home} running? (pilotctl daemon start)`,
      detail: { home, key_file: path },
    });
  }
  let key: Uint8Array | null = null;
  try {
    const doc = JSON.parse(f.text) as { public_key?: unknown };
    key = typeof doc.public_key === 'string' ? fromBase64(doc.public_key) : null;
  } catch {
    key = null;
  }
  if (key === null || key.length !== ED25519_PUBLIC_KEY_BYTES) {
    return err('daemon_unverified', `cannot verify the daemon: ${path} holds no valid public key`, {
      hint: `restart the daemon to rewrite it (pilotctl daemon stop; pilotctl daemon start)`,
      detail: { home, key_file: path },
    });
  }
  return ok(key);
}
