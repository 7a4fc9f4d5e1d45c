// Test helpers: a raw registry TCP client (frames in/out, pushes kept apart) and Ed25519 signers.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '../../../src/core/logger.js';
import {
  RegistryFrameDecoder,
  bound,
  encodeRegistryFrame,
  withFreshness,
  type RegistryMessage,
} from '../../../src/wire/registry-frame.js';
import { generateSigningKeyPair, signDetached } from '../../../src/registry/signature.js';
import { RegistryServer, type RegistryServerOptions } from '../../../src/registry/server.js';
import { MemoryStore } from '../../../src/registry/store.js';

export class RawClient {
  private readonly decoder = new RegistryFrameDecoder();
  private readonly replies: RegistryMessage[] = [];
  readonly pushes: RegistryMessage[] = [];
  private waiters: (() => void)[] = [];
  isClosed = false;
  readonly closed: Promise<void>;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (chunk) => {
      const r = this.decoder.push(chunk);
      if (!r.ok) throw new Error('server sent a bad frame: ' + r.error.message);
      for (const m of r.value) {
        if (typeof m.type === 'string' && m.type.startsWith('push_')) this.pushes.push(m);
        else this.replies.push(m);
      }
      this.wake();
    });
    sock.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      sock.on('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => resolve(new RawClient(sock)));
      sock.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async waitFor<T>(take: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = take();
      if (v !== undefined) return v;
      if (this.isClosed) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  send(msg: RegistryMessage): void {
    const f = encodeRegistryFrame(msg);
    if (!f.ok) throw new Error(f.error.message);
    this.sock.write(f.value);
  }

  sendRaw(bytes: Uint8Array): void {
    this.sock.write(bytes);
  }

  reply(timeoutMs = 3000): Promise<RegistryMessage> {
    return this.waitFor(() => this.replies.shift(), timeoutMs, 'reply');
  }

  async request(msg: RegistryMessage, timeoutMs = 3000): Promise<RegistryMessage> {
    this.send(msg);
    return this.reply(timeoutMs);
  }

  push(pred: (m: RegistryMessage) => boolean, timeoutMs = 3000): Promise<RegistryMessage> {
    return this.waitFor(
      () => {
        const i = this.pushes.findIndex(pred);
        return i < 0 ? undefined : this.pushes.splice(i, 1)[0];
      },
      timeoutMs,
      'push',
    );
  }

  close(): void {
    this.sock.destroy();
  }
}

export interface TestIdentity {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  publicKeyB64: string;
  /** base64 signature over an ASCII challenge. */
  sign(text: string): string;
}

export function identityFromKeys(publicKey: Uint8Array, secretKey: Uint8Array): TestIdentity {
  return {
    publicKey,
    secretKey,
    publicKeyB64: Buffer.from(publicKey).toString('base64'),
    sign: (text) => Buffer.from(signDetached(secretKey, Buffer.from(text, 'utf8'))).toString('base64'),
  };
}

export function newIdentity(): TestIdentity {
  const kp = generateSigningKeyPair();
  return identityFromKeys(kp.publicKey, kp.secretKey);
}

/** Original-style signed request: signature over `challenge` as is. */
export function signed(id: TestIdentity, msg: RegistryMessage, challengeText: string): RegistryMessage {
  return { ...msg, signature: id.sign(challengeText) };
}

/** Replay-safe signed request: ts + nonce + signature over `<challenge>:<ts>:<nonce>`. */
export function fresh(
  id: TestIdentity,
  msg: RegistryMessage,
  challengeText: string,
  tsSec = Math.floor(Date.now() / 1000),
  nonce = randomBytes(16).toString('base64'),
): RegistryMessage {
  return { ...msg, ts: tsSec, nonce, signature: id.sign(withFreshness(challengeText, tsSec, nonce)) };
}

export async function startServer(
  extra: Partial<RegistryServerOptions> = {},
): Promise<{ server: RegistryServer; port: number }> {
  const r = await RegistryServer.start({
    host: '127.0.0.1',
    port: 0,
    store: new MemoryStore(),
    logger: silentLogger(),
    ...extra,
  });
  if (!r.ok) throw new Error(r.error.message);
  return { server: r.value, port: r.value.address().port };
}

/** Register `id` on a connection; returns the node id. */
export async function register(c: RawClient, id: TestIdentity, listenAddr = '127.0.0.1:4000'): Promise<number> {
  const r = await c.request({ type: 'register', listen_addr: listenAddr, public_key: id.publicKeyB64 });
  if (r.type !== 'register_ok') throw new Error('register failed: ' + JSON.stringify(r));
  return r.node_id as number;
}

/** Our clients' register: ts + nonce + signature over bound.register. Returns the whole reply. */
export function signedRegister(id: TestIdentity, listenAddr = '127.0.0.1:4000', hostname = '', tsSec?: number): RegistryMessage {
  const msg: RegistryMessage = { type: 'register', listen_addr: listenAddr, public_key: id.publicKeyB64 };
  if (hostname) msg.hostname = hostname;
  return fresh(id, msg, bound.register(id.publicKeyB64, hostname, listenAddr), tsSec);
}

/** Register `id` the way our clients do (the node is then ours, not legacy); returns the node id. */
export async function registerOurs(c: RawClient, id: TestIdentity, listenAddr = '127.0.0.1:4000', hostname = ''): Promise<number> {
  const r = await c.request(signedRegister(id, listenAddr, hostname));
  if (r.type !== 'register_ok') throw new Error('signed register failed: ' + JSON.stringify(r));
  return r.node_id as number;
}
