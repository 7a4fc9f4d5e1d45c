// The original pilotctl's Unix-socket protocol (SPEC.md §6; the original's pkg/daemon/ipc.go, pkg/driver/ipc.go,
// internal/ipcutil): frames are [u32 BE length ≤ 1 MiB][u8 command][payload], binary, one request at a time
// per reply type. Where the code and SPEC §6 disagree the code wins: Accept carries the local port first
// ([u16 port][u32 conn][6 addr][u16 port]) and RecvFrom carries both ports ([6 addr][u16 src][u16 dst][data]).
// Pure codec: bytes in, values out; no I/O.
import { err, ok, type Result } from '../core/result.js';
import { readAddr, writeAddr, type VirtualAddr } from '../wire/address.js';
import { readU16, readU32, writeU16, writeU32 } from '../wire/bytes.js';

export const LEGACY_IPC_MAX_MESSAGE = 1 << 20;

export const LegacyCmd = {
  Bind: 0x01,
  BindOK: 0x02,
  Dial: 0x03,
  DialOK: 0x04,
  Accept: 0x05,
  Send: 0x06,
  Recv: 0x07,
  Close: 0x08,
  CloseOK: 0x09,
  Error: 0x0a,
  SendTo: 0x0b,
  RecvFrom: 0x0c,
  Info: 0x0d,
  InfoOK: 0x0e,
  Handshake: 0x0f,
  HandshakeOK: 0x10,
  ResolveHostname: 0x11,
  ResolveHostnameOK: 0x12,
  SetHostname: 0x13,
  SetHostnameOK: 0x14,
  SetVisibility: 0x15,
  SetVisibilityOK: 0x16,
  Deregister: 0x17,
  DeregisterOK: 0x18,
  SetTags: 0x19,
  SetTagsOK: 0x1a,
  SetWebhook: 0x1b,
  SetWebhookOK: 0x1c,
  SetTaskExec: 0x1d,
  SetTaskExecOK: 0x1e,
} as const;

export const LEGACY_HANDSHAKE_SUBS = { 1: 'send', 2: 'approve', 3: 'reject', 4: 'pending', 5: 'trusted', 6: 'revoke' } as const;
export type LegacyHandshakeSub = (typeof LEGACY_HANDSHAKE_SUBS)[keyof typeof LEGACY_HANDSHAKE_SUBS];

export type LegacyIpcRequest =
  | { cmd: 'bind'; port: number }
  | { cmd: 'dial'; addr: VirtualAddr; port: number }
  | { cmd: 'send'; connId: number; data: Uint8Array }
  | { cmd: 'close'; connId: number }
  | { cmd: 'send_to'; addr: VirtualAddr; port: number; data: Uint8Array }
  | { cmd: 'info' }
  | { cmd: 'handshake'; sub: LegacyHandshakeSub; nodeId: number; text: string }
  | { cmd: 'resolve_hostname'; hostname: string }
  | { cmd: 'set_hostname'; hostname: string }
  | { cmd: 'set_visibility'; isPublic: boolean }
  | { cmd: 'deregister' }
  | { cmd: 'set_tags'; tags: string[] }
  | { cmd: 'set_webhook'; url: string }
  | { cmd: 'set_task_exec'; isEnabled: boolean };

const utf8 = new TextDecoder();
const enc = new TextEncoder();

/**
 * Decode one driver → daemon message (without its length prefix). Errors carry the original daemon's message
 * text ("bind: missing port", "unknown command: 0x2A") so the server can send them back verbatim. Never throws.
 */
export function decodeLegacyIpcRequest(msg: Uint8Array): Result<LegacyIpcRequest> {
  if (!(msg instanceof Uint8Array) || msg.length < 1) return err('invalid_argument', 'empty message');
  const p = msg.subarray(1);
  const bad = (m: string) => err<LegacyIpcRequest>('invalid_argument', m);
  switch (msg[0]) {
    case LegacyCmd.Bind:
      return p.length < 2 ? bad('bind: missing port') : ok({ cmd: 'bind', port: readU16(p, 0) });
    case LegacyCmd.Dial:
      return p.length < 8 ? bad('dial: missing address/port') : ok({ cmd: 'dial', addr: readAddr(p, 0), port: readU16(p, 6) });
    case LegacyCmd.Send:
      return p.length < 4 ? bad('send: missing conn_id') : ok({ cmd: 'send', connId: readU32(p, 0), data: p.subarray(4) });
    case LegacyCmd.Close:
      return p.length < 4 ? bad('close: missing conn_id') : ok({ cmd: 'close', connId: readU32(p, 0) });
    case LegacyCmd.SendTo:
      return p.length < 8 ? bad('sendto: missing address/port') : ok({ cmd: 'send_to', addr: readAddr(p, 0), port: readU16(p, 6), data: p.subarray(8) });
    case LegacyCmd.Info:
      return ok({ cmd: 'info' });
    case LegacyCmd.Handshake: {
      if (p.length < 1) return bad('handshake: missing sub-command');
      const sub = LEGACY_HANDSHAKE_SUBS[p[0] as keyof typeof LEGACY_HANDSHAKE_SUBS];
      if (sub === undefined) return bad(`handshake: unknown sub-command 0x${hex2(p[0]!)}`);
      const rest = p.subarray(1);
      const needsNode = sub !== 'pending' && sub !== 'trusted';
      if (needsNode && rest.length < 4) return bad(`handshake ${sub === 'send' ? 'request' : sub}: missing node_id`);
      return ok({ cmd: 'handshake', sub, nodeId: needsNode ? readU32(rest, 0) : 0, text: rest.length > 4 ? utf8.decode(rest.subarray(4)) : '' });
    }
    case LegacyCmd.ResolveHostname: {
      const hostname = utf8.decode(p);
      return hostname === '' ? bad('resolve_hostname: missing hostname') : ok({ cmd: 'resolve_hostname', hostname });
    }
    case LegacyCmd.SetHostname:
      return ok({ cmd: 'set_hostname', hostname: utf8.decode(p) });
    case LegacyCmd.SetVisibility:
      return p.length < 1 ? bad('set_visibility: missing value') : ok({ cmd: 'set_visibility', isPublic: p[0] === 1 });
    case LegacyCmd.Deregister:
      return ok({ cmd: 'deregister' });
    case LegacyCmd.SetTags: {
      let tags: unknown;
      try {
        tags = JSON.parse(utf8.decode(p));
      } catch (e) {
        return bad(`set_tags: invalid JSON: ${(e as Error).message}`);
      }
      // Go's json.Unmarshal into []string accepts null as an empty list.
      if (tags === null) tags = [];
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) return bad('set_tags: invalid JSON: not an array of strings');
      return tags.length > 3 ? bad('set_tags: maximum 3 tags allowed') : ok({ cmd: 'set_tags', tags: tags as string[] });
    }
    case LegacyCmd.SetWebhook:
      return ok({ cmd: 'set_webhook', url: utf8.decode(p) });
    case LegacyCmd.SetTaskExec:
      return p.length < 1 ? bad('set_task_exec: missing value') : ok({ cmd: 'set_task_exec', isEnabled: p[0] === 1 });
    default:
      return bad(`unknown command: 0x${hex2(msg[0]!)}`);
  }
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}

/** Length-prefix one message (ipcutil.Write). */
export function frameLegacyIpc(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + msg.length);
  writeU32(out, 0, msg.length);
  out.set(msg, 4);
  return out;
}

/** Splits a byte stream into messages (ipcutil.Read); a length over 1 MiB is a protocol error (drop the client). */
export class LegacyIpcFramer {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): Result<Uint8Array[]> {
    const merged = new Uint8Array(this.buf.length + chunk.length);
    merged.set(this.buf, 0);
    merged.set(chunk, this.buf.length);
    const out: Uint8Array[] = [];
    let off = 0;
    while (merged.length - off >= 4) {
      const len = readU32(merged, off);
      if (len > LEGACY_IPC_MAX_MESSAGE) {
        return err('invalid_argument', `ipc message too large: ${len} bytes (max ${LEGACY_IPC_MAX_MESSAGE})`);
      }
      if (merged.length - off - 4 < len) break;
      out.push(merged.slice(off + 4, off + 4 + len));
      off += 4 + len;
    }
    this.buf = merged.slice(off);
    return ok(out);
  }
}

// ---- daemon → driver ----

function msg(cmd: number, size: number): Uint8Array {
  const m = new Uint8Array(1 + size);
  m[0] = cmd;
  return m;
}

export function encodeLegacyBindOk(port: number): Uint8Array {
  const m = msg(LegacyCmd.BindOK, 2);
  writeU16(m, 1, port);
  return m;
}

export function encodeLegacyDialOk(connId: number): Uint8Array {
  const m = msg(LegacyCmd.DialOK, 4);
  writeU32(m, 1, connId);
  return m;
}

/** A connection accepted on `localPort` (the driver routes it to that port's listener). */
export function encodeLegacyAccept(localPort: number, connId: number, remote: VirtualAddr, remotePort: number): Uint8Array {
  const m = msg(LegacyCmd.Accept, 2 + 4 + 6 + 2);
  writeU16(m, 1, localPort);
  writeU32(m, 3, connId);
  writeAddr(m, 7, remote);
  writeU16(m, 13, remotePort);
  return m;
}

export function encodeLegacyRecv(connId: number, data: Uint8Array): Uint8Array {
  const m = msg(LegacyCmd.Recv, 4 + data.length);
  writeU32(m, 1, connId);
  m.set(data, 5);
  return m;
}

/** Both the reply to Close and the daemon's "this connection ended" notice. */
export function encodeLegacyCloseOk(connId: number): Uint8Array {
  const m = msg(LegacyCmd.CloseOK, 4);
  writeU32(m, 1, connId);
  return m;
}

/** The original always sends code 1; the driver shows "daemon: <message>". */
export function encodeLegacyError(message: string, code = 1): Uint8Array {
  const text = enc.encode(message);
  const m = msg(LegacyCmd.Error, 2 + text.length);
  writeU16(m, 1, code);
  m.set(text, 3);
  return m;
}

export function encodeLegacyRecvFrom(src: VirtualAddr, srcPort: number, dstPort: number, data: Uint8Array): Uint8Array {
  const m = msg(LegacyCmd.RecvFrom, 6 + 2 + 2 + data.length);
  writeAddr(m, 1, src);
  writeU16(m, 7, srcPort);
  writeU16(m, 9, dstPort);
  m.set(data, 11);
  return m;
}

/** InfoOK, HandshakeOK, ResolveHostnameOK, SetHostnameOK, …: the command byte then JSON. */
export function encodeLegacyJson(cmd: number, value: unknown): Uint8Array {
  const text = enc.encode(JSON.stringify(value));
  const m = msg(cmd, text.length);
  m.set(text, 1);
  return m;
}

/** The largest data chunk one Recv message carries. */
export const LEGACY_IPC_MAX_RECV_CHUNK = LEGACY_IPC_MAX_MESSAGE - 5;
