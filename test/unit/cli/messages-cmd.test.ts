// send-message's flags: --wait with or without a value, and the MCP tool's wait/reply_to parameters.
import test from 'node:test';
import assert from 'node:assert/strict';
import { parseCommandArgs } from '../../../src/cli/args.js';
import { MESSAGE_COMMANDS } from '../../../src/cli/messages-cmd.js';
import { inputSchemaOf, MCP_TOOLS, toInvocation } from '../../../src/cli/mcp.js';

const sendMessage = MESSAGE_COMMANDS.find((c) => c.name === 'send-message')!;

function parsed(argv: string[]) {
  const r = parseCommandArgs(argv, sendMessage.args, sendMessage.flags, sendMessage.name);
  assert.ok(r.ok, JSON.stringify(r));
  return r.value;
}

test('--wait takes a duration only when one follows: alone, with a value, =value, before other flags', () => {
  assert.equal(parsed(['b', '--data', 'x', '--wait']).flags.get('wait'), true);
  assert.equal(parsed(['b', '--wait', '10s', '--data', 'x']).flags.get('wait'), '10s');
  assert.equal(parsed(['b', '--wait=2m', '--data', 'x']).flags.get('wait'), '2m');
  const p = parsed(['--wait', '--data', 'x', 'b']);
  assert.equal(p.flags.get('wait'), true);
  assert.equal(p.flags.get('data'), 'x');
  const q = parsed(['--wait', 'agent-b', '--data', 'x']);
  assert.equal(q.flags.get('wait'), true, 'a hostname is not a duration');
  assert.deepEqual(q.positional, ['agent-b']);
});

test('the MCP send_message tool offers wait (true or a duration) and reply_to', () => {
  const tool = MCP_TOOLS.find((t) => t.name === 'send_message')!;
  const schema = inputSchemaOf(tool, sendMessage);
  assert.ok('wait' in schema.properties && 'reply_to' in schema.properties && 'data_file' in schema.properties);
  assert.deepEqual((schema.properties.wait as { type: string[] }).type, ['boolean', 'string']);
  const a = toInvocation(tool, sendMessage, { peer: 'b', data: 'x', wait: true, reply_to: '1b4e28ba-2fa1-11d2-883f-0016d3cca427' });
  assert.ok(a.ok);
  assert.ok(a.value.argv.includes('--wait') && a.value.argv.includes('--reply-to=1b4e28ba-2fa1-11d2-883f-0016d3cca427'), a.value.argv.join(' '));
  const b = toInvocation(tool, sendMessage, { peer: 'b', data: 'x', wait: '10s' });
  assert.ok(b.ok && b.value.argv.includes('--wait=10s'));
  const c = toInvocation(tool, sendMessage, { peer: 'b', data: 'x', wait: false });
  assert.ok(c.ok && !c.value.argv.some((x) => x.startsWith('--wait')));
  const pa = parseCommandArgs(a.value.argv, sendMessage.args, sendMessage.flags, sendMessage.name);
  assert.ok(pa.ok && pa.value.flags.get('wait') === true);
});
