// 32-bit wire fields (seq, ack, packet numbers) ↔ 53-bit integers kept in memory.
// Like QUIC's packet-number decoding (RFC 9000 §A.3), the wire value is taken as the integer nearest to a
// value we expect; that is exact while the true value lies within ±2^31 of the expectation.

/** The integer ≡ `wire` (mod 2^32) nearest to `expected` (≥ 0). May be negative for garbage input. */
export function unwrapU32(wire: number, expected: number): number {
  const low = expected >>> 0; // ToUint32 is exact modulo 2^32 for integers below 2^53
  // `| 0` is an exact ToInt32: the signed 32-bit distance from expected's low bits to the wire value.
  return expected + ((wire - low) | 0);
}

/** Low 32 bits of a non-negative integer below 2^53. */
export function wrapU32(v: number): number {
  return v >>> 0;
}
