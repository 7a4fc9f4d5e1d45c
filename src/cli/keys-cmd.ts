// `pilotctl init` and `pilotctl rotate-key` (issue 14, identity lifecycle; docs/keys.md).
//   init: the home, the identity key and a recovery key (printed once; written to --recovery-file only when asked),
//         plus config.json settings given as flags — without starting the daemon. `daemon start` then uses them.
//   rotate-key: through the running daemon (signed by the current key, or by the recovery key); with the daemon
//         stopped and the key lost, straight to the registry with the recovery key (--node-id says which node),
//         writing the new identity file the next `daemon start` uses.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { err, ok, type Result } from '../core/result.js';
import { generateIdentity, sign, toBase64, type Identity } from '../crypto/identity.js';
import { signRotation } from '../crypto/key-rotation.js';
import { homePaths, prepareHome } from '../node/home.js';
import {
  createIdentityFile,
  formatRecoveryKey,
  parseRecoveryKey,
  readRecoveryPublic,
  saveIdentity,
  writeRecoveryFile,
  writeRecoveryPublic,
} from '../node/identity-store.js';
import { RegistryClient } from '../node/registry-client.js';
import type { KeyRotationInfo } from '../node/api.js';
import { configKey, effectiveValue, loadConfig, parseConfigValue, saveConfig, type ConfigValue } from './config-cmd.js';
import { defineCommand, type CliContext, type Command } from './command.js';
import { checkNodeId } from './validate.js';
import { fields } from './output.js';

const INIT_SETTINGS = ['registry', 'beacon', 'hostname'] as const;

interface InitParams {
  recoveryFile: string | null;
  hasRecovery: boolean;
  settings: Array<{ key: string; value: ConfigValue }>;
}

const init = defineCommand<InitParams>({
  name: 'init',
  group: 'Bootstrap',
  summary: 'Create the identity key, a recovery key (printed once) and config.json, without starting the daemon',
  args: [],
  flags: [
    { name: 'recovery-file', kind: 'string', value: '<path>', description: 'also write the recovery private key to this file (mode 0600, never over an existing file)' },
    { name: 'no-recovery', kind: 'bool', description: 'make no recovery key (a lost identity key then means a new node)' },
    { name: 'registry', kind: 'string', value: '<host:port>', description: 'rendezvous registry to write to config.json' },
    { name: 'beacon', kind: 'string', value: '<host:port>', description: 'rendezvous beacon to write to config.json' },
    { name: 'hostname', kind: 'string', value: '<name>', description: 'hostname to write to config.json' },
  ],
  returns: 'home, identity_file, public_key, recovery_key (shown once, or null), recovery_public_key, recovery_file, config_path, config',
  errors: ['already_exists', 'unsafe_home', 'internal'],
  parse(a) {
    const settings: InitParams['settings'] = [];
    for (const key of INIT_SETTINGS) {
      const raw = a.flags.get(key);
      if (typeof raw !== 'string') continue;
      const v = parseConfigValue(configKey(key)!, raw);
      if (!v.ok) return v;
      settings.push({ key, value: v.value });
    }
    const file = a.flags.get('recovery-file');
    const hasRecovery = a.flags.get('no-recovery') !== true;
    if (!hasRecovery && typeof file === 'string') return err('invalid_argument', '--recovery-file and --no-recovery contradict each other');
    return ok({ recoveryFile: typeof file === 'string' ? file : null, hasRecovery, settings });
  },
  async run(ctx, p) {
    const paths = homePaths(ctx.home);
    const home = prepareHome(paths.home);
    if (!home.ok) return home;
    const cfg = loadConfig(paths.home);
    if (!cfg.ok) return cfg;
    const identityPath = String(effectiveValue(configKey('identity')!, cfg.value, ctx.io.env, paths.home).value ?? paths.identity);
    if (p.recoveryFile && existsSync(p.recoveryFile)) {
      return err('already_exists', `${p.recoveryFile} exists; the recovery key is never written over a file`, { hint: 'pass another --recovery-file path' });
    }
    const id = createIdentityFile(identityPath);
    if (!id.ok) return id;
    let recovery: Identity | null = null;
    if (p.hasRecovery) {
      recovery = generateIdentity();
      const pub = writeRecoveryPublic(paths.home, recovery.publicKey);
      if (!pub.ok) return pub;
      if (p.recoveryFile) {
        const w = writeRecoveryFile(p.recoveryFile, recovery);
        if (!w.ok) return w;
      }
    }
    if (p.settings.length > 0) {
      for (const s of p.settings) cfg.value[s.key] = s.value;
      const saved = saveConfig(paths.home, cfg.value);
      if (!saved.ok) return saved;
    }
    const data = {
      home: paths.home,
      identity_file: identityPath,
      public_key: toBase64(id.value.publicKey),
      recovery_key: recovery ? formatRecoveryKey(recovery) : null,
      recovery_public_key: recovery ? toBase64(recovery.publicKey) : null,
      recovery_file: p.recoveryFile,
      config_path: paths.config,
      config: cfg.value,
    };
    let text = `initialised ${paths.home}\n` + fields([
      ['identity', identityPath],
      ['public key', data.public_key],
      ['config', p.settings.length ? paths.config : '(unchanged)'],
    ]);
    if (recovery) {
      text +=
        `\nRECOVERY KEY (shown once; store it offline — it can take this node back if its key is lost):\n  ${data.recovery_key}\n` +
        (p.recoveryFile ? `  also written to ${p.recoveryFile} (0600)\n` : '  it was written nowhere: copy it now\n');
    }
    text += '\nnext: pilotctl daemon start\n';
    return ok({ data, text });
  },
});

interface RotateParams {
  recoveryText: string | null;
  nodeId: number | null;
  registry: string | null;
}

const rotateKey = defineCommand<RotateParams>({
  name: 'rotate-key',
  group: 'Bootstrap',
  summary: 'Replace the identity key; trusting peers follow without a new handshake and the old key stops working',
  args: [],
  flags: [
    { name: 'recovery-key', kind: 'string', value: '<key>', description: 'sign with the recovery key `init` printed instead of the current key' },
    { name: 'recovery-file', kind: 'string', value: '<path>', description: 'read the recovery key from this file (as written by init --recovery-file)' },
    { name: 'node-id', kind: 'string', value: '<id>', description: 'with the daemon stopped (key lost): the node to take back' },
    { name: 'registry', kind: 'string', value: '<host:port>', description: 'with the daemon stopped: the registry (default: config/PILOT_REGISTRY)' },
  ],
  returns: 'node_id, old_public_key, new_public_key, by (local|recovery), identity_file, via (daemon|registry)',
  errors: ['not_running', 'not_found', 'key_retired', 'already_exists', 'connection_failed', 'timeout', 'internal'],
  parse(a) {
    const key = a.flags.get('recovery-key');
    const file = a.flags.get('recovery-file');
    if (typeof key === 'string' && typeof file === 'string') return err('invalid_argument', 'give --recovery-key or --recovery-file, not both');
    let recoveryText: string | null = typeof key === 'string' ? key : null;
    if (typeof file === 'string') {
      try {
        recoveryText = readFileSync(file, 'utf8');
      } catch (e) {
        return err('invalid_argument', `cannot read --recovery-file ${file}: ${(e as Error).message}`);
      }
    }
    if (recoveryText !== null) {
      const r = parseRecoveryKey(recoveryText);
      if (!r.ok) return r;
    }
    const nodeIdText = a.flags.get('node-id');
    let nodeId: number | null = null;
    if (typeof nodeIdText === 'string') {
      const n = checkNodeId(nodeIdText);
      if (!n.ok) return n;
      nodeId = n.value;
    }
    if (nodeId !== null && recoveryText === null) return err('invalid_argument', '--node-id is for the recovery path: add --recovery-key or --recovery-file');
    const registry = a.flags.get('registry');
    return ok({ recoveryText, nodeId, registry: typeof registry === 'string' ? registry : null });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (c.ok) {
      const r = await c.value.rotateKey(p.recoveryText !== null ? { recoveryKey: p.recoveryText } : {});
      if (!r.ok) return r;
      return ok({ data: { ...r.value, via: 'daemon' }, text: rotatedText(r.value, 'daemon') });
    }
    if (c.error.code !== 'not_running' || p.recoveryText === null) return c;
    if (p.nodeId === null) {
      return err('invalid_argument', 'the daemon is not running: recovering a lost key needs --node-id (the node id `pilotctl info` showed)', {
        hint: 'pilotctl rotate-key --recovery-file PATH --node-id N',
      });
    }
    const r = await recoverOffline(ctx, p.recoveryText, p.nodeId, p.registry);
    if (!r.ok) return r;
    return ok({ data: { ...r.value, via: 'registry' }, text: rotatedText(r.value, 'registry') });
  },
});

function rotatedText(r: KeyRotationInfo, via: 'daemon' | 'registry'): string {
  const next = via === 'registry' ? '\nnext: pilotctl daemon start (it uses the new key; peers that trust the node follow)\n' : '\ntrusting peers follow without a new handshake; the old key is refused from now on\n';
  return `identity key of node ${r.node_id} rotated (${r.by === 'recovery' ? 'signed by the recovery key' : 'signed by the old key'})\n` +
    fields([['old key', r.old_public_key || '(unknown)'], ['new key', r.new_public_key], ['identity', r.identity_file]]) + next;
}

/**
 * The lost-key path: the daemon is stopped, so this process talks to the registry itself, rotates node `nodeId`
 * onto a fresh key signed by the recovery key (and the new key), then writes the new identity file (an old one is
 * kept aside as identity.json.retired-<ms>). Errors: the registry's (invalid_argument: no/another recovery key,
 * key_retired), connection_failed, internal. Does network and file-system I/O.
 */
async function recoverOffline(ctx: CliContext, recoveryText: string, nodeId: number, registryFlag: string | null): Promise<Result<KeyRotationInfo>> {
  const recovery = parseRecoveryKey(recoveryText);
  if (!recovery.ok) return recovery;
  const paths = homePaths(ctx.home);
  const home = prepareHome(paths.home);
  if (!home.ok) return home;
  const cfg = loadConfig(paths.home);
  if (!cfg.ok) return cfg;
  const registryAddr = registryFlag ?? String(effectiveValue(configKey('registry')!, cfg.value, ctx.io.env, paths.home).value);
  const identityPath = String(effectiveValue(configKey('identity')!, cfg.value, ctx.io.env, paths.home).value ?? paths.identity);
  const next = generateIdentity();
  let oldKey = '';
  const client = new RegistryClient({ registryAddr, sign: (m) => sign(next, m), connectTimeoutMs: ctx.timeoutMs ?? 5_000 });
  try {
    const conn = await client.connect();
    if (!conn.ok) return err('connection_failed', `${conn.error.message}: the recovery path talks to the registry directly (plain TCP)`, { hint: 'check --registry / `pilotctl config get registry`' });
    let tsSec = Math.floor(Date.now() / 1000);
    for (let attempt = 0; ; attempt++) {
      const statement = signRotation({ nodeId, next, recovery: recovery.value, tsSec, nonce: randomBytes(16).toString('base64'), oldPublicKeyB64: '' });
      const r = await client.rotateKey(statement);
      // A clock off by more than the registry's window: its refusal says its time; once more with that.
      const serverTime = !r.ok ? r.error.detail?.serverTime : undefined;
      if (!r.ok && typeof serverTime === 'number' && attempt === 0) {
        tsSec = serverTime;
        continue;
      }
      if (!r.ok) return r;
      oldKey = r.value.oldPublicKey;
      break;
    }
  } finally {
    await client.close();
  }
  if (existsSync(identityPath)) {
    try {
      renameSync(identityPath, `${identityPath}.retired-${Date.now()}`);
    } catch (cause) {
      return err('internal', `the registry moved to the new key, but ${identityPath} could not be moved aside`, { cause, hint: `the new key is not written; move ${identityPath} away and recover again` });
    }
  }
  const saved = saveIdentity(identityPath, next);
  if (!saved.ok) return saved;
  if (readRecoveryPublic(paths.home) === null) {
    const pub = writeRecoveryPublic(paths.home, recovery.value.publicKey);
    if (!pub.ok) return pub;
  }
  return ok({ node_id: nodeId, old_public_key: oldKey, new_public_key: toBase64(next.publicKey), by: 'recovery', identity_file: identityPath });
}

export const KEY_COMMANDS: Command[] = [init, rotateKey];
