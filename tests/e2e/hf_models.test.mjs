// End-to-end on the tokenizer.json families: a real `lmw serve` per model (qwen3-tiny: Qwen3 with its
// real tokenizer and template; llama3-tiny: Llama 3.x with its tokenizer, three eos ids and a tool
// template) driven by the official `openai` client, checked against the models' reference.json
// (Hugging Face transformers + tokenizers): greedy text, prompt token counts of the chat renders, and
// `lmw generate --chat` giving what the API gives.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startServer, LMW } from './serve.mjs';

if (!existsSync(new URL('./node_modules/openai/package.json', import.meta.url))) {
  console.log('SKIP: tests/e2e/node_modules is missing: run `npm install` in tests/e2e (scripts/test.sh does it)');
  process.exit(77);
}
const { default: OpenAI } = await import('openai');
const MODELS_DIR = process.env.LMW_MODELS_DIR;
if (!MODELS_DIR) throw new Error('set LMW_MODELS_DIR');

for (const name of ['qwen3-tiny', 'llama3-tiny']) {
  const dir = `${MODELS_DIR}/${name}`;
  const ref = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8'));
  // transformers' own greedy ids for the same prompts (tests/data/README.md says why both exist): a
  // reference continuation is checked as far as transformers itself reproduces it.
  const hf = JSON.parse(readFileSync(new URL('../data/hf_tiny_logits.json', import.meta.url), 'utf8')).models[name].cases;
  const agreed = (c) => {
    const h = hf.find((x) => JSON.stringify(x.input_ids) === JSON.stringify(c.input_ids));
    const i = h.greedy_ids.findIndex((id, k) => id !== c.greedy_ids[k]);
    return i < 0 ? c.greedy_ids.length : i;
  };
  const checkGreedy = (text, c, what) => {
    if (agreed(c) === c.greedy_ids.length) assert.equal(text, c.greedy_text, what);
    else assert.ok(c.greedy_text.startsWith(text), `${what}: ${JSON.stringify(text)} is not a prefix of the reference`);
  };
  // The reference's chat prompts are chat_cases renders; pair each with its chat case.
  const chatCases = ref.cases.filter((c) => c.prompt.startsWith('chat:')).map((c) => ({
    ...c, chat: ref.chat_cases.find((cc) => JSON.stringify(cc.ids) === JSON.stringify(c.input_ids)),
  }));

  describe(`lmw serve ${name}`, () => {
    let server, client;
    before(async () => {
      server = await startServer([], dir);
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
    });
    after(async () => {
      const exit = await server.stop();
      assert.equal(exit.code, 0, `lmw serve exit after SIGTERM: ${JSON.stringify(exit)}\n${server.stderr.slice(-2000)}`);
    });

    test('completions: greedy text and prompt tokens equal transformers', async () => {
      for (const c of ref.cases.filter((x) => !x.prompt.startsWith('chat:'))) {
        const r = await client.completions.create({ model: name, prompt: c.prompt, temperature: 0, max_tokens: agreed(c) });
        assert.equal(r.usage.prompt_tokens, c.input_ids.length, `prompt tokens of ${JSON.stringify(c.prompt)}`);
        assert.equal(r.usage.completion_tokens, agreed(c));
        checkGreedy(r.choices[0].text, c, `greedy text after ${JSON.stringify(c.prompt)}`);
      }
    });

    test('chat: the model\'s own template (with chat_template_kwargs) gives transformers\' prompt and greedy text', async () => {
      let checked = 0;
      for (const c of chatCases) {
        if (!c.chat || c.chat.tools) continue;  // tool definitions belong to the tools API
        const body = { model: name, messages: c.chat.messages, temperature: 0, max_tokens: agreed(c),
                       chat_template_kwargs: c.chat.kwargs };
        const r = await client.chat.completions.create(body);
        assert.equal(r.usage.prompt_tokens, c.input_ids.length, `prompt tokens with ${JSON.stringify(c.chat.kwargs)}`);
        checkGreedy(r.choices[0].message.content, c, 'chat greedy text');
        // Streaming gives the same text.
        const stream = await client.chat.completions.create({ ...body, stream: true });
        let text = '';
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
        assert.equal(text, r.choices[0].message.content);
        ++checked;
      }
      assert.ok(checked >= 1, 'no chat case was checked');
    });

    test('every chat_cases render without tools has the reference prompt length', async () => {
      for (const cc of ref.chat_cases.filter((x) => !x.tools)) {
        const r = await client.chat.completions.create({ model: name, messages: cc.messages, max_tokens: 1,
                                                         chat_template_kwargs: cc.kwargs });
        assert.equal(r.usage.prompt_tokens, cc.ids.length, `${JSON.stringify(cc.messages).slice(0, 80)} ${JSON.stringify(cc.kwargs)}`);
      }
    });

    test('a bad chat_template_kwargs is a 400 naming the field', async () => {
      await assert.rejects(
        client.chat.completions.create({ model: name, messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: 'thinking' }),
        (e) => e.status === 400 && e.error?.param === 'chat_template_kwargs');
    });

    test('`lmw generate --chat` gives what the API gives', async () => {
      const prompt = 'Tell me a story about a cat.';
      const kwargs = ref.chat_cases[0].kwargs;
      const r = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: prompt }],
                                                       temperature: 0, max_tokens: 16, chat_template_kwargs: kwargs });
      const { stdout } = await promisify(execFile)(LMW, ['generate', dir, '--prompt', prompt, '--chat', '--temperature', '0',
        '--max-new-tokens', '16', '-q', '--backend', 'cpu', '--chat-template-kwargs', JSON.stringify(kwargs)], { maxBuffer: 1 << 20 });
      assert.equal(stdout.replace(/\n$/, ''), r.choices[0].message.content);
    });
  });
}
