// `pilotctl set-webhook URL [--secret S] [--events a,b]`, `clear-webhook`, `webhook status` (issue 14): where the
// daemon posts its events (docs/webhooks.md). The daemon keeps the URL in <home>/webhook.json; the secret is
// never printed back (status says whether one is set).
import { readFileSync } from 'node:fs';
import { err, ok, type Result } from '../core/result.js';
import { NODE_EVENT_TYPES } from '../node/events.js';
import type { WebhookStatus } from '../node/api.js';
import { makeTarget } from '../node/webhooks/config.js';
import { usageErr } from './args.js';
import { defineCommand, type Command } from './command.js';
import { fields } from './output.js';

interface SetParams {
  url: string;
  secret: string | null;
  secretFile: string | null;
  events: string | null;
}

const STATUS_FIELDS =
  'configured, url (credentials removed, query values masked), secret_set, events (null = all), source (config|flag), warnings [], queued, queue_limit, in_flight, delivered, failed_attempts, dropped_overflow, dropped_rejected, dropped_expired, consecutive_failures, last_error, last_error_at, last_delivered_at, next_attempt_at';

function statusText(s: WebhookStatus): string {
  if (!s.configured) return `no webhook set\n  set one with: pilotctl set-webhook https://example.com/pilot-hook --secret "$(openssl rand -hex 32)"\n`;
  const lines = fields([
    ['url', s.url],
    ['secret', s.secret_set ? 'set (HMAC-SHA256 in X-Pilot-Signature)' : 'none: deliveries are unsigned'],
    ['events', s.events ? s.events.join(', ') : 'all'],
    ['source', s.source === 'flag' ? 'the daemon\'s --webhook flag' : 'set-webhook (kept in <home>/webhook.json)'],
    ['queued', `${s.queued} of ${s.queue_limit}${s.in_flight ? ' (one in flight)' : ''}`],
    ['delivered', s.delivered],
    ['failed', `${s.failed_attempts} attempt(s)${s.consecutive_failures ? `, ${s.consecutive_failures} in a row` : ''}`],
    ['dropped', `${s.dropped_overflow} (queue full), ${s.dropped_rejected} (refused by the receiver), ${s.dropped_expired} (older than 24 h)`],
    ['last error', s.last_error ? `${s.last_error} at ${s.last_error_at}` : null],
    ['last delivered', s.last_delivered_at],
    ['next attempt', s.next_attempt_at],
  ]);
  return 'webhook\n' + lines + s.warnings.map((w) => `  warning: ${w}\n`).join('');
}

const setWebhook = defineCommand<SetParams>({
  name: 'set-webhook',
  group: 'Webhooks',
  summary: 'POST every node event (trust, messages, files, peers, paths, daemon) as signed JSON to a URL',
  args: [{ name: 'url', required: true, description: 'http:// or https:// URL' }],
  flags: [
    { name: 'secret', kind: 'string', value: '<secret>', description: 'HMAC-SHA256 key (≥ 16 characters): X-Pilot-Signature: sha256=<hex> over the raw body' },
    { name: 'secret-file', kind: 'string', value: '<path>', description: 'read the secret from a file (keeps it out of ps and shell history)' },
    { name: 'events', kind: 'string', value: '<a,b>', description: `only these event types (or groups like trust.*): ${NODE_EVENT_TYPES.join(', ')}` },
  ],
  returns: STATUS_FIELDS,
  errors: ['not_running', 'internal'],
  parse(a) {
    const url = a.positional[0]!;
    const secret = typeof a.flags.get('secret') === 'string' ? (a.flags.get('secret') as string) : null;
    const file = a.flags.get('secret-file');
    const secretFile = typeof file === 'string' ? file : null;
    if (secret !== null && secretFile !== null) return usageErr('give --secret or --secret-file, not both', 'set-webhook');
    const events = typeof a.flags.get('events') === 'string' ? (a.flags.get('events') as string) : null;
    // Checked here too (the file's secret in run), so a mistake is a usage error before any daemon is asked.
    const t = makeTarget(url, secret, events);
    if (!t.ok) return t;
    return ok({ url, secret, secretFile, events });
  },
  async run(ctx, p) {
    if (p.secretFile !== null) {
      try {
        p = { ...p, secret: readFileSync(p.secretFile, 'utf8').trim() };
      } catch (e) {
        return err('invalid_argument', `cannot read --secret-file ${p.secretFile}: ${(e as Error).message}`);
      }
    }
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.setWebhook(p.url, { secret: p.secret, events: p.events });
    if (!r.ok) return r;
    return ok({ data: r.value, text: statusText(r.value) });
  },
});

const clearWebhook = defineCommand<null>({
  name: 'clear-webhook',
  group: 'Webhooks',
  summary: 'Stop posting events; forgets the URL and the events still queued',
  args: [],
  flags: [],
  returns: 'cleared (bool: one was set), dropped (queued events forgotten)',
  errors: ['not_running', 'internal'],
  parse: () => ok(null),
  async run(ctx) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.clearWebhook();
    if (!r.ok) return r;
    const text = r.value.cleared ? `webhook cleared${r.value.dropped ? ` (${r.value.dropped} queued event(s) dropped)` : ''}\n` : 'no webhook was set\n';
    return ok({ data: r.value, text });
  },
});

const webhookStatus = defineCommand<null>({
  name: 'webhook status',
  group: 'Webhooks',
  summary: 'The webhook: URL, whether a secret is set, the queue, deliveries, failures and the last error',
  args: [],
  flags: [],
  returns: STATUS_FIELDS,
  errors: ['not_running'],
  parse: (a) => (a.positional.length ? usageErr('webhook status takes no arguments', 'webhook status') : ok(null)),
  async run(ctx): Promise<Result<{ data: WebhookStatus; text: string }>> {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.webhookStatus();
    if (!r.ok) return r;
    return ok({ data: r.value, text: statusText(r.value) });
  },
});

export const WEBHOOK_COMMANDS: Command[] = [setWebhook, clearWebhook, webhookStatus];
