// Identity lifecycle in the daemon (issue 14): rotating our own key, and following the rotations of the peers we
// trust. Our side: a fresh key, a statement signed by the old key (or the recovery key) and the new one
// (src/crypto/key-rotation.ts), the new identity file written beside the old before the registry is asked and moved
// over it after, then the daemon answers with the new key (Noise sessions made with the old one are dropped; peers
// re-handshake without a trust handshake). Peers' side: a statement pushed by the registry or found in a lookup moves
// a pin only when it verifies against that pin (or the recovery key learned earlier) — never on the registry's word.
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { err, ok, type Result } from '../core/result.js';
import { pilotError, type PilotError } from '../core/errors.js';
import { generateIdentity, toBase64, type Identity } from '../crypto/identity.js';
import { followChain, signRotation, type RotationStatement } from '../crypto/key-rotation.js';
import { saveIdentity } from './identity-store.js';
import type { NodeEvents } from './events.js';
import type { LookupResult, RegistryClient } from './registry-client.js';
import type { TrustStore } from './trust/store.js';

export interface KeyRotationResult {
  node_id: number;
  old_public_key: string;
  new_public_key: string;
  by: 'local' | 'recovery';
  identity_file: string;
  statement: RotationStatement;
}

export interface KeyRotationDeps {
  nodeId(): number | null;
  identity(): Identity;
  /** Swap the daemon's identity (tunnels, registry signatures, the IPC proof). */
  setIdentity(next: Identity): void;
  identityPath: string;
  registry: Pick<RegistryClient, 'rotateKey' | 'nowSec'>;
  trust: Pick<TrustStore, 'getTrusted' | 'updateKey' | 'learnRecoveryKey'>;
  dropPeer(nodeId: number, reason: PilotError): void;
  events: NodeEvents;
  logger: Logger;
}

/** The approval time of a pin as unix seconds (0 when unreadable), with a minute of slack for clock skew. */
function pinnedAtSec(approvedAt: string): number {
  const ms = Date.parse(approvedAt);
  return Number.isFinite(ms) ? Math.max(0, Math.floor(ms / 1000) - 60) : 0;
}

export class KeyRotation {
  private isRotating = false;

  constructor(private readonly deps: KeyRotationDeps) {}

  /**
   * Rotate this node's key. `recovery`: sign with the recovery key instead of the current key. Errors: not_running
   * (not registered), already_exists (a rotation in flight), the registry's refusal, internal (identity file).
   * Does file-system and registry I/O.
   */
  async rotate(opts: { recovery?: Identity } = {}): Promise<Result<KeyRotationResult>> {
    const nodeId = this.deps.nodeId();
    if (nodeId === null) return err('not_running', 'not registered with the registry yet: a key rotation needs it', { hint: 'wait for `pilotctl health` to show registered, then retry' });
    if (this.isRotating) return err('already_exists', 'a key rotation is already in progress');
    this.isRotating = true;
    try {
      const old = this.deps.identity();
      const next = generateIdentity();
      const statement = signRotation({
        nodeId,
        next,
        tsSec: this.deps.registry.nowSec(),
        nonce: randomBytes(16).toString('base64'),
        ...(opts.recovery ? { recovery: opts.recovery, oldPublicKeyB64: toBase64(old.publicKey) } : { old }),
      });
      // The new key is on disk before the registry moves to it: a crash between the two cannot lose both.
      const pending = `${this.deps.identityPath}.next`;
      const saved = saveIdentity(pending, next);
      if (!saved.ok) return saved;
      const r = await this.deps.registry.rotateKey(statement);
      if (!r.ok) {
        rmSync(pending, { force: true });
        return r;
      }
      try {
        renameSync(pending, this.deps.identityPath);
      } catch (cause) {
        // The registry holds the new key now; keep it where the operator can find it.
        return err('internal', `the registry moved to the new key but ${pending} could not replace ${this.deps.identityPath}`, {
          hint: `move ${pending} to ${this.deps.identityPath} by hand before the next start`,
          cause,
        });
      }
      this.deps.setIdentity(next);
      const by = opts.recovery ? 'recovery' : 'local';
      this.deps.events.emit({ type: 'key.rotated', data: { node_id: nodeId, old_public_key: statement.old_public_key, new_public_key: statement.new_public_key, by } });
      this.deps.logger.info({ nodeId, old: statement.old_public_key, new: statement.new_public_key, by }, 'identity key rotated');
      return ok({ node_id: nodeId, old_public_key: statement.old_public_key, new_public_key: statement.new_public_key, by, identity_file: this.deps.identityPath, statement });
    } finally {
      this.isRotating = false;
    }
  }

  /**
   * Statements about a trusted peer (a push, or a lookup's chain): move its pin along the ones that verify from
   * it, drop its sessions, emit key.rotated. True when the pin moved. Statements about strangers are ignored.
   */
  handleStatements(nodeId: number, statements: readonly RotationStatement[], via: 'push' | 'lookup'): boolean {
    const t = this.deps.trust.getTrusted(nodeId);
    if (!t) return false;
    const chain = followChain(
      statements.filter((s) => s.node_id === nodeId),
      // Before any rotation the pin's own time bounds what applies: statements older than the approval are history.
      { nodeId, currentKey: t.public_key, recoveryKey: t.recovery_key ?? null, lastTsSec: t.key_ts ?? pinnedAtSec(t.approved_at) },
    );
    if (chain.applied.length === 0) {
      this.deps.logger.warn({ nodeId, via }, 'key rotation statement refused: it does not verify against the pinned key');
      return false;
    }
    const oldKey = t.public_key;
    const saved = this.deps.trust.updateKey(nodeId, chain.key, chain.tsSec);
    if (!saved.ok) {
      this.deps.logger.error({ nodeId, error: saved.error.message }, 'could not persist the rotated key of a peer');
      return false;
    }
    // A pushed rotation: sessions with the old key go (the peer dropped its side). Found by a lookup: we are in the
    // middle of reaching it with the new key, and nothing made with the old one is left to drop.
    if (via === 'push') this.deps.dropPeer(nodeId, pilotError('connection_failed', `node ${nodeId} rotated its key; reconnecting with the new one`));
    this.deps.events.emit({ type: 'key.rotated', data: { node_id: nodeId, old_public_key: oldKey, new_public_key: chain.key, by: 'peer' } });
    this.deps.logger.info({ nodeId, via, old: oldKey, new: chain.key }, 'trusted peer rotated its key');
    return true;
  }

  /** PeerResolver hook: the registry shows another key for a pinned peer; true when its statements lead there. */
  adoptRotation(nodeId: number, lookup: LookupResult): boolean {
    if (!lookup.keyRotations?.length) return false;
    const moved = this.handleStatements(nodeId, lookup.keyRotations, 'lookup');
    return moved && this.deps.trust.getTrusted(nodeId)?.public_key === lookup.publicKey;
  }

  learnRecoveryKey(nodeId: number, recoveryKey: string): void {
    const r = this.deps.trust.learnRecoveryKey(nodeId, recoveryKey);
    if (!r.ok) this.deps.logger.warn({ nodeId, error: r.error.message }, 'could not persist a peer recovery key');
  }
}
