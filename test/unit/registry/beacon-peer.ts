// A UDP client of a real beacon for the tests: sends beacon messages (or raw bytes), keeps what comes back.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { decodeBeaconMessage, encodeBeaconMessage, type BeaconMessage } from '../../../src/wire/beacon-message.js';

export class BeaconPeer {
  readonly inbox: BeaconMessage[] = [];
  private waiters: (() => void)[] = [];
  private constructor(
    readonly sock: dgram.Socket,
    private readonly defaultTimeoutMs: number,
  ) {
    sock.on('message', (m) => {
      const d = decodeBeaconMessage(m);
      if (d.ok) this.inbox.push(d.value.kind === 'relay_deliver' ? { ...d.value, payload: Uint8Array.from(d.value.payload) } : d.value);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** `defaultTimeoutMs`: how long next() waits unless told. */
  static async open(defaultTimeoutMs = 2000): Promise<BeaconPeer> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    return new BeaconPeer(sock, defaultTimeoutMs);
  }
  get port(): number {
    return this.sock.address().port;
  }
  send(m: BeaconMessage, port: number): void {
    const e = encodeBeaconMessage(m);
    assert.ok(e.ok);
    this.sock.send(e.value, port, '127.0.0.1');
  }
  sendRaw(b: Uint8Array, port: number): void {
    this.sock.send(b, port, '127.0.0.1');
  }
  async next(kind: BeaconMessage['kind'], timeoutMs = this.defaultTimeoutMs): Promise<BeaconMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.kind === kind);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for ' + kind);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
  }
  close(): void {
    this.sock.close();
  }
}
