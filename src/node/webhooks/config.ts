// The webhook's configuration: parsing and checking what `set-webhook` and `--webhook` give (pure), and the
// file it is kept in, <home>/webhook.json (0600: it holds the secret), so set-webhook survives restarts.
import { join } from 'node:path';
import { err, ok, type Result } from '../../core/result.js';
import { NODE_EVENT_TYPES } from '../events.js';
import { readJsonFile, writeJsonFile } from '../json-file.js';
import type { WebhookTarget } from './queue.js';

export const WEBHOOK_CONFIG_FILE = 'webhook.json';
export const WEBHOOK_QUEUE_FILE = 'webhook-queue.json';

export function webhookConfigPath(home: string): string {
  return join(home, WEBHOOK_CONFIG_FILE);
}

export function webhookQueuePath(home: string): string {
  return join(home, WEBHOOK_QUEUE_FILE);
}

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]', '::1']);

function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host) || host.endsWith('.localhost');
}

/**
 * Checks a webhook URL: http or https, a host, no fragment. Errors: invalid_argument. Pure.
 * Returns the URL as given (normalised by WHATWG URL).
 */
export function parseWebhookUrl(raw: string): Result<URL> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return err('invalid_argument', `invalid webhook URL '${raw}'`, { hint: 'a full URL such as https://example.com/pilot-hook' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return err('invalid_argument', `webhook URL must be http:// or https://, not ${u.protocol}`, { hint: 'use https://host/path' });
  }
  if (u.hostname === '') return err('invalid_argument', `webhook URL '${raw}' has no host`);
  if (u.hash !== '') return err('invalid_argument', 'webhook URL must not have a #fragment');
  return ok(u);
}

/** Warnings `webhook status` shows for a URL (plain http to another machine). Pure. */
export function urlWarnings(url: string): string[] {
  const u = parseWebhookUrl(url);
  if (!u.ok) return [u.error.message];
  if (u.value.protocol === 'http:' && !isLoopbackHost(u.value.hostname)) {
    return [`http:// to ${u.value.hostname}, a host that is not loopback: events travel unencrypted (the signature still proves they are ours); prefer https://`];
  }
  return [];
}

/** The URL without user:password and with query values masked (they often hold tokens), for status output. */
export function displayUrl(url: string): string {
  const u = parseWebhookUrl(url);
  if (!u.ok) return '(invalid)';
  const v = new URL(u.value.href);
  v.username = '';
  v.password = '';
  for (const k of [...v.searchParams.keys()]) v.searchParams.set(k, '***');
  return v.href.replace(/%2A%2A%2A/g, '***');
}

/** `a,b` → the event filter; each a known type, `prefix.*` of known ones, or `*`. Errors: invalid_argument. */
export function parseEventFilter(raw: string | readonly string[] | null | undefined): Result<string[] | null> {
  if (raw === null || raw === undefined) return ok(null);
  const parts = (typeof raw === 'string' ? raw.split(',') : [...raw]).map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) return ok(null);
  for (const p of parts) {
    const isKnown = p === '*' || (NODE_EVENT_TYPES as readonly string[]).includes(p) || (p.endsWith('.*') && NODE_EVENT_TYPES.some((t) => t.startsWith(p.slice(0, -1))));
    if (!isKnown) return err('invalid_argument', `unknown webhook event '${p}'`, { hint: `one of ${NODE_EVENT_TYPES.join(', ')}, or a group such as trust.*` });
  }
  return ok([...new Set(parts)]);
}

/** Secrets: at least 16 characters (a short HMAC key is guessable offline from one captured delivery). */
export function checkSecret(secret: string | null | undefined): Result<string | null> {
  if (secret === null || secret === undefined || secret === '') return ok(null);
  if (secret.length < 16) return err('invalid_argument', 'webhook secret must be at least 16 characters', { hint: 'e.g. `openssl rand -hex 32`' });
  return ok(secret);
}

/** A whole target from its parts. Errors: invalid_argument. */
export function makeTarget(url: string, secret: string | null | undefined, events: string | readonly string[] | null | undefined): Result<WebhookTarget> {
  const u = parseWebhookUrl(url);
  if (!u.ok) return u;
  const s = checkSecret(secret);
  if (!s.ok) return s;
  const ev = parseEventFilter(events);
  if (!ev.ok) return ev;
  return ok({ url: u.value.href, secret: s.value, events: ev.value });
}

function isStoredTarget(v: unknown): v is { url: string; secret: string | null; events: string[] | null } {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.url === 'string' &&
    (o.secret === null || typeof o.secret === 'string') &&
    (o.events === null || (Array.isArray(o.events) && o.events.every((e) => typeof e === 'string')))
  );
}

/** The saved target, or null when none. Errors: internal (unreadable; a corrupt file is kept aside). */
export function loadWebhookConfig(home: string, nowMs: number): Result<WebhookTarget | null> {
  const r = readJsonFile<unknown>(webhookConfigPath(home), null, (v): v is unknown => v === null || isStoredTarget(v), nowMs);
  if (!r.ok) return r;
  if (r.value === null) return ok(null);
  const t = r.value as { url: string; secret: string | null; events: string[] | null };
  return makeTarget(t.url, t.secret, t.events);
}

/** Save (or with null, clear) the target. 0600, atomic. */
export function saveWebhookConfig(home: string, t: WebhookTarget | null): Result<void> {
  return writeJsonFile(webhookConfigPath(home), t === null ? null : { url: t.url, secret: t.secret, events: t.events });
}
