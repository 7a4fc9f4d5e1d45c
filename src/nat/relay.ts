// Relay framing through the rendezvous's beacon (wire/beacon-message.ts): a tunnel frame F for node `dest`
// leaves socket 0 as beacon 0x05 relay [u32 sender][u32 dest][F]; the beacon forwards it as 0x06 relay_deliver
// [u32 sender][F] to dest's observed endpoint. The beacon forwards only frames that come from the endpoint it
// observed for `sender`, so relay frames must leave the socket that sends discover (socket 0).
import type { Result } from '../core/index.js';
import { decodeBeaconMessage, encodeBeaconMessage } from '../wire/beacon-message.js';

/** Bytes the relay adds in front of a tunnel frame (type + sender + dest). Size tunnel plaintexts for it. */
export const RELAY_OVERHEAD_BYTES = 9;

/** 0x05 relay datagram carrying `frame` (a PNI1/PNR1/PND1 tunnel frame). */
export function wrapRelay(senderNodeId: number, destNodeId: number, frame: Uint8Array): Result<Uint8Array> {
  return encodeBeaconMessage({ kind: 'relay', senderNodeId, destNodeId, payload: frame });
}

/** A 0x06 relay_deliver datagram → sender and inner frame (a view into `buf`); null for anything else. */
export function unwrapRelayDeliver(buf: Uint8Array): { senderNodeId: number; frame: Uint8Array } | null {
  const m = decodeBeaconMessage(buf);
  if (!m.ok || m.value.kind !== 'relay_deliver') return null;
  return { senderNodeId: m.value.senderNodeId, frame: m.value.payload };
}
