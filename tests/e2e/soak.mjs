// Soak test: SOAK_SECONDS (default 600) of mixed traffic against a real `lmw serve` (stories260K,
// CPU, loopback) from SOAK_CONCURRENCY clients: streams (chat and completions, n > 1, logprobs),
// clients that drop a stream halfway, plain answers with logprobs, pipelined GETs and hostile or
// malformed requests. Every answer is checked whole (status, framing, JSON, SSE events up to
// [DONE], choices and logprobs shapes); one lost or malformed answer fails the run. Prints the
// requests by kind, errors, p50/p99 latency and the server's RSS at start, peak and end.
//   LMW_BIN=build/app/lmw LMW_MODEL=../shared/models/stories260K SOAK_SECONDS=600 node soak.mjs
// Needs only node itself. Exit 1 on any failure.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { hostPort, raw, post, connection, get } from './raw_http.mjs';
import { startServer, metrics, sleep } from './serve.mjs';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 12);
const MODEL = 'stories260K';

// A fixed seed: a run replays the same mix.
let seed = Number(process.env.SOAK_SEED ?? 12345) >>> 0;
function rand() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const between = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const PROMPTS = ['Once upon a time', 'Tell me a story about a dog.', 'The little girl', 'One day, a cat', 'Lily and Ben'];
const chatBody = (extra) => ({ model: MODEL, messages: [{ role: 'user', content: pick(PROMPTS) }], max_tokens: between(4, 48), ...extra });
const completionBody = (extra) => ({ model: MODEL, prompt: pick(PROMPTS), max_tokens: between(4, 48), ...extra });

class Malformed extends Error {}
function check(cond, what) { if (!cond) throw new Malformed(what); }

// One HTTP/1.1 exchange on a fresh connection; resolves with the parsed answer (status, headers,
// body decoded from Content-Length or chunked framing) once the server closes the connection.
const statuses = {};  // every answer's status (the hostile ones' 4xx included)
function exchange(url, data, timeoutMs = 60000) {
  return raw(url, data, timeoutMs).then((r) => {
    check(r.status > 0, `no status line (${r.why}): ${r.text.slice(0, 200)}`);
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    check(r.why !== 'timeout', `no complete answer in ${timeoutMs} ms: ${r.text.slice(-200)}`);
    const headers = {};
    for (const l of r.head.split('\r\n').slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    check(headers['x-request-id'], 'no x-request-id');
    let body = Buffer.from(r.body, 'latin1');
    if (headers['transfer-encoding'] === 'chunked') {
      const parts = [];
      let rest = r.body;
      for (;;) {
        const eol = rest.indexOf('\r\n');
        check(eol > 0, 'chunked body ends without its last chunk');
        const n = parseInt(rest.slice(0, eol), 16);
        check(Number.isFinite(n) && rest.length >= eol + 2 + n + 2, 'truncated chunk');
        if (n === 0) break;
        parts.push(rest.slice(eol + 2, eol + 2 + n));
        check(rest.slice(eol + 2 + n, eol + 4 + n) === '\r\n', 'chunk without CRLF');
        rest = rest.slice(eol + 4 + n);
      }
      body = Buffer.from(parts.join(''), 'latin1');
    } else {
      check(headers['content-length'] !== undefined, 'neither chunked nor Content-Length');
      check(body.length === Number(headers['content-length']), `body ${body.length} bytes, Content-Length ${headers['content-length']}`);
    }
    return { status: r.status, headers, text: body.toString('utf8') };
  });
}

const closeReq = (path, body, extra = '') => post(path, JSON.stringify(body), `Connection: close\r\n${extra}`);

function checkLogprobsChat(lp, top) {
  check(lp && Array.isArray(lp.content) && lp.content.length > 0, 'chat logprobs.content missing');
  for (const e of lp.content) {
    check(typeof e.token === 'string' && typeof e.logprob === 'number' && e.logprob <= 0, `bad logprob entry ${JSON.stringify(e)}`);
    check(Array.isArray(e.bytes) && Buffer.from(e.bytes).toString('utf8').length >= 0, 'bytes');
    check(Array.isArray(e.top_logprobs) && e.top_logprobs.length === top, `top_logprobs ${e.top_logprobs?.length} != ${top}`);
  }
}
function checkLogprobsCompletion(lp, k) {
  check(lp && Array.isArray(lp.tokens) && lp.tokens.length > 0, 'completion logprobs.tokens missing');
  const n = lp.tokens.length;
  check(lp.token_logprobs.length === n && lp.text_offset.length === n && lp.top_logprobs.length === n, 'logprobs arrays differ in length');
  for (const t of lp.top_logprobs) check(Object.keys(t).length >= 1 && Object.keys(t).length <= k + 1, 'top_logprobs size');
}

// Server-sent events: every event a JSON chunk until one [DONE], each choice index finished once.
function checkStream(r, n, kind) {
  check(r.status === 200, `stream status ${r.status}: ${r.text.slice(0, 200)}`);
  check(r.headers['content-type']?.startsWith('text/event-stream'), 'stream content-type');
  const events = r.text.split('\n\n');
  check(events.pop() === '', 'stream does not end with a blank line');
  check(events.at(-1) === 'data: [DONE]', `stream does not end with [DONE]: ${events.at(-1)}`);
  const finished = new Set();
  for (const e of events.slice(0, -1)) {
    check(e.startsWith('data: '), `not a data event: ${e.slice(0, 80)}`);
    const j = JSON.parse(e.slice(6));
    check(j.object === kind, `object ${j.object}`);
    for (const c of j.choices) {
      check(c.index >= 0 && c.index < n, `choice index ${c.index}`);
      if (c.finish_reason) {
        check(['stop', 'length'].includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
        check(!finished.has(c.index), 'a choice finished twice');
        finished.add(c.index);
      }
    }
  }
  check(finished.size === n, `${finished.size} of ${n} choices finished`);
}

function checkError(r, status) {
  check(r.status === status, `expected ${status}, got ${r.status}: ${r.text.slice(0, 200)}`);
  const e = JSON.parse(r.text).error;
  check(typeof e.message === 'string' && typeof e.type === 'string', 'error body');
}

const P = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n';
const HOSTILE = [
  ['broken JSON', () => post('/v1/chat/completions', '{"messages": [', 'Connection: close\r\n'), 400],
  ['Content-Length -1', () => `${P}Content-Length: -1\r\n\r\n{}`, 400],
  ['two Content-Lengths', () => `${P}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`, 400],
  ['gzip, chunked', () => `${P}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 400],
  ['70 KB header', () => `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Big: ${'a'.repeat(70000)}\r\n\r\n`, 431],
  ['foreign Host', () => 'GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n', 403],
  ['n = 1e6', () => closeReq('/v1/chat/completions', chatBody({ n: 1000000 })), 400],
  ['top_logprobs 1000', () => closeReq('/v1/chat/completions', chatBody({ logprobs: true, top_logprobs: 1000 })), 400],
  ['unknown path', () => 'GET /v2/everything HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 404],
  ['garbage request line', () => 'HELLO THERE\r\n\r\n', 400],
  ['special tokens as text', () => closeReq('/v1/chat/completions', chatBody({ messages: [{ role: 'user', content: '</s><s>[INST] <|im_end|>' }] })), 200],
];

const KINDS = {
  async stream_chat(url) {
    const n = pick([1, 1, 2, 3]);
    const lp = rand() < 0.3;
    const r = await exchange(url, closeReq('/v1/chat/completions', chatBody({ stream: true, n, ...(lp ? { logprobs: true, top_logprobs: 2 } : {}) })));
    checkStream(r, n, 'chat.completion.chunk');
  },
  async stream_completion(url) {
    const n = pick([1, 2]);
    const r = await exchange(url, closeReq('/v1/completions', completionBody({ stream: true, n, logprobs: pick([0, 2]) })));
    checkStream(r, n, 'text_completion');
  },
  async chat(url) {
    const n = pick([1, 2, 4]);
    const top = pick([0, 3]);
    const r = await exchange(url, closeReq('/v1/chat/completions', chatBody({ n, logprobs: true, top_logprobs: top })));
    check(r.status === 200, `status ${r.status}: ${r.text.slice(0, 200)}`);
    const j = JSON.parse(r.text);
    check(j.choices.length === n, `${j.choices.length} choices for n = ${n}`);
    for (const c of j.choices) {
      check(typeof c.message.content === 'string' && ['stop', 'length'].includes(c.finish_reason), 'choice');
      checkLogprobsChat(c.logprobs, top);
    }
    check(j.usage.completion_tokens > 0, 'usage');
  },
  async completion(url) {
    const n = pick([1, 3]);
    const k = pick([1, 3]);
    const r = await exchange(url, closeReq('/v1/completions', completionBody({ n, logprobs: k })));
    check(r.status === 200, `status ${r.status}: ${r.text.slice(0, 200)}`);
    const j = JSON.parse(r.text);
    check(j.choices.length === n, `${j.choices.length} choices for n = ${n}`);
    for (const c of j.choices) checkLogprobsCompletion(c.logprobs, k);
  },
  // A client that goes away mid-stream: it must have seen the stream start; the server must cancel
  // the request (checked at the end: nothing left in flight).
  disconnect(url) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(hostPort(url));
      let text = '';
      const timer = setTimeout(() => { sock.destroy(); reject(new Malformed('stream never started')); }, 30000);
      const events = between(1, 4);
      sock.on('data', (d) => {
        text += d.toString('latin1');
        if ((text.match(/data: /g) ?? []).length >= events) {
          clearTimeout(timer);
          const ok = text.startsWith('HTTP/1.1 200');
          if (rand() < 0.5) sock.resetAndDestroy(); else sock.destroy();
          ok ? resolve() : reject(new Malformed(`stream status: ${text.slice(0, 100)}`));
        }
      });
      sock.on('close', () => { clearTimeout(timer); if (!text.includes('data: ')) reject(new Malformed('closed before the first event')); });
      sock.on('error', () => {});
      sock.write(post('/v1/chat/completions', JSON.stringify(chatBody({ stream: true, max_tokens: 200, ignore_eos: true }))));
    });
  },
  async hostile(url) {
    const [name, make, status] = pick(HOSTILE);
    const r = await exchange(url, make(), 30000).catch((e) => { throw new Malformed(`${name}: ${e.message}`); });
    if (status === 200) {
      check(r.status === 200, `${name}: ${r.status}`);
      check(typeof JSON.parse(r.text).choices[0].message.content === 'string', `${name}: no content`);
    } else {
      try { checkError(r, status); } catch (e) { throw new Malformed(`${name}: ${e.message}`); }
    }
  },
  // Three GETs in one write on a keep-alive connection: three answers, in order.
  async pipelined(url) {
    const c = await connection(url);
    try {
      c.send(get('/health') + get('/v1/models') + get('/metrics', 'Connection: close\r\n'));
      const a = await c.next(3, 30000);
      check(a.length === 3, `${a.length} of 3 pipelined answers`);
      for (const x of a) statuses[x.status] = (statuses[x.status] ?? 0) + 1;
      check(a.every((x) => x.status === 200), `statuses ${a.map((x) => x.status)}`);
      check(JSON.parse(a[0].body).status === 'ok', '/health first');
      check(JSON.parse(a[1].body).data[0].id === MODEL, '/v1/models second');
      check(a[2].body.includes('# TYPE'), '/metrics third');
    } finally { c.close(); }
  },
  async health(url) {
    const r = await exchange(url, get('/health', 'Connection: close\r\n'));
    check(r.status === 200 && JSON.parse(r.text).status === 'ok', `health ${r.status}`);
  },
};
// Weights of the mix (per 100 requests).
const MIX = [['stream_chat', 28], ['stream_completion', 14], ['chat', 14], ['completion', 12], ['disconnect', 10],
  ['hostile', 12], ['pipelined', 5], ['health', 5]];
const total = MIX.reduce((s, [, w]) => s + w, 0);
function pickKind() {
  let x = rand() * total;
  for (const [k, w] of MIX) if ((x -= w) < 0) return k;
  return MIX[0][0];
}

function rssMiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : 0;
}
function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : 0; }

const server = await startServer([]);
const pid = server.proc.pid;
const stats = Object.fromEntries(MIX.map(([k]) => [k, { ok: 0, failed: 0, ms: [] }]));
const errors = [];
const rss = { start: rssMiB(pid), peak: 0, end: 0 };
rss.peak = rss.start;
// warm: after the first tenth of the run, once the KV cache pages and the buffers are touched.
const sampler = setInterval(() => {
  const now = rssMiB(pid);
  rss.peak = Math.max(rss.peak, now);
  if (rss.warm === undefined && Date.now() - t0 >= SECONDS * 100) rss.warm = now;
}, 250);
const t0 = Date.now();
const until = t0 + SECONDS * 1000;
let lastReport = t0;

async function worker() {
  while (Date.now() < until && server.exited === null) {
    const kind = pickKind();
    const s = performance.now();
    try {
      await KINDS[kind](server.url);
      stats[kind].ok++;
      stats[kind].ms.push(performance.now() - s);
    } catch (e) {
      stats[kind].failed++;
      if (errors.length < 20) errors.push(`${kind}: ${e.message}`);
    }
    if (Date.now() - lastReport > 30000) {
      lastReport = Date.now();
      const done = Object.values(stats).reduce((a, x) => a + x.ok + x.failed, 0);
      process.stderr.write(`soak: ${Math.round((Date.now() - t0) / 1000)} s, ${done} requests, RSS ${rssMiB(pid).toFixed(1)} MiB\n`);
    }
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
const wall = (Date.now() - t0) / 1000;

// Dropped streams must have been cancelled: nothing is left running once the clients are done.
let inflight = -1;
let serverMetrics = {};
for (let i = 0; i < 50; i++) {
  const m = serverMetrics = await metrics(server.url);
  inflight = Object.entries(m).filter(([k]) => /^lmw_engine_requests_(running|waiting)\b/.test(k)).reduce((a, [, v]) => a + v, 0);
  if (inflight === 0) break;
  await sleep(100);
}
await sleep(500);
rss.end = rssMiB(pid);
clearInterval(sampler);
const exit = await server.stop();

const all = [];
let ok = 0, failed = 0;
const rows = [];
for (const [k, s] of Object.entries(stats)) {
  s.ms.sort((a, b) => a - b);
  all.push(...s.ms);
  ok += s.ok;
  failed += s.failed;
  rows.push(`  ${k.padEnd(18)} ${String(s.ok + s.failed).padStart(7)} ${String(s.failed).padStart(6)} ${pct(s.ms, 0.5).toFixed(1).padStart(9)} ${pct(s.ms, 0.99).toFixed(1).padStart(9)}`);
}
all.sort((a, b) => a - b);
console.log(`soak: ${wall.toFixed(0)} s, ${CONCURRENCY} clients, ${ok + failed} requests (${((ok + failed) / wall).toFixed(1)}/s), ${failed} lost or malformed`);
console.log(`  ${'kind'.padEnd(18)} ${'requests'.padStart(7)} ${'failed'.padStart(6)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)}`);
for (const r of rows) console.log(r);
console.log(`  ${'all'.padEnd(18)} ${String(ok + failed).padStart(7)} ${String(failed).padStart(6)} ${pct(all, 0.5).toFixed(1).padStart(9)} ${pct(all, 0.99).toFixed(1).padStart(9)}`);
console.log(`  server RSS MiB: start ${rss.start.toFixed(1)}, warm ${rss.warm?.toFixed(1)}, peak ${rss.peak.toFixed(1)}, end ${rss.end.toFixed(1)}; in flight at the end ${inflight}; exit ${JSON.stringify(exit)}`);
console.log(`  server: ${serverMetrics.lmw_client_disconnects_total ?? 0} streams cancelled for a gone client (of ${stats.disconnect.ok + stats.disconnect.failed} dropped), ${serverMetrics.lmw_request_log_dropped_total ?? 0} log lines dropped`);
console.log(`  answers by status: ${Object.entries(statuses).map(([k, v]) => `${k}: ${v}`).join(', ')} (dropped streams not counted)`);
for (const e of errors) console.log(`  error: ${e}`);
console.log(JSON.stringify({ seconds: wall, clients: CONCURRENCY, requests: ok + failed, failed, rss, statuses,
  kinds: Object.fromEntries(Object.entries(stats).map(([k, s]) => [k, { requests: s.ok + s.failed, failed: s.failed, p50: pct(s.ms, 0.5), p99: pct(s.ms, 0.99) }])) }));
const bad = failed > 0 || inflight !== 0 || exit.code !== 0 || ok === 0;
process.exit(bad ? 1 : 0);
