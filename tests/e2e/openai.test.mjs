// End-to-end: the official `openai` npm client against a real `lmw serve` (stories260K, CPU).
// Run by ctest (tests/e2e/CMakeLists.txt) as `node openai.test.mjs` with LMW_BIN and LMW_MODEL set.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startServer, metrics, sleep, LMW, MODEL_DIR } from './serve.mjs';

if (!existsSync(new URL('./node_modules/openai/package.json', import.meta.url))) {
  console.log('SKIP: tests/e2e/node_modules is missing: run `npm install` in tests/e2e (scripts/test.sh does it)');
  process.exit(77);
}
const { default: OpenAI } = await import('openai');
const MODEL = 'stories260K';

async function generateCli(prompt, maxNew, chat) {
  const args = ['generate', MODEL_DIR, '--prompt', prompt, '--temperature', '0', '--max-new-tokens', String(maxNew),
    '-q', '--backend', 'cpu', ...(chat ? ['--chat'] : [])];
  const { stdout } = await promisify(execFile)(LMW, args, { maxBuffer: 1 << 20 });
  return stdout.replace(/\n$/, '');  // generate ends its output with one newline
}

async function collectStream(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

describe('lmw serve + openai client', () => {
  let server, client;
  before(async () => {
    server = await startServer();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
  });
  after(async () => {
    const exit = await server.stop();
    assert.equal(exit.code, 0, `lmw serve exit after SIGTERM: ${JSON.stringify(exit)}\n${server.stderr.slice(-2000)}`);
  });

  test('models list and retrieve', async () => {
    const list = await client.models.list();
    assert.equal(list.data.length, 1);
    assert.equal(list.data[0].id, MODEL);
    assert.equal(list.data[0].object, 'model');
    assert.equal(list.data[0].max_model_len, 512);
    assert.equal(typeof list.data[0].created, 'number');
    const m = await client.models.retrieve(MODEL);
    assert.equal(m.id, MODEL);
  });

  test('chat completion', async () => {
    const r = await client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Tell me a story about a cat.' }], temperature: 0, max_tokens: 48,
    });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(r.choices[0].message.content.length > 0);
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens > 5);
    assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 48);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  test('multi-turn chat, temperature 0.7; max_tokens 1024 is more than the context: 400, as OpenAI answers', async () => {
    const body = {
      model: MODEL, temperature: 0.7, max_tokens: 1024, stream: false,
      messages: [
        { role: 'system', content: 'You tell short stories.' },
        { role: 'user', content: 'Tell me about a dog.' },
        { role: 'assistant', content: 'Once upon a time there was a dog named Max.' },
        { role: 'user', content: [{ type: 'text', text: 'What did Max do next?' }] },
      ],
    };
    await assert.rejects(client.chat.completions.create(body),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens' && e.code === 'context_length_exceeded');
    const r = await client.chat.completions.create({ ...body, max_tokens: 400 });
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens + r.usage.completion_tokens <= 512);
    assert.ok(r.usage.prompt_tokens > 20);
  });

  test('streaming chat: role first, finish_reason last, usage chunk, same text as non-streaming', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'Tell me a story about a frog.' }], temperature: 0, max_tokens: 40 };
    const whole = await client.chat.completions.create(body);
    const chunks = await collectStream(await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }));
    assert.equal(chunks[0].object, 'chat.completion.chunk');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    const last = withChoices[withChoices.length - 1];
    assert.equal(last.choices[0].finish_reason, whole.choices[0].finish_reason);
    for (const c of withChoices.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
    const usage = chunks[chunks.length - 1];
    assert.equal(usage.choices.length, 0);
    assert.deepEqual(usage.usage, whole.usage);
    const text = withChoices.map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(text, whole.choices[0].message.content);
    assert.ok(new Set(chunks.map((c) => c.id)).size === 1);
  });

  test('completions: plain, echo, streaming, list of prompts', async () => {
    const prompt = 'Once upon a time, there was a little girl';
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 32, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.ok(r.choices[0].text.length > 0);
    const echo = await client.completions.create({ model: MODEL, prompt, max_tokens: 32, temperature: 0, echo: true });
    assert.equal(echo.choices[0].text, prompt + r.choices[0].text);
    const chunks = await collectStream(await client.completions.create({ model: MODEL, prompt, max_tokens: 32, temperature: 0, stream: true }));
    assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), r.choices[0].text);
    assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, r.choices[0].finish_reason);
    const two = await client.completions.create({ model: MODEL, prompt: [prompt, 'The sun'], max_tokens: 8, temperature: 0 });
    assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
    assert.equal(two.choices[0].text, (await client.completions.create({ model: MODEL, prompt, max_tokens: 8, temperature: 0 })).choices[0].text);
  });

  test('embeddings: floats; base64, which the client asks for by default and decodes; token ids; a 400 for dimensions', async () => {
    const texts = ['Once upon a time', 'The cat sat on the mat.'];
    const f = await client.embeddings.create({ model: MODEL, input: texts, encoding_format: 'float' });
    assert.equal(f.object, 'list');
    assert.equal(f.model, MODEL);
    assert.equal(f.data.length, 2);
    f.data.forEach((d, i) => {
      assert.equal(d.object, 'embedding');
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, 64);  // stories260K's hidden size
      assert.ok(Math.abs(Math.hypot(...d.embedding) - 1) < 1e-5);
    });
    assert.ok(f.usage.prompt_tokens > 4);
    assert.equal(f.usage.total_tokens, f.usage.prompt_tokens);
    // The JSON numbers are the shortest text of each float32: read as float32 they are its exact bits.
    const f32 = f.data.map((d) => d.embedding.map(Math.fround));
    const decoded = await client.embeddings.create({ model: MODEL, input: texts });
    assert.deepEqual(decoded.data.map((d) => Array.from(d.embedding)), f32);
    const b64 = await client.embeddings.create({ model: MODEL, input: texts[1], encoding_format: 'base64' });
    const bytes = Buffer.from(b64.data[0].embedding, 'base64');
    assert.equal(bytes.length, 64 * 4);
    assert.deepEqual(Array.from({ length: 64 }, (_, i) => bytes.readFloatLE(4 * i)), f32[1]);
    const tok = await fetch(`${server.url}/tokenize`, { method: 'POST', body: JSON.stringify({ content: texts[0], add_special: true }) });
    const ids = (await tok.json()).tokens;
    const fromIds = await client.embeddings.create({ model: MODEL, input: [ids], encoding_format: 'float' });
    assert.deepEqual(fromIds.data[0].embedding, f.data[0].embedding);
    assert.equal(fromIds.usage.prompt_tokens, ids.length);
    await assert.rejects(client.embeddings.create({ model: MODEL, input: 'x', dimensions: 8 }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'dimensions' && e.code === 'unsupported_parameter');
    await assert.rejects(client.embeddings.create({ model: MODEL, input: [] }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'input');
  });

  test('n > 1, seed reproducibility, logprobs', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'A story about a bird.' }], n: 3, seed: 7, temperature: 1, max_tokens: 24 };
    const a = await client.chat.completions.create(body);
    const b = await client.chat.completions.create(body);
    assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
    assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
    const lp = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 3 });
    const content = lp.choices[0].logprobs.content;
    assert.equal(content.length, lp.usage.completion_tokens);
    for (const t of content) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 3);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
    }
    // greedy picks the most likely token
    assert.equal(content[0].token, content[0].top_logprobs[0].token);
  });

  test('errors map to the right openai error classes', async () => {
    const chat = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }] };
    await assert.rejects(client.chat.completions.create({ ...chat, model: 'gpt-4' }), (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
    await assert.rejects(client.chat.completions.create({ ...chat, temperature: 5 }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
    await assert.rejects(client.chat.completions.create({ ...chat, messages: [{ role: 'wizard', content: 'x' }] }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages[0].role');
    await assert.rejects(client.chat.completions.create({ ...chat, messages: [{ role: 'user', content: 'word '.repeat(1000) }] }),
      (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
    await assert.rejects(client.chat.completions.create({ ...chat, stream: true, messages: [{ role: 'user', content: 'word '.repeat(1000) }] }),
      (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
    await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', suffix: 'y' }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'suffix');
    await assert.rejects(client.chat.completions.create({ ...chat, max_tokens: -1 }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
    await assert.rejects(client.get('/nope'), (e) => e instanceof OpenAI.NotFoundError);
  });

  test('greedy output through the API equals `lmw generate`', async () => {
    const user = 'Tell me a story about a little boat.';
    const cli = await generateCli(user, 40, true);
    const api = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: user }], temperature: 0, max_tokens: 40 });
    assert.ok(cli.length > 0);
    assert.equal(api.choices[0].message.content, cli);
    // The rendered chat prompt as token ids through /v1/completions gives the same answer.
    const enc = await (await fetch(`${server.url}/v1/encode`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ input: user, do_preprocess: true }) })).json();
    assert.equal(enc.length, api.usage.prompt_tokens);
    const viaIds = await client.completions.create({ model: MODEL, prompt: enc.input_ids, temperature: 0, max_tokens: 40, stop: ['</s>'] });
    assert.equal(viaIds.choices[0].text, cli);
    // Plain prompt: /v1/completions equals `lmw generate --prompt`.
    const prompt = 'Once upon a time, there was a big tree';
    const cli2 = await generateCli(prompt, 48, false);
    const api2 = await client.completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 48 });
    assert.equal(api2.choices[0].text, cli2);
  });

  test('64 concurrent streams are batched and give the same text as one at a time', async () => {
    const openers = ['Once upon a time', 'The little dog', 'Lily wanted to', 'One day, Tom', 'The sun was', 'A big bear',
      'Mom said', 'The cat and the bird'];
    const body = (p) => ({ model: MODEL, prompt: p, temperature: 0, max_tokens: 64 });
    const reference = {};
    for (const p of openers) reference[p] = (await client.completions.create(body(p))).choices[0].text;
    let maxRunning = 0, sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = await metrics(server.url);
        maxRunning = Math.max(maxRunning, m.lmw_engine_requests_running ?? 0);
        await sleep(2);
      }
    })();
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 64 }, async (_, i) => {
      const p = openers[i % openers.length];
      const chunks = await collectStream(await client.completions.create({ ...body(p), stream: true }));
      return { p, text: chunks.map((c) => c.choices[0]?.text ?? '').join(''), finish: chunks[chunks.length - 1].choices[0].finish_reason };
    }));
    sampling = false;
    await sampler;
    for (const r of results) {
      assert.equal(r.text, reference[r.p], `stream for "${r.p}"`);
      assert.ok(['stop', 'length'].includes(r.finish));
    }
    console.log(`64 streams in ${Date.now() - started} ms, max running sequences seen: ${maxRunning}`);
    assert.ok(maxRunning > 8, `engine batched at most ${maxRunning} sequences`);
  });

  test('a client that disconnects is cancelled at once', async () => {
    const before = await metrics(server.url);
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify({ model: MODEL, prompt: 'Once upon a time', max_tokens: 480, temperature: 1, ignore_eos: true, stream: true }),
    });
    const reader = res.body.getReader();
    let got = '';
    while ((got.match(/data: /g) ?? []).length < 3) got += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    let after;
    for (let i = 0; i < 100; ++i) {
      after = await metrics(server.url);
      if ((after.lmw_client_disconnects_total ?? 0) > (before.lmw_client_disconnects_total ?? 0) &&
          after.lmw_engine_requests_running === 0) break;
      await sleep(10);
    }
    assert.equal(after.lmw_client_disconnects_total, (before.lmw_client_disconnects_total ?? 0) + 1);
    assert.equal(after.lmw_engine_requests_running, 0);
    assert.equal(after.lmw_engine_requests_waiting, 0);
    assert.equal(after.lmw_engine_kv_blocks_used, 0, 'KV blocks freed');
    const generated = after.lmw_engine_generated_tokens_total - before.lmw_engine_generated_tokens_total;
    console.log(`disconnect after 3 events: the engine generated ${generated} tokens for it (of 480 asked)`);
    // How many tokens stream before the server sees the socket close depends on the load of the
    // machine (the tiny model makes thousands per second); the promise is that the request stops
    // long before its 480 tokens and that the engine makes at most one step more once it knows.
    assert.ok(generated < 480, `generated all ${generated} tokens: the request was never cancelled`);
    await sleep(100);
    const later = await metrics(server.url);
    assert.equal(later.lmw_engine_generated_tokens_total, after.lmw_engine_generated_tokens_total, 'nothing generated after the cancel');
    // The server's request log says how far the engine got after the cancel: at most one step.
    const line = server.stderr.split('\n').find((l) => / 499 \/v1\/completions /.test(l));
    const m = line?.match(/client closed the request after (\d+) tokens; (\d+) more were generated/);
    assert.ok(m, `no 499 line in the server log: ${line}`);
    console.log(`server: client gone after ${m[1]} tokens, ${m[2]} generated after the cancel`);
    assert.ok(Number(m[2]) <= 2, line);
    assert.equal(Number(m[1]) + Number(m[2]), generated, `the log accounts for every token: ${line}`);
  });
});

describe('api keys', () => {
  let server;
  before(async () => { server = await startServer(['--api-keys', 'key-one', 'key-two']); });
  after(async () => { await server.stop(); });

  test('401 without or with a wrong key, 200 with a right one; /health stays open', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 };
    const none = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(none.chat.completions.create(body), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    await assert.rejects(none.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
    const raw = await fetch(`${server.url}/v1/models`);
    assert.equal(raw.status, 401);
    const ok = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'key-two', maxRetries: 0 });
    assert.equal((await ok.chat.completions.create(body)).choices.length, 1);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });
});

describe('shutdown', () => {
  test('SIGTERM ends a stream in flight with a final event and exits 0', async () => {
    const server = await startServer();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 480, ignore_eos: true, stream: true }),
    });
    const reader = res.body.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const exit = server.stop();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    assert.equal((await exit).code, 0);
    assert.match(text, /"finish_reason":"length"/);  // finished, or cut at the end of the grace period
    assert.doesNotMatch(text, /"abort"/);
    assert.ok(text.endsWith('data: [DONE]\n\n'), text.slice(-200));
  });
});
