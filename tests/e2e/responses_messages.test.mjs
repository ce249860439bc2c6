// End-to-end for the Responses API and Anthropic's Messages API (issue 17): the official `openai`
// client's responses.create / responses.stream and the official `@anthropic-ai/sdk` client's
// messages.create / messages.stream / messages.countTokens against a real `lmw serve` on stories260K
// (text) and qwen3-tiny (a real Qwen3 template with tools; random weights, so calls are forced by
// tool_choice and the grammar), their typed results checked field by field.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startServer } from './serve.mjs';

for (const pkg of ['openai', '@anthropic-ai/sdk']) {
  if (!existsSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))) {
    console.log('SKIP: tests/e2e/node_modules is missing: run `npm install` in tests/e2e (scripts/test.sh does it)');
    process.exit(77);
  }
}
const { default: OpenAI } = await import('openai');
const { default: Anthropic } = await import('@anthropic-ai/sdk');
const MODELS_DIR = process.env.LMW_MODELS_DIR;
if (!MODELS_DIR) throw new Error('set LMW_MODELS_DIR');

const KEY = 'e2e-key';
const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string', minLength: 1, maxLength: 12 } },
  required: ['city'],
  additionalProperties: false,
};

function clients(server) {
  return {
    openai: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 }),
    // The Anthropic client sends x-api-key and anthropic-version, and appends /v1/messages itself.
    anthropic: new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 }),
  };
}

describe('stories260K', () => {
  let server, openai, anthropic;
  before(async () => {
    server = await startServer(['--api-keys', KEY], `${MODELS_DIR}/stories260K`);
    ({ openai, anthropic } = clients(server));
  });
  after(async () => { await server?.stop(); });

  test('responses.create: a Response with output_text and usage', async () => {
    const r = await openai.responses.create({ model: 'stories260K', input: 'Once upon a time', max_output_tokens: 16, temperature: 0 });
    assert.equal(r.object, 'response');
    assert.match(r.id, /^resp_/);
    assert.equal(r.status, 'incomplete');
    assert.equal(r.incomplete_details.reason, 'max_output_tokens');
    assert.equal(r.output[0].type, 'message');
    assert.equal(r.output[0].role, 'assistant');
    assert.equal(r.output[0].content[0].type, 'output_text');
    assert.equal(typeof r.output_text, 'string');
    assert.ok(r.output_text.length > 0);
    assert.equal(r.output_text, r.output[0].content[0].text);
    assert.equal(r.usage.output_tokens, 16);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + 16);
    // The same reply as chat completions gives for the same conversation (greedy).
    const c = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 16, temperature: 0 });
    assert.equal(r.output_text, c.choices[0].message.content);
    assert.equal(r.usage.input_tokens, c.usage.prompt_tokens);
  });

  test('responses streaming: the event sequence, and responses.stream\'s final Response', async () => {
    const params = { model: 'stories260K', input: [{ role: 'user', content: 'Once upon a time' }], instructions: 'Tell a story.', max_output_tokens: 12, temperature: 0 };
    const whole = await openai.responses.create(params);
    const events = [];
    for await (const e of await openai.responses.create({ ...params, stream: true })) events.push(e);
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
    const kinds = events.map((e) => e.type).filter((t, i, a) => t !== a[i - 1]);
    assert.deepEqual(kinds, ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      'response.output_text.delta', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete']);
    const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    assert.equal(text, whole.output_text);
    const stream = openai.responses.stream(params);
    let deltas = '';
    stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
    const final = await stream.finalResponse();
    assert.equal(final.output_text, whole.output_text);
    assert.equal(deltas, whole.output_text);
    assert.equal(final.usage.input_tokens, whole.usage.input_tokens);
  });

  test('responses: store and previous_response_id are refused (no state kept)', async () => {
    await assert.rejects(openai.responses.create({ input: 'hi', store: true }), (e) => e.status === 400 && e.error?.param === 'store');
    await assert.rejects(openai.responses.create({ input: 'hi', previous_response_id: 'resp_x' }),
      (e) => e.status === 400 && /keeps no/.test(e.message));
  });

  test('messages.create: a Message with text content, stop reasons and usage', async () => {
    const m = await anthropic.messages.create({ model: 'stories260K', max_tokens: 16, temperature: 0, messages: [{ role: 'user', content: 'Once upon a time' }] });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.match(m.id, /^msg_/);
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.stop_sequence, null);
    assert.equal(m.content[0].type, 'text');
    assert.ok(m.content[0].text.length > 0);
    assert.equal(m.usage.output_tokens, 16);
    const count = await anthropic.messages.countTokens({ model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }] });
    assert.equal(count.input_tokens, m.usage.input_tokens);
    // A stop sequence from the greedy reply: named in stop_sequence.
    const words = m.content[0].text.split(' ');
    const stop = ` ${words[Math.floor(words.length / 2)]}`;
    const s = await anthropic.messages.create({ max_tokens: 16, temperature: 0, stop_sequences: [stop], messages: [{ role: 'user', content: 'Once upon a time' }] });
    assert.equal(s.stop_reason, 'stop_sequence');
    assert.equal(s.stop_sequence, stop);
    assert.equal(s.content[0].text, m.content[0].text.slice(0, m.content[0].text.indexOf(stop)));
  });

  test('messages streaming: stream: true events and messages.stream\'s final message', async () => {
    const params = { max_tokens: 12, temperature: 0, system: 'Tell a story.', messages: [{ role: 'user', content: [{ type: 'text', text: 'Once upon a time' }] }] };
    const whole = await anthropic.messages.create(params);
    const events = [];
    for await (const e of await anthropic.messages.create({ ...params, stream: true })) events.push(e);
    const kinds = events.map((e) => e.type).filter((t, i, a) => t !== a[i - 1]);
    assert.deepEqual(kinds, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    assert.equal(events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join(''), whole.content[0].text);
    const md = events.find((e) => e.type === 'message_delta');
    assert.equal(md.delta.stop_reason, 'max_tokens');
    assert.equal(md.usage.output_tokens, 12);
    const stream = anthropic.messages.stream(params);
    let text = '';
    stream.on('text', (t) => { text += t; });
    const final = await stream.finalMessage();
    assert.equal(text, whole.content[0].text);
    assert.deepEqual(final.content, whole.content);
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.usage.output_tokens, 12);
  });

  test('messages: errors in Anthropic\'s shape, typed by the client', async () => {
    await assert.rejects(anthropic.messages.create({ messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof Anthropic.BadRequestError && e.error?.type === 'error' && e.error.error.type === 'invalid_request_error' && /max_tokens/.test(e.message));
    const stranger = new Anthropic({ baseURL: server.url, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(stranger.messages.create({ max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === 'authentication_error');
    await assert.rejects(anthropic.messages.create({ max_tokens: 4, model: 'claude-x', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof Anthropic.NotFoundError);
    // The server still serves.
    assert.equal((await anthropic.messages.create({ max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] })).type, 'message');
  });
});

describe('qwen3-tiny tools', () => {
  let server, openai, anthropic;
  before(async () => {
    server = await startServer(['--api-keys', KEY], `${MODELS_DIR}/qwen3-tiny`);
    ({ openai, anthropic } = clients(server));
  });
  after(async () => { await server?.stop(); });

  test('responses: a forced function_call, its output back, streamed the same', async () => {
    const tools = [{ type: 'function', name: 'get_weather', description: 'Weather in a city', parameters: WEATHER, strict: true }];
    const params = { input: 'What is the weather in Paris?', tools, tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 300, temperature: 0 };
    const r = await openai.responses.create(params);
    assert.equal(r.status, 'completed');
    const call = r.output.find((o) => o.type === 'function_call');
    assert.ok(call, JSON.stringify(r.output));
    assert.equal(call.name, 'get_weather');
    assert.match(call.call_id, /^call_/);
    assert.equal(typeof JSON.parse(call.arguments).city, 'string');
    const next = await openai.responses.create({
      input: [{ role: 'user', content: 'What is the weather in Paris?' }, ...r.output,
        { type: 'function_call_output', call_id: call.call_id, output: 'Sunny, 21 C' }],
      tools, max_output_tokens: 4,
    });
    assert.equal(next.object, 'response');
    assert.ok(next.usage.input_tokens > r.usage.input_tokens + 8);
    const stream = openai.responses.stream(params);
    let args = '';
    stream.on('response.function_call_arguments.delta', (e) => { args += e.delta; });
    const final = await stream.finalResponse();
    const streamed = final.output.find((o) => o.type === 'function_call');
    assert.equal(streamed.arguments, call.arguments);
    assert.equal(args, call.arguments);
  });

  test('messages: a forced tool_use, its tool_result back, streamed the same, counted', async () => {
    const tools = [{ name: 'get_weather', description: 'Weather in a city', input_schema: WEATHER }];
    const ask = { role: 'user', content: 'What is the weather in Paris?' };
    const params = { max_tokens: 300, temperature: 0, tools, tool_choice: { type: 'any', disable_parallel_tool_use: true }, messages: [ask] };
    const m = await anthropic.messages.create(params);
    assert.equal(m.stop_reason, 'tool_use');
    const use = m.content.find((b) => b.type === 'tool_use');
    assert.ok(use, JSON.stringify(m.content));
    assert.equal(use.name, 'get_weather');
    assert.match(use.id, /^toolu_/);
    assert.equal(typeof use.input.city, 'string');
    const final = await anthropic.messages.stream(params).finalMessage();
    assert.deepEqual(final.content.find((b) => b.type === 'tool_use').input, use.input);
    assert.equal(final.stop_reason, 'tool_use');
    const turn = { tools, messages: [ask, { role: 'assistant', content: m.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny, 21 C' }] }] };
    const next = await anthropic.messages.create({ ...turn, max_tokens: 4 });
    assert.equal(next.type, 'message');
    const count = await anthropic.messages.countTokens(turn);
    assert.equal(count.input_tokens, next.usage.input_tokens);
    assert.ok(count.input_tokens > m.usage.input_tokens + 8);
  });
});
