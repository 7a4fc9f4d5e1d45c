// `pilotctl init` and `pilotctl rotate-key` (issue 14, identity lifecycle; docs/keys.md).
//   init: the home, the identity key and a recovery key (printed once; written to --recovery-file only when asked),
//         plus config.json settings given as flags — without starting the daemon. `daemon start` then uses them.
//   rotate-key: through the running daemon (signed by the current key, or by the recovery key); with the daemon
//         stopped and the key lost, straight to the registry with the recovery key (--node-id says which node),
//         writing the new identity file the next `daemon start` uses.
import { existsSync, readFileSync } from 'node:fs';
import { err, ok, type Result } from '../core/result.js';
import { homePaths, prepareHome } from '../node/home.js';
import { createIdentityFile, createRecoveryKey, parseRecoveryKey } from '../node/identity-store.js';
import { recoverWithRegistry } from '../node/key-rotation.js';
import type { KeyRotationInfo } from '../node/api.js';
import { configKey, effectiveValue, loadConfig, parseConfigValue, saveConfig, type ConfigValue } from './config-cmd.js';
import { defineCommand, type Command } from './command.js';
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
    let recovery: { recoveryKey: string; recoveryPublicKey: string } | null = null;
    if (p.hasRecovery) {
      const r = createRecoveryKey(paths.home, p.recoveryFile);
      if (!r.ok) return r;
      recovery = r.value;
    }
    if (p.settings.length > 0) {
      for (const s of p.settings) cfg.value[s.key] = s.value;
      const saved = saveConfig(paths.home, cfg.value);
      if (!saved.ok) return saved;
    }
    const data = {
      home: paths.home,
      identity_file: identityPath,
      public_key: id.value.publicKeyB64,
      recovery_key: recovery?.recoveryKey ?? null,
      recovery_public_key: recovery?.recoveryPublicKey ?? null,
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
  recoveryFile: string | null;
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
    const recoveryText: string | null = typeof key === 'string' ? key : null;
    if (recoveryText !== null) {
      const r = parseRecoveryKey(recoveryText);
      if (!r.ok) return r;
    }
    const recoveryFile = typeof file === 'string' ? file : null;
    const nodeIdText = a.flags.get('node-id');
    let nodeId: number | null = null;
    if (typeof nodeIdText === 'string') {
      const n = checkNodeId(nodeIdText);
      if (!n.ok) return n;
      nodeId = n.value;
    }
    if (nodeId !== null && recoveryText === null && recoveryFile === null) return err('invalid_argument', '--node-id is for the recovery path: add --recovery-key or --recovery-file');
    const registry = a.flags.get('registry');
    return ok({ recoveryText, recoveryFile, nodeId, registry: typeof registry === 'string' ? registry : null });
  },
  async run(ctx, params) {
    const p = { ...params };
    if (p.recoveryFile !== null) {
      try {
        p.recoveryText = readFileSync(p.recoveryFile, 'utf8');
      } catch (e) {
        return err('invalid_argument', `cannot read --recovery-file ${p.recoveryFile}: ${(e as Error).message}`);
      }
      const r = parseRecoveryKey(p.recoveryText);
      if (!r.ok) return r;
    }
    const c = await ctx.client();
    if (c.ok && p.nodeId !== null) {
      return err('invalid_argument', '--node-id is for a lost key with the daemon stopped; the running daemon rotates its own node', {
        hint: 'drop --node-id, or stop the daemon first (pilotctl daemon stop)',
      });
    }
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
    const paths = homePaths(ctx.home);
    const home = prepareHome(paths.home);
    if (!home.ok) return home;
    const cfg = loadConfig(paths.home);
    if (!cfg.ok) return cfg;
    const r = await recoverWithRegistry({
      registryAddr: p.registry ?? String(effectiveValue(configKey('registry')!, cfg.value, ctx.io.env, paths.home).value),
      nodeId: p.nodeId,
      recoveryKeyText: p.recoveryText,
      identityPath: String(effectiveValue(configKey('identity')!, cfg.value, ctx.io.env, paths.home).value ?? paths.identity),
      home: paths.home,
      nowMs: Date.now(),
      ...(ctx.timeoutMs !== undefined ? { connectTimeoutMs: ctx.timeoutMs } : {}),
    });
    if (!r.ok) return r;
    return ok({ data: { ...r.value, via: 'registry' }, text: rotatedText(r.value, 'registry') });
  },
});

function rotatedText(r: KeyRotationInfo, via: 'daemon' | 'registry'): string {
  const next = via === 'registry' ? '\nnext: pilotctl daemon start (it uses the new key; peers that trust the node follow)\n' : '\ntrusting peers follow without a new handshake; the old key is refused from now on\n';
  return `identity key of node ${r.node_id} rotated (${r.by === 'recovery' ? 'signed by the recovery key' : 'signed by the old key'})\n` +
    fields([['old key', r.old_public_key || '(unknown)'], ['new key', r.new_public_key], ['identity', r.identity_file]]) + next;
}

export const KEY_COMMANDS: Command[] = [init, rotateKey];
