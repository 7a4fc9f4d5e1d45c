// Which tunnel suite to use with a peer, decided from what our registry says it speaks (lookup_ok's `suite`
// extension; see registry/server.ts lookup). Pure: the daemon asks, then dials.
// - 'v0.5' (registered by an original client): the original speaks no Noise, so a Noise attempt can only time
//   out — send PILA at once.
// - 'noise' (one of ours): never offer or accept the v0.5 suite (no downgrade: a PILA claiming that node is
//   refused even when its signature and key check out).
// - unknown (an original registry sends no suite): the Noise initiation and a probing PILA together (see
//   PILA_PROBE_MARKER in legacy-tunnels.ts: only an original answers the probe), so no Noise timeout is waited out.
import { err, ok, type Result } from '../../core/result.js';
import { fromBase64 } from '../../crypto/index.js';
import type { PeerSuite } from '../registry-client.js';

/** PILA exchange budget for a peer our registry marks v0.5 (it replaces the Noise handshake's 5 s). */
export const V05_CONNECT_TIMEOUT_MS = 5000;
/** PILA exchange budget when a peer did not answer Noise (the probing PILA beside a Noise initiation). */
export const LEGACY_CONNECT_TIMEOUT_MS = 3000;

/** How to dial a peer: Noise only, v0.5 only, or both at once with a probing PILA (node.ts dial). */
export type DialPlan = 'noise' | 'v0.5' | 'noise-then-v0.5';

/**
 * `suite`: what the registry says (undefined: it did not say). `legacyEnabled`: the daemon speaks v0.5 at all.
 * `noiseUp`: a Noise session with the peer is up — it speaks Noise, whatever anyone says now.
 */
export function dialPlan(suite: PeerSuite | undefined, legacyEnabled: boolean, noiseUp = false): DialPlan {
  if (!legacyEnabled || noiseUp || suite === 'noise') return 'noise';
  return suite === 'v0.5' ? 'v0.5' : 'noise-then-v0.5';
}

/** May a v0.5 key exchange (PILA) with this node be accepted or sent? Not for a node the registry marks Noise. */
export function acceptsV05(suite: PeerSuite | undefined): boolean {
  return suite !== 'noise';
}

/**
 * The Ed25519 key a v0.5 PILA claiming `nodeId` must be signed with, from the registry's lookup — or an error
 * when the registry marks the node Noise (a v0.5 key exchange in its name is a downgrade attempt) or its key is
 * malformed. Errors: connection_failed.
 */
export function v05KeyFrom(nodeId: number, l: { publicKey: string; suite?: PeerSuite }): Result<Uint8Array> {
  if (!acceptsV05(l.suite)) {
    return err('connection_failed', `node ${nodeId} speaks Noise (registry): the v0.5 suite is refused`, {
      hint: 'a node of ours is met over Noise only; a v0.5 key exchange in its name is a downgrade attempt',
    });
  }
  const k = fromBase64(l.publicKey);
  return k && k.length === 32 ? ok(k) : err('connection_failed', `registry gave a malformed key for node ${nodeId}`);
}
