// Golden tests over the captures of the original v0.5 (../shared/interop): every registry message and every
// UDP datagram decodes with our codecs, every captured signature verifies with the captured identities, and
// whatever is deterministic re-encodes to the captured bytes. No external binaries: runs everywhere.
import test from 'node:test';
import assert from 'node:assert/strict';
import { RegistryFrameDecoder, encodeRegistryFrame, challenge, type RegistryMessage } from '../../src/wire/registry-frame.js';
import { decodeBeaconMessage, encodeBeaconMessage, isBeaconMessage } from '../../src/wire/beacon-message.js';
import {
  decodeLegacyFrame,
  decodeLegacyNonce,
  encodeLegacyFrame,
  encodePilt,
  legacyFrameKind,
  pilaSignedMessage,
  type PilaFrame,
  type PilsFrame,
  type PiltFrame,
} from '../../src/wire/legacy-frame.js';
import { FLAG_SYN, PROTO_STREAM } from '../../src/wire/header.js';
import { PORT_ECHO } from '../../src/wire/address.js';
import { fromBase64, verify } from '../../src/crypto/identity.js';
import { verifyPilaFrame } from '../../src/crypto/legacy-session.js';
import { BEACON_PORT, TUNNEL_PORT_OF_NODE, findInteropDir, readIdentities, readTranscript, readUdpFrames } from './captures.js';

const dir = findInteropDir();
const skip = dir ? false : 'no ../shared/interop captures (set PILOT_INTEROP_CAPTURES)';
const NODE_OF_TUNNEL_PORT: Record<number, number> = { 14012: 1, 14011: 2 };

/** Go's encoding/json for map[string]interface{}: keys sorted, no spaces, HTML-safe escapes. */
function goJson(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(goJson).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return '{' + Object.keys(o).sort().map((k) => JSON.stringify(k) + ':' + goJson(o[k])).join(',') + '}';
  }
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

/** The ASCII challenge each signed request of the original covers (pkg/registry/client.go). */
function challengeOf(m: RegistryMessage): { signer: number; text: string } | null {
  const n = (k: string) => m[k] as number;
  switch (m.type) {
    case 'heartbeat':
      return { signer: n('node_id'), text: challenge.heartbeat(n('node_id')) };
    case 'poll_handshakes':
      return { signer: n('node_id'), text: challenge.pollHandshakes(n('node_id')) };
    case 'set_hostname':
      return { signer: n('node_id'), text: challenge.setHostname(n('node_id')) };
    case 'resolve':
      return { signer: n('requester_id'), text: challenge.resolve(n('requester_id'), n('node_id')) };
    case 'report_trust':
      return { signer: n('node_id'), text: challenge.reportTrust(n('node_id'), n('peer_id')) };
    case 'respond_handshake':
      return { signer: n('node_id'), text: challenge.respondHandshake(n('node_id'), n('peer_id')) };
    case 'request_handshake':
      return { signer: n('from_node_id'), text: challenge.requestHandshake(n('from_node_id'), n('to_node_id')) };
    default:
      return null;
  }
}

test('registry transcript: every message decodes from its frame, re-encodes byte for byte, and every signature verifies', { skip }, () => {
  const ids = readIdentities(dir!);
  const lines = readTranscript(dir!);
  assert.equal(lines.length, 54, 'the whole transcript');
  const types = new Set<string>();
  let signed = 0;
  for (const l of lines) {
    const body = new TextEncoder().encode(l.json);
    assert.equal(body.length, l.len, `captured length of ${l.json}`);
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    // Decode through the streaming decoder, split at an awkward point.
    const dec = new RegistryFrameDecoder();
    const a = dec.push(frame.subarray(0, 3));
    assert.ok(a.ok && a.value.length === 0);
    const b = dec.push(frame.subarray(3));
    assert.ok(b.ok, `decode ${l.json}`);
    assert.equal(b.value.length, 1);
    const msg = b.value[0]!;
    assert.equal(typeof msg.type, 'string');
    types.add(`${l.dir}:${String(msg.type)}`);
    // Go marshals map[string]interface{} with sorted keys: that is deterministic, so it must round-trip.
    assert.equal(goJson(msg), l.json, 'canonical re-encoding');
    const enc = encodeRegistryFrame(JSON.parse(goJson(msg)) as RegistryMessage);
    assert.ok(enc.ok);
    assert.equal(enc.value.length, frame.length);

    if (l.dir === 'rep' && msg.type === 'error') assert.equal(typeof msg.error, 'string', 'error shape {type:error,error:…}');
    if (l.dir === 'rep' && msg.type !== 'error') assert.match(String(msg.type), /_ok$/);
    if (typeof msg.signature !== 'string') {
      assert.equal(challengeOf(msg), null, `${String(msg.type)} should be signed`);
      continue;
    }
    const c = challengeOf(msg);
    assert.ok(c, `unknown signed request ${String(msg.type)}`);
    const sig = fromBase64(msg.signature);
    assert.ok(sig && sig.length === 64, 'base64 of a 64-byte signature');
    const id = ids.get(c.signer);
    assert.ok(id, `identity of node ${c.signer}`);
    assert.ok(verify(id.publicKey, new TextEncoder().encode(c.text), sig), `signature over "${c.text}"`);
    // Ed25519 is deterministic: signing the challenge again with the captured private key gives the same bytes.
    signed++;
  }
  assert.equal(signed, 17, 'every signed request of the transcript');
  for (const t of ['req:register', 'rep:register_ok', 'req:lookup', 'rep:lookup_ok', 'rep:error', 'req:request_handshake', 'rep:poll_handshakes_ok']) {
    assert.ok(types.has(t), `transcript covers ${t}`);
  }
  // register_ok / lookup_ok carry the keys of the identity files.
  for (const l of lines) {
    const m = JSON.parse(l.json) as RegistryMessage;
    if ((m.type === 'register_ok' || m.type === 'lookup_ok') && typeof m.public_key === 'string') {
      const id = ids.get(m.node_id as number)!;
      assert.deepEqual(fromBase64(m.public_key), id.publicKey);
    }
  }
});

test('registry transcript: re-signing each challenge with the captured private keys reproduces the signature', { skip }, async () => {
  const { sign } = await import('../../src/crypto/identity.js');
  const ids = readIdentities(dir!);
  for (const l of readTranscript(dir!)) {
    const msg = JSON.parse(l.json) as RegistryMessage;
    const c = challengeOf(msg);
    if (!c || typeof msg.signature !== 'string') continue;
    const ours = Buffer.from(sign(ids.get(c.signer)!, new TextEncoder().encode(c.text))).toString('base64');
    assert.equal(ours, msg.signature, `${String(msg.type)} by node ${c.signer}`);
  }
});

test('UDP capture: every datagram decodes (beacon, PILP, PILA, PILT, PILS) and deterministic ones re-encode exactly', { skip }, () => {
  const ids = readIdentities(dir!);
  const frames = readUdpFrames(dir!);
  assert.ok(frames.length > 100, `expected the whole capture, got ${frames.length}`);
  const counts: Record<string, number> = {};
  const pilaOf = new Map<number, PilaFrame>();
  const pils: { node: number; prefix: number; counter: bigint; t: number }[] = [];
  let pilt: PiltFrame | null = null;

  for (const f of frames) {
    const b = f.bytes;
    if (isBeaconMessage(b)) {
      const d = decodeBeaconMessage(b);
      assert.ok(d.ok, `beacon message at t=${f.t}`);
      counts[`beacon:${d.value.kind}`] = (counts[`beacon:${d.value.kind}`] ?? 0) + 1;
      const re = encodeBeaconMessage(d.value);
      assert.ok(re.ok);
      assert.deepEqual(re.value, b, `beacon re-encoding at t=${f.t}`);
      // Direction and content are what the original does: discover from a node's tunnel socket carries its id;
      // replies carry 127.0.0.1 and the port the beacon saw.
      if (d.value.kind === 'discover') {
        assert.equal(f.dstPort, BEACON_PORT);
        assert.equal(TUNNEL_PORT_OF_NODE[d.value.nodeId], f.srcPort);
      } else if (d.value.kind === 'discover_reply') {
        assert.deepEqual([d.value.ip, d.value.port], ['127.0.0.1', f.dstPort]);
      } else if (d.value.kind === 'punch_command') {
        assert.equal(d.value.ip, '127.0.0.1');
        assert.notEqual(d.value.port, f.dstPort, 'punch command names the other side');
      } else if (d.value.kind === 'punch_request') {
        assert.deepEqual([d.value.fromNodeId, d.value.toNodeId], [NODE_OF_TUNNEL_PORT[f.srcPort], NODE_OF_TUNNEL_PORT[f.srcPort] === 2 ? 1 : 2]);
      }
      continue;
    }
    const kind = legacyFrameKind(b);
    assert.ok(kind, `tunnel magic at t=${f.t}`);
    counts[kind] = (counts[kind] ?? 0) + 1;
    const d = decodeLegacyFrame(b);
    assert.ok(d.ok, `${kind} at t=${f.t}: ${d.ok ? '' : d.error.message}`);
    if (d.value.kind !== 'PILS') {
      const re = encodeLegacyFrame(d.value);
      assert.ok(re.ok);
      assert.deepEqual(re.value, b, `${kind} re-encoding at t=${f.t}`);
    }
    const sender = NODE_OF_TUNNEL_PORT[f.srcPort]!;
    switch (d.value.kind) {
      case 'PILA': {
        assert.equal(d.value.node, sender);
        assert.deepEqual(d.value.ed25519Pub, ids.get(sender)!.publicKey, 'PILA carries the registry identity');
        const msg = pilaSignedMessage(d.value.node, d.value.x25519Pub);
        assert.ok(msg.ok);
        assert.ok(verify(ids.get(sender)!.publicKey, msg.value, d.value.signature), 'PILA signature over "auth"|node|X25519');
        const v = verifyPilaFrame(b);
        assert.ok(v.ok);
        const prev = pilaOf.get(sender);
        if (prev) assert.deepEqual(prev.x25519Pub, d.value.x25519Pub, 'static X25519 key per run');
        pilaOf.set(sender, { ...d.value, x25519Pub: new Uint8Array(d.value.x25519Pub) });
        break;
      }
      case 'PILS': {
        const p = d.value as PilsFrame;
        assert.equal(p.node, sender);
        assert.ok(pilaOf.has(sender), 'PILS only after the sender’s PILA');
        assert.ok(p.ciphertext.length >= 16 + 34, 'at least a 34-byte inner header plus the GCM tag');
        const n = decodeLegacyNonce(p.nonce);
        assert.ok(n.ok);
        pils.push({ node: sender, prefix: n.value.prefix, counter: n.value.counter, t: f.t });
        break;
      }
      case 'PILT':
        pilt ??= d.value;
        break;
      case 'PILP':
        break;
      default:
        assert.fail(`unexpected ${d.value.kind} in the capture`);
    }
  }
  for (const k of ['beacon:discover', 'beacon:discover_reply', 'beacon:punch_request', 'beacon:punch_command', 'PILP', 'PILA', 'PILT', 'PILS']) {
    assert.ok((counts[k] ?? 0) > 0, `capture has ${k}`);
  }
  // Nonces: u32 random prefix ‖ u64 counter; counters run 1, 2, 3, … per prefix. A new prefix with the
  // counter back at 1 is the original re-deriving its session on a duplicate PILA: ref-b (node 1) does it when
  // ref-a's third PILA arrives at t=69.223749 — which is why our replay window is per prefix.
  const epochs = new Map<number, { prefix: number; counters: bigint[] }[]>();
  for (const p of pils) {
    const list = epochs.get(p.node) ?? [];
    let e = list.find((x) => x.prefix === p.prefix);
    if (!e) list.push((e = { prefix: p.prefix, counters: [] }));
    e.counters.push(p.counter);
    epochs.set(p.node, list);
  }
  for (const [node, list] of epochs) {
    for (const e of list) {
      const sorted = [...e.counters].sort((a, b) => (a < b ? -1 : 1));
      assert.equal(sorted[0], 1n, `node ${node} prefix ${e.prefix.toString(16)} starts at counter 1`);
      for (let i = 1; i < sorted.length; i++) assert.equal(sorted[i], sorted[i - 1]! + 1n, 'no counter skipped or reused');
    }
  }
  assert.equal(epochs.get(2)!.length, 1, 'ref-a (got one PILA) keeps one prefix');
  assert.equal(epochs.get(1)!.length, 2, 'ref-b re-derived once, on the duplicate PILA');
  const firstReDerive = pils.find((p) => p.node === 1 && p.prefix === epochs.get(1)![1]!.prefix)!;
  assert.ok(firstReDerive.t > 69.223749, 'the new prefix appears after the duplicate PILA');
  for (const a of epochs.get(1)!) for (const b of epochs.get(2)!) assert.notEqual(a.prefix, b.prefix, 'directions use different prefixes');

  // The plaintext SYN the original sends before the key exchange completes (udp-frames.txt near t=69.222).
  assert.ok(pilt);
  const syn = pilt.packet;
  assert.equal(syn.version, 1);
  assert.equal(syn.flags, FLAG_SYN);
  assert.equal(syn.protocol, PROTO_STREAM);
  assert.deepEqual(syn.src, { network: 0, node: 2 });
  assert.deepEqual(syn.dst, { network: 0, node: 1 });
  assert.equal(syn.srcPort, 49152, 'first ephemeral port');
  assert.equal(syn.dstPort, PORT_ECHO, 'ping goes to the echo service');
  assert.equal(syn.seq, 0, 'ISN 0');
  assert.equal(syn.ack, 0);
  assert.equal(syn.window, 512, 'window in segments: an empty 512-slot queue');
  assert.equal(syn.payload.length, 0);
  const re = encodePilt(syn);
  assert.ok(re.ok);
  assert.equal(Buffer.from(re.value).toString('hex'), '50494c5411010000000000000002000000000001c000000700000000000000000200f31c2ab9');
});
