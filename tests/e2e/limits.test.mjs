// Memory bounds and conformance of a real `lmw serve` (stories260K, CPU, loopback): limits of n,
// top_logprobs, response bytes and bytes in flight (400/429), prompts refused by their byte length,
// max_tokens beyond the context, the completions default of 16 tokens, logit_bias, logprob tokens
// with their leading space, and the RSS after an amplification burst and after 10,000 requests.
// Needs only node itself.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { post, hostPort } from './raw_http.mjs';
import { startServer, sleep } from './serve.mjs';

const MODEL = 'stories260K';

async function call(url, path, body) {
  const t0 = performance.now();
  const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* a stream */ }
  return { status: r.status, json, text, headers: r.headers, ms: performance.now() - t0 };
}
const chat = (url, extra) => call(url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 16, ...extra });
const complete = (url, extra) => call(url, '/v1/completions', { model: MODEL, prompt: 'Once upon a time', ...extra });

function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : 0;
}

// The baseline is the server's working set for this kind of batch: the KV cache is allocated at
// start but its pages are touched as blocks are first used, and the engine's buffers grow to the
// largest batch they served. So the same batch runs first as streams (which hold no answer).
async function warmUp(url, body) {
  await Promise.all(Array.from({ length: 64 }, () => complete(url, { prompt: 'Once', max_tokens: 500, ignore_eos: true })));
  await Promise.all(Array.from({ length: 4 }, () => new Promise((resolve) => {
    const sock = net.connect(hostPort(url));
    let tail = '';
    sock.on('data', (d) => { tail = (tail + d.toString('latin1')).slice(-32); });
    sock.on('close', () => resolve(tail));
    sock.write(post('/v1/chat/completions', JSON.stringify({ ...body, stream: true }), 'Connection: close\r\n'));
  }).then((tail) => assert.match(tail, /data: \[DONE\]/))));
}

function assertError(r, status, param, code) {
  assert.equal(r.status, status, r.text.slice(0, 300));
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
  if (code !== undefined) assert.equal(r.json.error.code, code, r.text);
  assert.equal(typeof r.json.error.message, 'string');
}

describe('limits: n, top_logprobs, response bytes, bytes in flight, prompt bytes', () => {
  let server;
  // One byte of budget: a request alone is always admitted, a second one at the same time is not.
  before(async () => {
    server = await startServer(['--max-n', '4', '--max-top-logprobs', '5', '--max-response-bytes', '300000',
      '--max-inflight-response-bytes', '1']);
  });
  after(async () => { assert.equal((await server.stop()).code, 0); });

  test('n and top_logprobs beyond the server limits are 400s naming the field', async () => {
    assertError(await chat(server.url, { n: 5 }), 400, 'n');
    assertError(await chat(server.url, { logprobs: true, top_logprobs: 6 }), 400, 'top_logprobs');
    assertError(await complete(server.url, { logprobs: 6 }), 400, 'logprobs');
    assertError(await complete(server.url, { prompt: ['a', 'b', 'c'], n: 2 }), 400, 'n');
    assert.equal((await chat(server.url, { n: 4 })).status, 200);
  });

  test('an answer that could exceed --max-response-bytes is refused before any work (400)', async () => {
    const r = await chat(server.url, { n: 4, max_tokens: 400, logprobs: true, top_logprobs: 5 });
    assertError(r, 400, 'n', 'response_too_large');
    assert.match(r.json.error.message, /300000/);
    assert.ok(r.ms < 200, `${r.ms} ms`);
    assertError(await chat(server.url, { max_tokens: 480, logprobs: true, top_logprobs: 5, stream: true }), 400, 'max_tokens', 'response_too_large');
  });

  test('when the bytes in flight are spent, more requests get 429 with Retry-After', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, () => complete(server.url, { max_tokens: 300, ignore_eos: true })));
    const ok = rs.filter((r) => r.status === 200), limited = rs.filter((r) => r.status === 429);
    console.log(`8 at once on a 1-byte budget: ${ok.length} answered, ${limited.length} got 429`);
    assert.equal(ok.length + limited.length, 8);
    assert.ok(ok.length >= 1 && limited.length >= 1);
    assertError(limited[0], 429, null, 'rate_limit_exceeded');
    assert.equal(limited[0].headers.get('retry-after'), '1');
    // The server gives a request's bytes back after its last write, which can trail the client reading
    // the answer by a moment: the budget must come back, not necessarily before the next request lands.
    let after;
    for (let i = 0; i < 50; ++i) {
      after = await complete(server.url, { max_tokens: 4 });
      if (after.status === 200) break;
      await sleep(20);
    }
    assert.equal(after.status, 200, 'the budget is given back');
  });

  test('a prompt whose bytes alone exceed the context is refused without tokenizing it', async () => {
    for (const mb of [1, 15]) {
      const prompt = 'once upon a time '.repeat(Math.ceil((mb << 20) / 17));
      const r = await complete(server.url, { prompt });
      assertError(r, 400, 'prompt', 'context_length_exceeded');
      assert.match(r.json.error.message, /bytes/);
      console.log(`${mb} MB prompt refused in ${r.ms.toFixed(0)} ms`);
      assert.ok(r.ms < 1500, `${r.ms} ms`);
    }
    const r = await chat(server.url, { messages: [{ role: 'user', content: 'word '.repeat(200000) }] });
    assertError(r, 400, 'messages', 'context_length_exceeded');
    // Short enough by bytes, too long by tokens: the token count still decides.
    assertError(await complete(server.url, { prompt: 'once upon a time '.repeat(200) }), 400, 'prompt', 'context_length_exceeded');
  });
});

describe('conformance', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { assert.equal((await server.stop()).code, 0); });

  test("the issue's amplification request (n 64, max_tokens 480, top_logprobs 20) is refused by the defaults", async () => {
    const r = await chat(server.url, { n: 64, max_tokens: 480, logprobs: true, top_logprobs: 20 });
    assertError(r, 400, 'n');
    assert.ok(r.ms < 200, `${r.ms} ms`);
  });

  test('max_tokens beyond the context is a 400, not silently clamped', async () => {
    const r = await chat(server.url, { max_tokens: 1000 });
    assertError(r, 400, 'max_tokens', 'context_length_exceeded');
    assert.match(r.json.error.message, /512/);
    assertError(await complete(server.url, { max_tokens: 510 }), 400, 'max_tokens');
    assert.equal((await complete(server.url, { max_tokens: 500, ignore_eos: true })).json.usage.completion_tokens, 500);
  });

  test('/v1/completions without max_tokens gives 16 tokens (the OpenAI default)', async () => {
    const r = await complete(server.url, { ignore_eos: true, temperature: 1 });
    assert.equal(r.json.usage.completion_tokens, 16);
    assert.equal(r.json.choices[0].finish_reason, 'length');
  });

  test('logit_bias is honoured', async () => {
    const ids = (await call(server.url, '/v1/encode', { input: ['the', 'time'], add_bos: false })).json.input_ids;
    const the = ids[0][0], time = ids[1][0];
    const greedy = await complete(server.url, { prompt: 'Once upon a', max_tokens: 1, temperature: 0 });
    assert.equal(greedy.json.choices[0].text, ' time');
    const banned = await complete(server.url, { prompt: 'Once upon a', max_tokens: 1, temperature: 0, logit_bias: { [time]: -100 } });
    assert.notEqual(banned.json.choices[0].text, ' time');
    const forced = await complete(server.url, { prompt: 'Once upon a', max_tokens: 5, temperature: 0.8, seed: 1, logit_bias: { [the]: 100 } });
    assert.equal(forced.json.choices[0].text, ' the the the the the');
    const chatForced = await chat(server.url, { max_tokens: 3, temperature: 0, logit_bias: { [the]: 100 } });
    assert.equal(chatForced.json.choices[0].message.content, 'the the the');
    assertError(await complete(server.url, { logit_bias: { abc: 1 } }), 400, 'logit_bias');
    assertError(await complete(server.url, { logit_bias: { [the]: 101 } }), 400, 'logit_bias');
    assertError(await complete(server.url, { logit_bias: { 999999: 1 } }), 400, 'logit_bias');
    assertError(await complete(server.url, { logit_bias: [1] }), 400, 'logit_bias');
  });

  test('logprob tokens keep their leading space; text_offset and bytes are exact', async () => {
    const r = await complete(server.url, { prompt: 'Once upon a', max_tokens: 12, temperature: 0, logprobs: 2 });
    const c = r.json.choices[0], lp = c.logprobs;
    assert.equal(lp.tokens.join(''), c.text);
    assert.ok(lp.tokens.some((t) => t.startsWith(' ') && t.length > 1), JSON.stringify(lp.tokens));
    assert.equal(lp.text_offset[0], 0);
    for (let i = 1; i < lp.tokens.length; ++i) assert.equal(lp.text_offset[i] - lp.text_offset[i - 1], lp.tokens[i - 1].length);
    for (const top of lp.top_logprobs) assert.ok(Object.keys(top).some((t) => t.startsWith(' ')) || Object.keys(top).length > 0);
    // Streamed, the offsets run on across chunks.
    const s = await complete(server.url, { prompt: 'Once upon a', max_tokens: 12, temperature: 0, logprobs: 2, stream: true });
    const chunks = s.text.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    const offsets = chunks.flatMap((k) => k.choices[0]?.logprobs?.text_offset ?? []);
    assert.deepEqual(offsets, lp.text_offset);

    const ch = await chat(server.url, { max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2 });
    const content = ch.json.choices[0].logprobs.content;
    for (const t of content) assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
    assert.ok(content.some((t) => t.bytes[0] === 32), 'a token with a leading space has byte 32 first');
    // A chat reply drops the first token's leading space (a text of its own); the tokens keep it.
    assert.equal(content.map((t) => t.token).join('').replace(/^ /, ''), ch.json.choices[0].message.content);
  });
});

describe('memory: RSS returns after an amplification burst', () => {
  let server;
  before(async () => {
    server = await startServer(['--max-n', '64', '--max-response-bytes', '400000000', '--max-inflight-response-bytes', '2000000000']);
  });
  after(async () => { assert.equal((await server.stop()).code, 0); });

  test('4 x (n 16, max_tokens 490, top_logprobs 20) at once, then RSS within 20% of the baseline', async () => {
    const pid = server.proc.pid;
    const body = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], n: 16, max_tokens: 490, ignore_eos: true, logprobs: true, top_logprobs: 20 };
    await warmUp(server.url, body);
    await sleep(300);
    const baseline = rssKiB(pid);
    let peak = baseline, sampling = true;
    const sampler = (async () => { while (sampling) { peak = Math.max(peak, rssKiB(pid)); await sleep(10); } })();
    const t0 = performance.now();
    const sizes = await Promise.all(Array.from({ length: 4 }, async () => {
      const r = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(r.status, 200);
      return (await r.arrayBuffer()).byteLength;
    }));
    const ms = performance.now() - t0;
    sampling = false;
    await sampler;
    let after = rssKiB(pid);
    for (let i = 0; i < 50 && after > baseline * 1.2; ++i) { await sleep(100); after = rssKiB(pid); }
    console.log(`4 answers of ${(sizes[0] / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms; RSS baseline ${(baseline / 1024).toFixed(1)} MiB, ` +
      `peak ${(peak / 1024).toFixed(1)} MiB, after ${(after / 1024).toFixed(1)} MiB`);
    assert.ok(sizes.every((n) => n > 8e6));
    assert.ok(after <= baseline * 1.2, `RSS ${after} KiB after, baseline ${baseline} KiB`);
  });

  test('10,000 mixed requests grow RSS by less than 10%', async () => {
    const pid = server.proc.pid;
    const kinds = [
      () => fetch(`${server.url}/health`).then((r) => r.text()),
      () => fetch(`${server.url}/v1/models`).then((r) => r.text()),
      () => chat(server.url, { max_tokens: 4 }),
      () => complete(server.url, { max_tokens: 4, stream: true }),
      () => complete(server.url, { max_tokens: 4, logprobs: 3, n: 2 }),
      () => fetch(`${server.url}/nope`).then((r) => r.text()),
      () => fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: '{"broken' }).then((r) => r.text()),
    ];
    const run = async (n) => {
      let next = 0;
      await Promise.all(Array.from({ length: 32 }, async () => {
        for (let i; (i = next++) < n;) await kinds[i % kinds.length]();
      }));
    };
    await run(1000);  // warm: allocator pools and caches reach their working size
    await sleep(300);
    const baseline = rssKiB(pid);
    const t0 = performance.now();
    await run(10000);
    await sleep(300);
    const after = rssKiB(pid);
    console.log(`10,000 mixed requests in ${(performance.now() - t0).toFixed(0)} ms; RSS ${(baseline / 1024).toFixed(1)} -> ${(after / 1024).toFixed(1)} MiB`);
    assert.ok(after < baseline * 1.1, `RSS ${baseline} -> ${after} KiB`);
  });
});
