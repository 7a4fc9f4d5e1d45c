// Loads ../shared/interop (captures of two original v0.5 daemons and one original rendezvous on loopback).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseIdentityJson, type Identity } from '../../src/crypto/identity.js';

export function findInteropDir(): string | null {
  if (process.env.PILOT_INTEROP_CAPTURES && existsSync(process.env.PILOT_INTEROP_CAPTURES + '/udp-frames.txt')) {
    return process.env.PILOT_INTEROP_CAPTURES;
  }
  for (const up of ['../../../shared/interop', '../../../../shared/interop', '../../../../../shared/interop']) {
    const p = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(p + '/udp-frames.txt')) return p;
  }
  return existsSync('/work/shared/interop/udp-frames.txt') ? '/work/shared/interop' : null;
}

export interface TranscriptLine {
  stream: number;
  dir: 'req' | 'rep';
  len: number;
  json: string;
}

export function readTranscript(dir: string): TranscriptLine[] {
  const out: TranscriptLine[] = [];
  for (const raw of readFileSync(`${dir}/registry-transcript.txt`, 'utf8').split('\n')) {
    if (raw.trim() === '') continue;
    const m = /^stream(\d+) (daemon->registry|registry->daemon) len=(\d+) (.*)$/.exec(raw);
    if (!m) throw new Error('unparsed transcript line: ' + raw);
    out.push({ stream: Number(m[1]), dir: m[2] === 'daemon->registry' ? 'req' : 'rep', len: Number(m[3]), json: m[4]! });
  }
  return out;
}

export interface UdpFrame {
  t: number;
  srcPort: number;
  dstPort: number;
  bytes: Uint8Array;
}

export function readUdpFrames(dir: string): UdpFrame[] {
  const out: UdpFrame[] = [];
  for (const raw of readFileSync(`${dir}/udp-frames.txt`, 'utf8').split('\n')) {
    if (raw.trim() === '') continue;
    const m = /^t=([\d.]+) (\d+)->(\d+) len=(\d+) ([0-9a-f]*)$/.exec(raw);
    if (!m) throw new Error('unparsed frame line: ' + raw.slice(0, 80));
    const bytes = new Uint8Array(Buffer.from(m[5]!, 'hex'));
    if (bytes.length !== Number(m[4])) throw new Error(`length mismatch at t=${m[1]}`);
    out.push({ t: Number(m[1]), srcPort: Number(m[2]), dstPort: Number(m[3]), bytes });
  }
  return out;
}

/** Node id → identity: ref-b is node 1 (tunnel 14012), ref-a is node 2 (tunnel 14011). */
export function readIdentities(dir: string): Map<number, Identity> {
  const m = new Map<number, Identity>();
  for (const [file, node] of [['identity-node1-ref-b.json', 1], ['identity-node2-ref-a.json', 2]] as const) {
    const id = parseIdentityJson(readFileSync(`${dir}/${file}`, 'utf8'));
    if (!id.ok) throw new Error(`${file}: ${id.error.message}`);
    m.set(node, id.value);
  }
  return m;
}

export const TUNNEL_PORT_OF_NODE: Record<number, number> = { 1: 14012, 2: 14011 };
export const BEACON_PORT = 19001;
