// Malformed and hostile requests against a real `lmw serve`: each gets a clean error (never a
// crash, a hang, or a stalled server), and afterwards the server still answers correctly.
// Needs only node itself (no npm packages).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { raw } from './raw_http.mjs';
import { startServer, sleep } from './serve.mjs';

function post(path, body, extraHeaders = '') {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return [Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n${extraHeaders}Content-Length: ${b.length}\r\n\r\n`), b];
}

const chat = (fields) => JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, ...fields });

// [name, raw request, expected status (or list), expected error param (optional)]
const cases = [
  ['broken JSON', post('/v1/chat/completions', '{"model": "stories260K", "messages": ['), 400],
  ['JSON array body', post('/v1/chat/completions', '[1,2,3]'), 400],
  ['empty body', post('/v1/chat/completions', ''), 400],
  ['null body', post('/v1/chat/completions', 'null'), 400],
  ['number overflow 1e999', post('/v1/chat/completions', '{"model":"stories260K","messages":[{"role":"user","content":"x"}],"max_tokens":1e999}'), 400],
  ['huge integer max_tokens', post('/v1/chat/completions', '{"model":"stories260K","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999999999999999999}'), 400, 'max_tokens'],
  ['negative max_tokens', post('/v1/chat/completions', chat({ max_tokens: -5 })), 400, 'max_tokens'],
  ['temperature as string', post('/v1/chat/completions', chat({ temperature: 'hot' })), 400, 'temperature'],
  ['temperature NaN literal', post('/v1/chat/completions', '{"messages":[{"role":"user","content":"x"}],"temperature":NaN}'), 400],
  ['messages as string', post('/v1/chat/completions', chat({ messages: 'hello' })), 400, 'messages'],
  ['messages empty', post('/v1/chat/completions', chat({ messages: [] })), 400, 'messages'],
  ['message without role', post('/v1/chat/completions', chat({ messages: [{ content: 'x' }] })), 400, 'messages[0].role'],
  ['unknown role', post('/v1/chat/completions', chat({ messages: [{ role: 'root', content: 'x' }] })), 400, 'messages[0].role'],
  ['content as object', post('/v1/chat/completions', chat({ messages: [{ role: 'user', content: { a: 1 } }] })), 400, 'messages[0].content'],
  ['missing messages', post('/v1/chat/completions', '{"model":"stories260K"}'), 400, 'messages'],
  ['deep nesting 100k', post('/v1/chat/completions', '['.repeat(100000)), 400],
  ['deep nesting in a field', post('/v1/chat/completions', `{"messages":[{"role":"user","content":"x"}],"user":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`), 400],
  ['invalid UTF-8 in content', post('/v1/chat/completions', Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}]}')])), 400],
  ['NUL byte in body', post('/v1/chat/completions', Buffer.from('{"messages":[]}\0garbage')), 400],
  ['missing prompt', post('/v1/completions', '{"model":"stories260K"}'), 400, 'prompt'],
  ['token id out of vocabulary', post('/v1/completions', '{"prompt":[1, 999999]}'), 400, 'prompt'],
  ['n = 1e6', post('/v1/chat/completions', chat({ n: 1000000 })), 400, 'n'],
  ['10000 stop strings', post('/v1/chat/completions', chat({ stop: Array(10000).fill('x') })), 400, 'stop'],
  ['seed as string', post('/v1/chat/completions', chat({ seed: 'abc' })), 400, 'seed'],
  ['stream as string', post('/v1/chat/completions', chat({ stream: 'yes' })), 400, 'stream'],
  ['top_logprobs 1000', post('/v1/chat/completions', chat({ logprobs: true, top_logprobs: 1000 })), 400, 'top_logprobs'],
  ['prompt longer than the context', post('/v1/completions', JSON.stringify({ prompt: 'once upon a time '.repeat(400) })), 400],
  ['20 MB body', post('/v1/chat/completions', Buffer.alloc(20 << 20, 0x20)), 413],
  ['20 MB chunked body', [Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n'),
    ...Array.from({ length: 20 }, () => Buffer.concat([Buffer.from('100000\r\n'), Buffer.alloc(1 << 20, 0x20), Buffer.from('\r\n')])),
    Buffer.from('0\r\n\r\n')], 413],
  ['negative Content-Length', [Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: -1\r\n\r\n{}')], 400],
  ['garbage request line', [Buffer.from('HELLO THERE\r\n\r\n')], 400],
  ['unknown method', [Buffer.from('BREW /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')], [0, 400, 405]],
  ['100 KB header', [Buffer.from(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(100000)}\r\nConnection: close\r\n\r\n`)], 431],
  ['100 KB URL', [Buffer.from(`GET /${'a'.repeat(100000)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)], 414],
  ['path traversal', [Buffer.from('GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')], [400, 404]],
  ['wrong method on a known path', [Buffer.from('PUT /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}')], 405],
  ['unknown path', [Buffer.from('GET /v2/everything HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')], 404],
  ['unknown model', post('/v1/chat/completions', chat({ model: 'gpt-5' })), 404, 'model'],
  ['suffix', post('/v1/completions', '{"prompt":"x","suffix":"y"}'), 400, 'suffix'],
  // The Responses API (OpenAI's error shape) and the Messages API (Anthropic's: no param).
  ['responses: store true', post('/v1/responses', '{"input":"x","store":true}'), 400, 'store'],
  ['responses: previous_response_id', post('/v1/responses', '{"input":"x","previous_response_id":"resp_1"}'), 400, 'previous_response_id'],
  ['responses: broken JSON', post('/v1/responses', '{"input": ['), 400],
  ['responses: input as number', post('/v1/responses', '{"input":5}'), 400, 'input'],
  ['responses: unknown item type', post('/v1/responses', '{"input":[{"type":"computer_call"}]}'), 400, 'input[0].type'],
  ['responses: function_call without call_id', post('/v1/responses', '{"input":[{"type":"function_call","name":"f","arguments":"{}"}]}'), 400, 'input[0].call_id'],
  ['responses: longer than the context', post('/v1/responses', JSON.stringify({ input: 'once upon a time '.repeat(400) })), 400],
  ['responses: deep nesting', post('/v1/responses', '['.repeat(100000)), 400],
  ['messages: missing max_tokens', post('/v1/messages', '{"messages":[{"role":"user","content":"x"}]}'), 400],
  ['messages: broken JSON', post('/v1/messages', '{"max_tokens": 4, "messages": ['), 400],
  ['messages: image block', post('/v1/messages', '{"max_tokens":4,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}'), 400],
  ['messages: tool_result from the assistant', post('/v1/messages', '{"max_tokens":4,"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"t"}]}]}'), 400],
  ['messages: stop_sequences as string', post('/v1/messages', '{"max_tokens":4,"stop_sequences":"x","messages":[{"role":"user","content":"x"}]}'), 400],
  ['messages: longer than the context', post('/v1/messages', JSON.stringify({ max_tokens: 4, messages: [{ role: 'user', content: 'once upon a time '.repeat(400) }] })), 400],
  ['messages: invalid UTF-8', post('/v1/messages', Buffer.concat([Buffer.from('{"max_tokens":4,"messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')])), 400],
  ['count_tokens: null body', post('/v1/messages/count_tokens', 'null'), 400],
  ['messages: 20 MB body', post('/v1/messages', Buffer.alloc(20 << 20, 0x20)), 413],
  ['messages: GET', [Buffer.from('GET /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')], 405],
];

describe('hostile requests', () => {
  let server, reference;
  const good = () => fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'Tell me a story.' }], temperature: 0, max_tokens: 32 }),
  }).then((r) => r.json());

  before(async () => {
    server = await startServer(['--http-head-timeout', '2']);
    reference = (await good()).choices[0].message.content;
    assert.ok(reference.length > 0);
  });
  after(async () => {
    const exit = await server.stop();
    assert.equal(exit.code, 0);
  });

  test(`${cases.length} malformed requests get clean errors`, async () => {
    assert.ok(cases.length >= 30);
    for (const [name, data, expected, param] of cases) {
      const r = await raw(server.url, data);
      const ok = Array.isArray(expected) ? expected.includes(r.status) : r.status === expected;
      assert.ok(ok, `${name}: got ${r.status} (${r.why}) ${r.head.slice(0, 200)} ${r.body.slice(0, 300)}`);
      if (r.status >= 400) {
        const body = r.head.match(/transfer-encoding: chunked/i) ? r.body.replace(/^[0-9a-f]+\r\n/, '') : r.body;
        const err = JSON.parse(body).error;
        assert.equal(typeof err.message, 'string', name);
        assert.equal(typeof err.type, 'string', name);
        if (param) assert.equal(err.param, param, name);
        // Anthropic's shape on its paths, the transport's own refusals (413) included.
        if (/ \/v1\/messages/.test(data[0].toString().split('\r\n')[0])) {
          assert.equal(JSON.parse(body).type, 'error', name);
          assert.equal(err.param, undefined, name);
        }
      }
      assert.equal(server.exited, null, `server died on: ${name}`);
    }
  });

  test('a slow-loris request is dropped after the head deadline and stalls nobody', async () => {
    const { hostname, port } = new URL(server.url);
    const sock = net.connect({ host: hostname, port: Number(port) });
    await new Promise((r) => sock.on('connect', r));
    sock.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len');  // never finished
    // Dropped = answered 408 once the head deadline passed, then closed.
    let answer = '';
    const closed = new Promise((r) => {
      sock.on('data', (d) => { answer += d.toString(); r(Date.now()); });
      sock.on('close', () => r(Date.now()));
      sock.on('error', () => {});
    });
    const t0 = Date.now();
    const during = await good();  // others are served meanwhile
    assert.equal(during.choices[0].message.content, reference);
    assert.ok(Date.now() - t0 < 2000, 'a normal request waited for the slow one');
    const closedAt = await Promise.race([closed, sleep(10000).then(() => null)]);
    assert.ok(closedAt !== null, 'the half-sent request was never dropped');
    assert.ok(closedAt - t0 < 6000, `dropped after ${closedAt - t0} ms`);
    assert.ok(answer.startsWith('HTTP/1.1 408'), answer);
    sock.destroy();
  });

  test('afterwards the server still answers correctly', async () => {
    const again = await good();
    assert.equal(again.choices[0].message.content, reference);
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    const m = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(m, /lmw_engine_requests_running 0/);
    assert.match(m, /lmw_http_requests_total\{endpoint="\/v1\/chat\/completions",status="400"\} \d+/);
  });
});
