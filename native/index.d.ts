// Types of the raw pilot-datapath addon (hand-written; see native/src/lib.rs). Imported only by
// src/datapath/native.ts. Handles are opaque; numbers < 0 are -errno. IPv4 addresses are u32 a.b.c.d =
// (a<<24)|(b<<16)|(c<<8)|d. Packet meta arrays have stride 4: [offset, length, ipU32, port] per packet.

declare const socketBrand: unique symbol;
declare const aeadBrand: unique symbol;
export type NativeSocketHandle = { readonly [socketBrand]: true };
export type NativeAeadHandle = { readonly [aeadBrand]: true };

export interface NativeBinding {
  version(): string;
  /** features bit 1 = try UDP GSO on send, bit 2 = enable UDP_GRO on receive. */
  udpOpen(ipU32: number, port: number, rcvbufBytes: number, sndbufBytes: number, features: number): NativeSocketHandle | number;
  udpLocalPort(h: NativeSocketHandle): number;
  /** The route MTU towards ipU32:port (IP_MTU), or -errno. Absent in addons built before it. */
  routeMtu?(ipU32: number, port: number): number;
  /** Features in effect now (GSO drops out when the kernel refuses it). */
  udpFeatures(h: NativeSocketHandle): number;
  /** Packets handed to the kernel, or -errno when none was. With `keys`, packet i is first sealed in place
   *  (ChaCha20-Poly1305, PND1 layout: header = associated data, counter = nonce tail) with the send key of
   *  session keys[i]; 0 = send as it is. An unknown key id: -ENOKEY and nothing is sealed or sent. */
  udpSend(h: NativeSocketHandle, buf: Uint8Array, meta: Uint32Array, count: number, keys?: Uint32Array): number;
  /** Install a Noise session's keys under its local index (replacing keys there); `alg` = its data cipher
   * (1 ChaCha20-Poly1305, the default; 2 AES-256-GCM). 0 | -errno (-EOPNOTSUPP: no AES-GCM in this build/CPU). */
  udpSetSession(h: NativeSocketHandle, localIndex: number, sendKey: Uint8Array, recvKey: Uint8Array, alg?: number): number;
  /** Bitmask of the data ciphers udpSetSession takes: 1 ChaCha20-Poly1305, 2 AES-256-GCM. Absent in older builds
   * (and when the AEAD library did not initialise): ChaCha20-Poly1305 only. */
  udpSessionCiphers?(): number;
  /** Forget and wipe a session's keys. 0 | -ENOENT. */
  udpRemoveSession(h: NativeSocketHandle, localIndex: number): number;
  /** Once per socket. `onBatch(slot, count, errno)` runs on the JS thread; slot s's packets sit at
   *  buf[s*msgsPerSlot*elemBytes ...] with meta (offsets relative to the slot) at meta[s*metaPerSlot*4 ...]
   *  and a verdict per packet at status[s*metaPerSlot ...]: 0 = not opened (not a PND1 frame, or no keys
   *  for its receiver index), 1 = opened in place (plaintext at [16, length-16)), 2 = forged. The slot
   *  returns to the reader when onBatch returns. */
  udpStartRecv(
    h: NativeSocketHandle,
    buf: Uint8Array,
    meta: Uint32Array,
    status: Uint8Array,
    slots: number,
    msgsPerSlot: number,
    elemBytes: number,
    metaPerSlot: number,
    onBatch: (slot: number, count: number, errno: number) => void,
  ): number;
  udpRef(h: NativeSocketHandle, ref: boolean): number;
  /** Joins the reader thread, closes the fd. Idempotent. */
  udpClose(h: NativeSocketHandle): number;
  /** Fills out[0..10): txPackets, txBytes, txDropped, txGsoSends, rxPackets, rxBytes, rxBatches, rxDropped, lastErrno, features. */
  udpStats(h: NativeSocketHandle, out: Float64Array): number;

  /** alg 1 = ChaCha20-Poly1305 IETF, 2 = AES-256-GCM (needs AES-NI). */
  /** Which library does the AEAD work in this build. */
  aeadBackend(): 'libsodium' | 'openssl-evp';
  aeadAvailable(alg: number): boolean;
  aeadCreate(alg: number, key: Uint8Array, headerBytes: number, aadBytes: number, nonceOffset: number, nonceBytes: number): NativeAeadHandle | number;
  aeadSeal(h: NativeAeadHandle, buf: Uint8Array, meta: Uint32Array, count: number): number;
  aeadOpen(h: NativeAeadHandle, buf: Uint8Array, meta: Uint32Array, count: number, status: Uint8Array): number;
  aeadDestroy(h: NativeAeadHandle): number;
}

export declare const NATIVE_ADDON_PATH: string;
export declare function loadNativeBinding():
  | { ok: true; binding: NativeBinding }
  | { ok: false; reason: string; cause?: unknown };
