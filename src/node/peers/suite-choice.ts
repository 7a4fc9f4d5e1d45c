// Which suite a node is met in: its live session's, else as the dial plan says — Noise; v0.5 at once (our
// registry marks it an original client); or Noise and a probing PILA together (nobody said: an original
// registry). Streams and datagrams then go through that suite (one connection table holds both).
import { ok, type Result } from '../../core/result.js';
import type { SuiteName } from '../streams/stream-suites.js';
import type { LegacySuite } from './legacy-suite.js';
import type { NoiseSuite, TunnelPeer } from './noise-suite.js';
import type { PeerResolver } from './resolver.js';
import { LEGACY_CONNECT_TIMEOUT_MS, V05_CONNECT_TIMEOUT_MS } from './peer-suite.js';

export type SuiteSession = { suite: Extract<SuiteName, 'v0.5'> } | { suite: Extract<SuiteName, 'noise'>; tunnel: TunnelPeer };

export interface SuiteChoiceDeps {
  resolver: Pick<PeerResolver, 'dialPlanFor'>;
  tunnels: Pick<NoiseSuite, 'ensureSession'>;
  legacy: Pick<LegacySuite, 'hasSession' | 'connect'>;
}

/** A session with `nodeId` in the suite it speaks, within `timeoutMs` (v0.5 attempts are capped shorter). */
export async function ensureSuite(deps: SuiteChoiceDeps, nodeId: number, timeoutMs: number): Promise<Result<SuiteSession>> {
  const { resolver, tunnels, legacy } = deps;
  if (legacy.hasSession(nodeId)) return ok({ suite: 'v0.5' });
  const plan = await resolver.dialPlanFor(nodeId);
  if (plan === 'v0.5') {
    // Our registry says an original client registered it: it speaks no Noise, so no Noise attempt first.
    const l = await legacy.connect(nodeId, Math.min(timeoutMs, V05_CONNECT_TIMEOUT_MS));
    return l.ok ? ok({ suite: 'v0.5' }) : l;
  }
  if (plan === 'noise-then-v0.5') {
    // The Noise initiation and a probing PILA go out together. Only an original node answers the probe (a
    // daemon of ours refuses its marker bytes), so a v0.5 session here is never a downgrade of ours, and an
    // original is met without waiting out Noise.
    const noise = tunnels.ensureSession(nodeId);
    const v05 = legacy.connect(nodeId, LEGACY_CONNECT_TIMEOUT_MS, { probe: true });
    const first = await Promise.race([noise.then((r) => ({ isNoise: true, r })), v05.then((r) => ({ isNoise: false, r }))]);
    if (!first.isNoise && first.r.ok) return ok({ suite: 'v0.5' });
    const t = first.isNoise ? (first.r as Result<TunnelPeer>) : await noise;
    if (t.ok) return ok({ suite: 'noise', tunnel: t.value });
    if (t.error.code !== 'connection_failed') return t;
    const l = await v05;
    return l.ok ? ok({ suite: 'v0.5' }) : t;
  }
  const t = await tunnels.ensureSession(nodeId);
  return t.ok ? ok({ suite: 'noise', tunnel: t.value }) : t;
}
