// Key rotation statements (issue 14): "node N's identity key moves from OLD to NEW as of ts", signed so that
// anyone who pinned OLD can check it without trusting the registry's word. Two forms:
//   - by key: signed by OLD (`signature`) and by NEW (`new_key_signature`) over
//     `rotate:<N>:<NEW>:<ts>:<nonce>` — exactly the fresh rotate_key challenge our registry already checks
//     (src/wire/registry-frame.ts bound.rotateKey + withFreshness), so one statement is both the registry
//     request and what peers verify; OLD is the key that signed it, so a statement verifies only against the
//     key it rotates away from (a replayed older statement names an older key and fails against the pin);
//   - by recovery key (the key is lost): signed by the node's recovery key (`recovery_signature`, whose public
//     half the registry learned at registration and peers learned from lookups that agreed with their pin) and by
//     NEW over `recover:<N>:<NEW>:<ts>:<nonce>`. OLD is not signed (the holder lost it); replays are refused by
//     ts, which must be later than the pin's (TrustedPeer.key_ts / the registry's last statement).
// Pure: no I/O, no clock (callers pass ts and the nonce).
import { err, ok, type Result } from '../core/index.js';
import { bound, withFreshness } from '../wire/registry-frame.js';
import type { RotationStatement } from '../wire/registry-messages.js';

export { decodeRotationStatement, type RotationStatement } from '../wire/registry-messages.js';
import { fromBase64, sign, toBase64, verify, ED25519_PUBLIC_KEY_BYTES, type Identity } from './identity.js';

/** Domain of the recovery form (never a registry challenge of the original). */
export function recoveryText(nodeId: number, newPublicKeyB64: string): string {
  return `recover:${nodeId}:${newPublicKeyB64}`;
}

export type RotationForm = 'key' | 'recovery';

/** The signed text of a statement's form. */
export function statementText(s: Pick<RotationStatement, 'node_id' | 'new_public_key' | 'ts' | 'nonce'>, form: RotationForm): string {
  const base = form === 'key' ? bound.rotateKey(s.node_id, s.new_public_key) : recoveryText(s.node_id, s.new_public_key);
  return withFreshness(base, s.ts, s.nonce);
}

/**
 * Sign a rotation. `old` given: the by-key form. `recovery` given instead: the recovery form (`oldPublicKeyB64`
 * is then what the signer believes the current key is, or '' when unknown).
 */
export function signRotation(p: {
  nodeId: number;
  next: Identity;
  tsSec: number;
  nonce: string;
  old?: Identity;
  recovery?: Identity;
  oldPublicKeyB64?: string;
}): RotationStatement {
  const s: RotationStatement = {
    node_id: p.nodeId,
    old_public_key: p.old ? toBase64(p.old.publicKey) : (p.oldPublicKeyB64 ?? ''),
    new_public_key: toBase64(p.next.publicKey),
    ts: p.tsSec,
    nonce: p.nonce,
    new_key_signature: '',
  };
  const form: RotationForm = p.old ? 'key' : 'recovery';
  const text = Buffer.from(statementText(s, form), 'utf8');
  s.new_key_signature = toBase64(sign(p.next, text));
  if (p.old) s.signature = toBase64(sign(p.old, text));
  else if (p.recovery) s.recovery_signature = toBase64(sign(p.recovery, text));
  else throw new Error('signRotation needs the old key or the recovery key'); // a bug in the caller
  return s;
}

function sigOk(keyB64: string, text: string, sigB64: string | undefined): boolean {
  if (sigB64 === undefined) return false;
  const key = fromBase64(keyB64);
  const sig = fromBase64(sigB64);
  if (!key || key.length !== ED25519_PUBLIC_KEY_BYTES || !sig) return false;
  return verify(key, Buffer.from(text, 'utf8'), sig);
}

export interface VerifyContext {
  /** The key the verifier holds for the node now (its pin, or the registry's record). */
  currentKey: string;
  /** The node's recovery key as the verifier learned it; null/undefined: recovery statements are refused. */
  recoveryKey?: string | null;
  /** ts of the last statement the verifier applied (0: none). A statement must be later. */
  lastTsSec?: number;
  /** The node id the verifier expects (the statement must name it). */
  nodeId: number;
}

/**
 * Check one statement against what the verifier holds. Errors (invalid_argument): wrong node, not from the current
 * key (forged, or a replayed statement about an older key), bad new-key signature, no usable signature, not later
 * than the last applied one, a no-op rotation. Never throws.
 */
export function verifyRotation(s: RotationStatement, ctx: VerifyContext): Result<{ form: RotationForm }> {
  if (s.node_id !== ctx.nodeId) return err('invalid_argument', `rotation statement is for node ${s.node_id}, not ${ctx.nodeId}`);
  if (s.new_public_key === ctx.currentKey) return err('invalid_argument', 'rotation statement moves to the key already held');
  const newKey = fromBase64(s.new_public_key);
  if (!newKey || newKey.length !== ED25519_PUBLIC_KEY_BYTES) return err('invalid_argument', 'rotation statement: new_public_key is not an Ed25519 key');
  if (ctx.lastTsSec !== undefined && s.ts <= ctx.lastTsSec) {
    return err('invalid_argument', `rotation statement of ts ${s.ts} is not later than the last applied (${ctx.lastTsSec}): a replay`);
  }
  if (s.signature !== undefined) {
    const text = statementText(s, 'key');
    if (s.old_public_key !== '' && s.old_public_key !== ctx.currentKey) {
      return err('invalid_argument', 'rotation statement rotates away from another key than the one held (replayed or forged)');
    }
    if (!sigOk(ctx.currentKey, text, s.signature)) return err('invalid_argument', 'rotation statement is not signed by the key held');
    if (!sigOk(s.new_public_key, text, s.new_key_signature)) return err('invalid_argument', 'rotation statement: new_key_signature does not verify');
    return ok({ form: 'key' });
  }
  if (s.recovery_signature !== undefined) {
    if (!ctx.recoveryKey) return err('invalid_argument', 'rotation statement is signed by a recovery key, and no recovery key is known for the node');
    // Unsigned here (the signer lost that key), but it links the chain: a statement about an older key is not ours.
    if (s.old_public_key !== '' && s.old_public_key !== ctx.currentKey) {
      return err('invalid_argument', 'recovery statement rotates away from another key than the one held');
    }
    const text = statementText(s, 'recovery');
    if (!sigOk(ctx.recoveryKey, text, s.recovery_signature)) return err('invalid_argument', 'rotation statement is not signed by the node\'s recovery key');
    if (!sigOk(s.new_public_key, text, s.new_key_signature)) return err('invalid_argument', 'rotation statement: new_key_signature does not verify');
    return ok({ form: 'recovery' });
  }
  return err('invalid_argument', 'rotation statement carries neither the old key\'s nor the recovery key\'s signature');
}

/**
 * Follow a chain of statements (oldest first, as the registry hands them out) from the key held to the newest one
 * that verifies. Statements about older keys (already applied) are skipped; the walk stops at the first one that
 * names the current key but does not verify. Returns the key reached and its ts, with the statements applied.
 */
export function followChain(chain: readonly RotationStatement[], ctx: VerifyContext): { key: string; tsSec: number; applied: RotationStatement[] } {
  let key = ctx.currentKey;
  let ts = ctx.lastTsSec ?? 0;
  const applied: RotationStatement[] = [];
  for (const s of [...chain].sort((a, b) => a.ts - b.ts)) {
    if (s.ts <= ts) continue;
    const v = verifyRotation(s, { ...ctx, currentKey: key, lastTsSec: ts });
    if (!v.ok) continue;
    key = s.new_public_key;
    ts = s.ts;
    applied.push(s);
  }
  return { key, tsSec: ts, applied };
}
