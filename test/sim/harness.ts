// Shared helpers for the simulation tests: deterministic payloads, rate formatting, Jain's fairness index.
import { Rng } from '../../src/core/rng.js';

/** `n` pseudo-random bytes from `seed` (fast: one u32 per 4 bytes). */
export function randomBytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const words = new Uint32Array(Math.ceil(n / 4));
  for (let i = 0; i < words.length; i++) words[i] = rng.nextU32();
  return new Uint8Array(words.buffer, 0, n);
}

export function mbit(bytesPerSecond: number): string {
  return ((bytesPerSecond * 8) / 1e6).toFixed(1);
}

/** Jain's fairness index of the throughputs: (Σx)² / (n·Σx²); 1 = perfectly fair. */
export function jainIndex(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return (sum * sum) / (xs.length * sq);
}
