// Event stream (port 1002) events, byte-identical to the original
// (TeoSlayer/pilotprotocol, pkg/eventstream/eventstream.go):
//
//   event = [u16 BE topic length][topic bytes][u32 BE payload length][payload]
//
// ReadEvent refuses topic length > 1024 ("topic too long") and payload length > 1<<24 ("payload too
// large"); the broker then drops that connection. The first event a client sends is its subscription
// (payload ignored, topic "*" = everything); every later event is a publish
// (pkg/daemon/services.go, eventBroker.handleConn).
import { err, ok, type Result } from '../core/result.js';

export const TOPIC_LEN_BYTES = 2;
export const PAYLOAD_LEN_BYTES = 4;
export const MAX_TOPIC_BYTES = 1024;
export const MAX_EVENT_PAYLOAD_BYTES = 1 << 24;
export const TOPIC_WILDCARD = '*';

export interface StreamEvent {
  topic: string;
  payload: Uint8Array;
}

export function encodeEvent(topic: string, payload: Uint8Array): Result<Uint8Array> {
  const topicBytes = Buffer.from(topic, 'utf8');
  if (topicBytes.length > MAX_TOPIC_BYTES) {
    return err('invalid_argument', `topic too long: ${topicBytes.length} bytes (max ${MAX_TOPIC_BYTES})`);
  }
  if (payload.length > MAX_EVENT_PAYLOAD_BYTES) {
    return err('invalid_argument', `payload too large: ${payload.length} bytes (max ${MAX_EVENT_PAYLOAD_BYTES})`);
  }
  const out = new Uint8Array(TOPIC_LEN_BYTES + topicBytes.length + PAYLOAD_LEN_BYTES + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, topicBytes.length, false);
  out.set(topicBytes, TOPIC_LEN_BYTES);
  dv.setUint32(TOPIC_LEN_BYTES + topicBytes.length, payload.length, false);
  out.set(payload, TOPIC_LEN_BYTES + topicBytes.length + PAYLOAD_LEN_BYTES);
  return ok(out);
}

/** Validate the 2-byte topic length prefix. */
export function decodeTopicLength(bytes: Uint8Array, maxTopicBytes = MAX_TOPIC_BYTES): Result<number> {
  if (bytes.length < TOPIC_LEN_BYTES) return err('invalid_argument', 'topic length needs 2 bytes');
  const n = (bytes[0]! << 8) | bytes[1]!;
  if (n > maxTopicBytes) return err('invalid_argument', `topic too long: ${n}`, { detail: { bytes: n, max_bytes: maxTopicBytes } });
  return ok(n);
}

/** Validate the 4-byte payload length prefix. */
export function decodePayloadLength(bytes: Uint8Array, maxPayloadBytes = MAX_EVENT_PAYLOAD_BYTES): Result<number> {
  if (bytes.length < PAYLOAD_LEN_BYTES) return err('invalid_argument', 'payload length needs 4 bytes');
  const n = new DataView(bytes.buffer, bytes.byteOffset, PAYLOAD_LEN_BYTES).getUint32(0, false);
  if (n > maxPayloadBytes) {
    return err('invalid_argument', `payload too large: ${n}`, { detail: { bytes: n, max_bytes: maxPayloadBytes } });
  }
  return ok(n);
}

/** Decode one event from the front of `bytes`; ok(null) when more bytes are needed. Never throws. */
export function decodeEvent(
  bytes: Uint8Array,
  limits: { maxTopicBytes?: number; maxPayloadBytes?: number } = {},
): Result<{ event: StreamEvent; eventBytes: number } | null> {
  if (bytes.length < TOPIC_LEN_BYTES) return ok(null);
  const tl = decodeTopicLength(bytes, limits.maxTopicBytes);
  if (!tl.ok) return tl;
  const plOff = TOPIC_LEN_BYTES + tl.value;
  if (bytes.length < plOff + PAYLOAD_LEN_BYTES) return ok(null);
  const pl = decodePayloadLength(bytes.subarray(plOff), limits.maxPayloadBytes);
  if (!pl.ok) return pl;
  const end = plOff + PAYLOAD_LEN_BYTES + pl.value;
  if (bytes.length < end) return ok(null);
  return ok({
    event: {
      topic: Buffer.from(bytes.subarray(TOPIC_LEN_BYTES, plOff)).toString('utf8'),
      payload: bytes.subarray(plOff + PAYLOAD_LEN_BYTES, end),
    },
    eventBytes: end,
  });
}
