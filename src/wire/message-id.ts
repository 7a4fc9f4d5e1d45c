// Inbox message ids (issue 14): what our receivers assign (a UUID, lower case) and what `reply_to` may hold —
// an id of ours, or one another implementation printed (the original names messages by file name).
import { err, ok, type Result } from '../core/result.js';

const MESSAGE_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** No spaces, no quotes, no path separators: safe in JSON, file-name matching and command lines. */
const REPLY_TO_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export function isMessageId(s: string): boolean {
  return MESSAGE_ID_RE.test(s);
}

/** Errors: invalid_argument (not something a message id can be). */
export function checkReplyTo(s: string): Result<string> {
  if (!REPLY_TO_RE.test(s)) {
    return err('invalid_argument', `invalid message id '${s.length > 64 ? s.slice(0, 64) + '…' : s}'`, { hint: 'pass the id of a message from `pilotctl inbox` (1..128 letters, digits, . _ : -)' });
  }
  return ok(s);
}
