// Registry membership: register (and re-register after the registry's reconnect), push our directory state
// (hostname, visibility, tags), and hand the registry's trust events to the trust state machine.
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { err, ok, type Result } from '../core/result.js';
import type { Identity } from '../crypto/index.js';
import { parseHostname } from '../wire/hostname.js';
import type { RegistryClient, RegistryEvent } from './registry-client.js';
import type { TrustMachine } from './trust/machine.js';

export interface MembershipDeps {
  registry: Pick<RegistryClient, 'on' | 'connect' | 'register' | 'prepareRegistration' | 'setHostname' | 'setVisibility' | 'setTags' | 'deregister'>;
  identity: Identity;
  logger: Logger;
  /** host:port of the registry (its host picks the LAN address we advertise). */
  /** As given (messages), and its host (which LAN address to advertise). */
  registryAddr: string;
  registryHost: string;
  hostname: string | null;
  isPublic: boolean;
  /** The tunnel socket's bound address. */
  listenAddress(): { ip: string; port: number };
  trust: Pick<TrustMachine, 'requestReceived' | 'apply'>;
  /** (Re)registered: the node re-learns its public endpoint. */
  onRegistered(): void;
}

export class Membership {
  nodeId = 0;
  address = '0:0000.0000.0000';
  hostname: string | null;
  isPublic: boolean;
  tags: string[] = [];
  isRegistryUp = false;
  /** `pilotctl deregister` took us out of the registry; `register` (or a restart) brings us back. */
  isDeregistered = false;

  constructor(private readonly deps: MembershipDeps) {
    this.hostname = deps.hostname;
    this.isPublic = deps.isPublic;
  }

  /** Listen to the registry and register once; a failure is not fatal (the client reconnects and re-registers). */
  async start(): Promise<Result<void>> {
    this.deps.registry.on((e) => this.handle(e));
    const c = await this.deps.registry.connect();
    if (!c.ok) {
      // Not fatal: the client keeps reconnecting with backoff and registers on the first connect that works.
      this.deps.registry.prepareRegistration(this.advertisedListenAddr(), this.deps.identity.publicKey);
      return c;
    }
    const r = await this.deps.registry.register(this.advertisedListenAddr(), this.deps.identity.publicKey);
    if (!r.ok) return r;
    this.applyRegistration(r.value.nodeId, r.value.address);
    return this.applyDirectoryState();
  }

  private applyRegistration(nodeId: number, address: string): void {
    if (this.nodeId !== 0 && this.nodeId !== nodeId) {
      this.deps.logger.warn({ old: this.nodeId, new: nodeId }, 'registry assigned a different node id');
    }
    this.nodeId = nodeId;
    this.address = address;
    this.isRegistryUp = true;
    this.isDeregistered = false;
  }

  /** Push hostname, visibility and tags after (re)registration. */
  private async applyDirectoryState(): Promise<Result<void>> {
    const reg = this.deps.registry;
    if (this.hostname) {
      const h = await reg.setHostname(this.hostname);
      if (!h.ok) {
        this.deps.logger.warn({ hostname: this.hostname, error: h.error.message }, 'could not set hostname');
        if (h.error.code === 'already_exists') return h;
      }
    }
    if (this.isPublic) await reg.setVisibility(true);
    if (this.tags.length > 0) await reg.setTags(this.tags);
    return ok();
  }

  private advertisedListenAddr(): string {
    const a = this.deps.listenAddress();
    // A wildcard bind is advertised with our LAN address (the LAN shortcut for peers behind the same NAT);
    // peers elsewhere use the endpoint the beacon observed.
    const ip = a.ip === '0.0.0.0' ? lanAddress(this.deps.registryHost) : a.ip;
    return `${ip}:${a.port}`;
  }

  private handle(e: RegistryEvent): void {
    const trust = this.deps.trust;
    switch (e.kind) {
      case 'registered':
        if (this.nodeId === 0) this.deps.logger.info({ nodeId: e.result.nodeId, address: e.result.address, registry: this.deps.registryAddr }, 'registered');
        this.applyRegistration(e.result.nodeId, e.result.address);
        void this.applyDirectoryState();
        this.deps.onRegistered();
        break;
      case 'connected':
        break;
      case 'disconnected':
        this.isRegistryUp = false;
        this.deps.logger.warn({ error: e.error }, 'registry connection lost');
        break;
      case 'handshake_request': {
        const q = e.request;
        void trust.requestReceived(q.fromNodeId, { justification: q.justification, hostname: q.fromHostname ?? null, publicKey: q.fromPublicKey ?? null });
        break;
      }
      case 'handshake_response':
        void trust.apply(e.response.fromNodeId, e.response.accept ? 'response_accept' : 'response_reject');
        break;
      case 'trust_revoked':
        void trust.apply(e.byNodeId, 'revoked');
        break;
      case 'push_mode':
        this.deps.logger.info({ push: e.isPushing, original_registry: e.isOriginalRegistry }, 'registry trust delivery mode');
        break;
    }
  }

  /**
   * Register our identity now (`pilotctl register`): again after a deregister, or to announce another UDP
   * endpoint (`listenAddr`, kept for later re-registrations). The same key gets the same node id.
   * Errors: connection_failed, timeout (registry).
   */
  async register(listenAddr?: string): Promise<Result<{ nodeId: number; address: string; listenAddr: string }>> {
    const addr = listenAddr ?? this.advertisedListenAddr();
    const r = await this.deps.registry.register(addr, this.deps.identity.publicKey);
    if (!r.ok) return r;
    this.applyRegistration(r.value.nodeId, r.value.address);
    this.deps.logger.info({ nodeId: r.value.nodeId, listen_addr: addr }, 'registered (pilotctl register)');
    const d = await this.applyDirectoryState();
    if (!d.ok) return d;
    this.deps.onRegistered();
    return ok({ nodeId: r.value.nodeId, address: r.value.address, listenAddr: addr });
  }

  /** Remove this node from the registry (`pilotctl deregister`); the client stops re-registering. Errors: connection_failed. */
  async deregister(): Promise<Result<{ nodeId: number }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.deps.registry.deregister();
    if (!r.ok) return r;
    this.isDeregistered = true;
    this.deps.logger.info({ nodeId: this.nodeId }, 'deregistered (pilotctl deregister)');
    return ok({ nodeId: this.nodeId });
  }

  /** Errors: connection_failed before the first registration. */
  requireRegistered(): Result<void> {
    if (this.nodeId === 0) {
      return err('connection_failed', 'not registered with the registry yet', { hint: `check that the rendezvous at ${this.deps.registryAddr} is running` });
    }
    return ok();
  }

  async setHostname(hostname: string): Promise<Result<{ hostname: string }>> {
    const h = parseHostname(hostname);
    if (!h.ok) return h;
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.deps.registry.setHostname(hostname);
    if (!r.ok) return r;
    this.hostname = hostname;
    return ok({ hostname });
  }

  async clearHostname(): Promise<Result<{ hostname: null }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.deps.registry.setHostname('');
    if (!r.ok) return r;
    this.hostname = null;
    return ok({ hostname: null });
  }

  async setVisibility(isPublic: boolean): Promise<Result<{ public: boolean }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.deps.registry.setVisibility(isPublic);
    if (!r.ok) return r;
    this.isPublic = isPublic;
    return ok({ public: isPublic });
  }

  async setTags(tags: string[]): Promise<Result<{ tags: string[] }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.deps.registry.setTags(tags);
    if (!r.ok) return r;
    this.tags = r.value.tags;
    return ok({ tags: this.tags });
  }
}

/** The address peers on our network reach us at: loopback for a loopback registry, else our first LAN IPv4. */
function lanAddress(registryHost: string): string {
  if (registryHost === 'localhost' || registryHost.startsWith('127.')) return '127.0.0.1';
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
