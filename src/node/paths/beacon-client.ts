// The node's side of the beacon protocol (src/wire/beacon-message.ts) for the path engine: our discover and
// punch requests, MACed with our beacon token once we hold one (src/node/registry-client.ts gets it in the
// signed register_ok), and the beacon's punch commands decoded with their MAC checked. What a command may make
// us do is the path engine's decision (src/nat/paths.ts).
import type { Result } from '../../core/result.js';
import type { WallClock } from '../../core/clock.js';
import type { PathAction, PunchCommand } from '../../nat/index.js';
import {
  encodeAuthenticatedBeaconMessage,
  encodeBeaconMessage,
  verifyBeaconAuth,
  type BeaconMessage,
} from '../../wire/beacon-message.js';

export interface BeaconClientDeps {
  wall: WallClock;
  nodeId(): number;
  /** Our beacon token; null against an original registry. */
  beaconToken(): Uint8Array | null;
}

export class BeaconClient {
  /** Counter of our MACed messages: µs since the epoch, strictly increasing (the beacon refuses replays). */
  private txCounter = 0;

  constructor(private readonly deps: BeaconClientDeps) {}

  get hasToken(): boolean {
    return this.deps.beaconToken() !== null;
  }

  /** The bytes of an engine's beacon action: MACed with our token once we hold one (a fresh counter each). */
  encode(m: Extract<PathAction, { kind: 'beacon' }>['message']): Result<Uint8Array> {
    const me = this.deps.nodeId();
    const msg: BeaconMessage = m.kind === 'discover' ? { kind: 'discover', nodeId: me } : { kind: 'punch_request', fromNodeId: me, toNodeId: m.toNodeId };
    const token = this.deps.beaconToken();
    if (!token) return encodeBeaconMessage(msg);
    this.txCounter = Math.max(this.txCounter + 1, Math.floor(this.deps.wall.nowMs()) * 1000);
    return encodeAuthenticatedBeaconMessage(msg, token, this.txCounter);
  }

  /** A decoded punch command with its MAC checked against our token. */
  punchCommand(m: Extract<BeaconMessage, { kind: 'punch_command' }>): PunchCommand {
    const token = this.deps.beaconToken();
    const cmd: PunchCommand = { ip: m.ip, port: m.port, auth: null };
    if (m.peerNodeId !== undefined) cmd.peerNodeId = m.peerNodeId;
    if (m.auth) cmd.auth = { counter: m.auth.counter, isValid: token !== null && verifyBeaconAuth(m.auth, token) };
    return cmd;
  }
}
