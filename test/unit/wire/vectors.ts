// Golden vectors: datagrams captured between two original v0.5 daemons (/work/shared/interop/udp-frames.txt,
// ref-a = node 2 on udp 14011, ref-b = node 1 on udp 14012), and their Ed25519 identities' public keys.
// Data only; safe to import from any test.

/** t=69.222016 14012->14011 (4 bytes) */
export const PILP_FROM_NODE1 =
  '50494c50';
/** t=69.222043 14011->14012 (136 bytes) */
export const PILA_FROM_NODE2 =
  '50494c4100000002695009490f0d21b00da21866f46dbd691f56afd88453e6a73d6a3027ab11005eb9223ce53bcd005da6b2ae05168b6d7776b3ff60b048a66bf2b39df5416172f764949da31439f3446a4f176f06369f17c4990e2623d128e17bd7aa35f5cdaa91d915d3d9f530c78d40f26e367a2bfbeeb302ea818e6541b2906cd80fcffac001';
/** t=69.222919 14012->14011 (136 bytes) */
export const PILA_FROM_NODE1 =
  '50494c41000000015a8676226b255e652f41f2e9e238440ca20c98210ff70a954a29f95d9f95d87a4bf0ffce36a9a5514ec9d03f6c22e35869ee5e67a9ab85acfd5502d7b1fa9f9e330fa16a40b6d88a5cf9b117147d20272fff39bb5dc31d6a22835b191e02c9d462d3e01f18b4b0de8305729b29bf7421c990439bf6e739cfc53083e4f3793d02';
/** t=69.222257 14011->14012 (38 bytes) */
export const PILT_SYN_FROM_NODE2 =
  '50494c5411010000000000000002000000000001c000000700000000000000000200f31c2ab9';
/** t=69.223141 14012->14011 (70 bytes) */
export const PILS_FROM_NODE1 =
  '50494c5300000001da23e689000000000000000127fdba98724e90e54dad12956619d5453c85fe997a0a288876486f22b79dfaf30bec6a39486b0c2c9170be996f3faf2c5b0a';
/** t=69.223760 14011->14012 (70 bytes) */
export const PILS_FROM_NODE2 =
  '50494c53000000029f00336d000000000000000170e22d8a2f28a1b00b57096627332ebba4acd57d0aca6ffcc10d4421d82d1dae92ad7faa7e81f10d1fd283d7b4bafa312757';
/** t=69.233448 14011->14012 (76 bytes) */
export const PILS_76_FROM_NODE2 =
  '50494c53000000029f00336d0000000000000003e35323abadffdf782779c12251cdfc6f812c9052e0e4df4963df959fa92933b10cb75be29d93e5409ffd35a599f8d31032359f6e5a600a20';

/** identity-node2-ref-a.json public_key */
export const ED25519_PUB_NODE2_B64 = 'uSI85TvNAF2msq4FFottd3az/2CwSKZr8rOd9UFhcvc=';
/** identity-node1-ref-b.json public_key */
export const ED25519_PUB_NODE1_B64 = 'S/D/zjappVFOydA/bCLjWGnuXmepq4Ws/VUC17H6n54=';

export function hex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}
