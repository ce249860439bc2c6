// The HTTP transport of a real `lmw serve` (stories260K, CPU, loopback) under abuse: framing,
// pipelining, half-closes, deadlines, request ids, the Host check, log escaping, 5,000 idle and
// 500 slow-loris connections, the listen backlog, /health under 256 streams, and the SIGTERM drain.
// Needs only node itself; run with a file descriptor limit of at least 12,000 (CMake raises it).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execSync, spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { raw, connection, get, post, hostPort } from './raw_http.mjs';
import { startServer, sleep, LMW, MODEL_DIR } from './serve.mjs';

const MODEL = 'stories260K';
const chatBody = (extra = {}) => JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Tell me a story.' }], temperature: 0, max_tokens: 32, ...extra });

async function chat(url, extra = {}) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: chatBody(extra) });
  const json = await r.json();
  return { ms: performance.now() - t0, status: r.status, json, headers: r.headers };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Opens a connection and resolves once it is connected (with the time it took).
function open(url) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = net.connect(hostPort(url));
    sock.once('connect', () => resolve({ sock, ms: performance.now() - t0 }));
    sock.once('error', reject);
  });
}

// A connection that sent one request and read its answer, then idles (keep-alive).
async function idleConnection(url) {
  const { sock } = await open(url);
  const state = { sock, closed: false, data: '' };
  sock.on('close', () => { state.closed = true; });
  sock.on('error', () => {});
  await new Promise((resolve) => {
    sock.on('data', (d) => {
      state.data += d.toString('latin1');
      if (/\r\n\r\n\{.*\}$/s.test(state.data)) resolve();
    });
    sock.write(get('/health'));
  });
  return state;
}

function fdLimit() {
  return Number(execSync('ulimit -n', { shell: '/bin/sh' }).toString().trim());
}

describe('framing, pipelining, half-close, ids, Host, log', () => {
  let server;
  before(async () => { server = await startServer(['--http-head-timeout', '2', '--http-body-timeout', '2']); });
  after(async () => {
    const exit = await server.stop();
    assert.equal(exit.code, 0);
  });

  test('pipelined requests are all answered, in order, on one connection', async () => {
    const c = await connection(server.url);
    c.send(Buffer.concat([Buffer.from(get('/health') + get('/v1/models') + get('/nope')), post('/v1/chat/completions', chatBody()),
      Buffer.from(get('/health', 'X-Request-Id: pipe-5\r\n'))]));
    const a = await c.next(5);
    assert.deepEqual(a.map((x) => x.status), [200, 200, 404, 200, 200]);
    assert.equal(JSON.parse(a[1].body).object, 'list');
    assert.equal(JSON.parse(a[3].body).object, 'chat.completion');
    assert.equal(a[4].headers['x-request-id'], 'pipe-5');
    assert.equal(c.closed, false, 'the connection stays open');
    c.send(get('/health'));
    assert.equal((await c.next(1))[0].status, 200);
    c.close();
  });

  test('a half-closed client (shutdown(SHUT_WR) after its request) gets its answer', async () => {
    for (const stream of [false, true]) {
      const { sock } = await open(server.url);
      const parts = [];
      const ended = new Promise((resolve) => { sock.on('close', resolve); sock.on('error', () => {}); });
      sock.on('data', (d) => parts.push(d));
      sock.end(post('/v1/chat/completions', chatBody({ stream })));  // write, then FIN
      await Promise.race([ended, sleep(5000)]);
      const text = Buffer.concat(parts).toString('utf8');
      assert.match(text, /^HTTP\/1\.1 200 /, text.slice(0, 200));
      if (stream) assert.ok(text.includes('data: [DONE]'), text.slice(-200));
      else assert.match(text, /"object":"chat.completion"/);
      sock.destroy();
    }
  });

  const P = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n';
  const framing = [
    ['Content-Length: -1', `${P}Content-Length: -1\r\n\r\n{}`, [400]],
    ['Content-Length: 2^64', `${P}Content-Length: 18446744073709551616\r\n\r\n{}`, [400, 413]],
    ['Content-Length: 2^64 - 1', `${P}Content-Length: 18446744073709551615\r\n\r\n{}`, [413]],
    ['Content-Length of 20 MB and no body', `${P}Content-Length: 20000000\r\n\r\n`, [413]],
    ['two different Content-Length headers', `${P}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x`, [400]],
    ['Content-Length list "2, 3"', `${P}Content-Length: 2, 3\r\n\r\n{}x`, [400]],
    ['Content-Length: 1e3', `${P}Content-Length: 1e3\r\n\r\n{}`, [400]],
    ['Transfer-Encoding: gzip, chunked', `${P}Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`, [400]],
    ['Transfer-Encoding: identity', `${P}Transfer-Encoding: identity\r\n\r\n{}`, [400]],
    ['Transfer-Encoding and Content-Length', `${P}Transfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\n0\r\n\r\n`, [400]],
    ['two Transfer-Encoding headers', `${P}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, [400]],
    ['negative chunk size', `${P}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`, [400]],
    ['chunk size that is not hex', `${P}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, [400]],
    ['chunk size beyond 2^64', `${P}Transfer-Encoding: chunked\r\n\r\n${'f'.repeat(20)}\r\nhello\r\n`, [400, 413]],
    ['one chunk larger than the body limit', `${P}Transfer-Encoding: chunked\r\n\r\n2000000\r\nhello`, [413]],
    ['headers over 64 KiB', `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(70000)}\r\n\r\n`, [431]],
    ['10,000 small headers', `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n${'X-A: b\r\n'.repeat(10000)}\r\n`, [431]],
    ['request line over 64 KiB', `GET /${'a'.repeat(70000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, [414]],
    ['an HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', [400]],
    ['a NUL in a header', `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\0b\r\n\r\n`, [400]],
  ];

  test(`${framing.length} framing cases get a prompt 400/413/431/414`, async () => {
    for (const [name, data, expected] of framing) {
      const r = await raw(server.url, Buffer.from(data, 'latin1'), 5000);
      assert.ok(expected.includes(r.status), `${name}: got ${r.status} (${r.why}) ${r.head.slice(0, 120)}`);
      assert.ok(r.ms < 1000, `${name}: answered after ${r.ms} ms`);
      const err = JSON.parse(r.body).error;
      assert.equal(typeof err.message, 'string', name);
      assert.match(r.head, /\r\nx-request-id: [0-9a-f]{32}/i, name);
      assert.match(r.head, /\r\nConnection: close/i, `${name}: the rest of that message cannot be read`);
    }
  });

  test('Expect: 100-continue gets "100 Continue", then the answer', async () => {
    const c = await connection(server.url);
    const body = chatBody();
    c.send(`${P}Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`);
    await sleep(100);
    c.send(body);
    const [a] = await c.next(1);
    assert.equal(a.status, 200);
    c.close();
  });

  test('the head and the body each have a deadline (408, then closed)', async () => {
    // A head that trickles in (a byte every 300 ms) is cut off 2 s after its first byte.
    const { sock } = await open(server.url);
    let answer = '';
    const closed = new Promise((resolve) => sock.on('close', () => resolve(performance.now())));
    sock.on('data', (d) => { answer += d.toString(); });
    sock.on('error', () => {});
    const t0 = performance.now();
    sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const trickle = setInterval(() => sock.write('X'), 300);
    const at = await closed;
    clearInterval(trickle);
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.ok(at - t0 > 1800 && at - t0 < 4500, `head cut off after ${at - t0} ms`);
    // A body that never completes.
    const r = await raw(server.url, Buffer.from(`${P}Content-Length: 100\r\n\r\n{"messages":`), 6000);
    assert.equal(r.status, 408);
    assert.ok(r.ms > 1800 && r.ms < 4000, `body cut off after ${r.ms} ms`);
  });

  test('every answer carries an x-request-id; a sane client id is echoed', async () => {
    const ids = new Set();
    for (let i = 0; i < 20; ++i) {
      const r = await fetch(`${server.url}/${i % 2 ? 'health' : 'nope'}`);
      const id = r.headers.get('x-request-id');
      assert.match(id, /^[0-9a-f]{32}$/);
      ids.add(id);
    }
    assert.equal(ids.size, 20);
    const mine = await fetch(`${server.url}/health`, { headers: { 'X-Request-Id': 'trace-42.a_b:c' } });
    assert.equal(mine.headers.get('x-request-id'), 'trace-42.a_b:c');
    const bad = await fetch(`${server.url}/health`, { headers: { 'X-Request-Id': 'has spaces and "quotes"' } });
    assert.match(bad.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
    const s = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: chatBody({ stream: true }) });
    assert.match(s.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
    assert.match(await s.text(), /data: \[DONE\]/);
  });

  test('bound to loopback, only loopback Host names are served (DNS rebinding)', async () => {
    const { port } = hostPort(server.url);
    const with_ = (host) => raw(server.url, Buffer.from(`GET /health HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`));
    const evil = await with_(`evil.example:${port}`);
    assert.equal(evil.status, 403);
    assert.equal(JSON.parse(evil.body).error.code, 'host_not_allowed');
    for (const h of [`localhost:${port}`, '127.0.0.1', `[::1]:${port}`, 'app.localhost', `127.0.0.2:${port}`])
      assert.equal((await with_(h)).status, 200, h);
    assert.equal((await with_('127.0.0.1.evil.example')).status, 403);
    assert.equal((await with_(null)).status, 400, 'HTTP/1.1 without Host');
    const old = await raw(server.url, Buffer.from('GET /health HTTP/1.0\r\n\r\n'));
    assert.equal(old.status, 200, 'HTTP/1.0 has no Host to check');
  });

  test('CORS is off unless --allow-origins', async () => {
    const r = await fetch(`${server.url}/health`, { headers: { Origin: 'http://evil.example' } });
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    const pre = await fetch(`${server.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
  });

  test('the request log escapes control characters', async () => {
    const forged = 'x\r\n12:00:00 127.0.0.1:1 GET 200 /forged \u001b[2J\u001b]0;title\u0007';
    const r = await chat(server.url, { model: forged });
    assert.equal(r.status, 404);
    await raw(server.url, Buffer.from('GET /%1b[31mred%0d%0aFORGED%00 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'));
    await sleep(100);
    const log = server.stderr;
    assert.ok(!log.includes('\u001b'), 'a raw ESC reached the log');
    assert.ok(!log.includes('\u0007'), 'a raw BEL reached the log');
    assert.ok(!/\n12:00:00 127\.0\.0\.1:1 /.test(log), 'a forged log line');
    assert.ok(!/\nFORGED/.test(log), 'a forged log line from the path');
    assert.ok(log.includes('x\\r\\n12:00:00 127.0.0.1:1 GET 200 /forged \\x1b[2J\\x1b]0;title\\x07'), log.slice(-600));
    assert.ok(log.includes('/\\x1b[31mred\\r\\nFORGED\\x00'), log.slice(-600));
  });
});

describe('defaults: loopback, and how to expose it', () => {
  test('`lmw serve` binds 127.0.0.1 by default and says how to serve the network', async () => {
    const help = execSync(`${LMW} serve --help`).toString();
    assert.match(help, /--server-name[^\n]*127\.0\.0\.1/);
    assert.match(help, /0\.0\.0\.0/);
    const proc = spawn(LMW, ['serve', MODEL_DIR, '--server-port', '0', '--backend', 'cpu'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const url = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(out)), 60000);
      proc.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/ at (http:\/\/[^\s]+)/);
        if (m && out.includes('serves the network')) { clearTimeout(t); resolve(m[1]); }
      });
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  });

  test('on 0.0.0.0 any Host is served, with a warning about --api-keys', async () => {
    const server = await startServer(['--server-name', '0.0.0.0']);
    try {
      const r = await raw(server.url, Buffer.from('GET /health HTTP/1.1\r\nHost: my-gpu-box.example\r\nConnection: close\r\n\r\n'));
      assert.equal(r.status, 200);
    } finally {
      await server.stop();
    }
  });
});

describe('5,000 idle and 500 slow-loris connections cost no thread', () => {
  let server;
  before(async () => { server = await startServer(['--http-keep-alive-timeout', '60']); });
  after(async () => { await server.stop(); });

  test('a chat answers within 200 ms of its usual time while they are held', async () => {
    const limit = fdLimit();
    assert.ok(limit >= 12000, `the file descriptor limit is ${limit}: run with ulimit -n 12000 or more`);
    const base = [];
    for (let i = 0; i < 7; ++i) base.push((await chat(server.url)).ms);
    const reference = (await chat(server.url)).json.choices[0].message.content;

    const t0 = performance.now();
    const idle = [];
    for (let b = 0; b < 10; ++b) idle.push(...await Promise.all(Array.from({ length: 500 }, () => idleConnection(server.url))));
    const idleMs = performance.now() - t0;
    // Slow loris: a request head that gets one more byte every 2 s.
    const loris = await Promise.all(Array.from({ length: 500 }, async () => {
      const { sock } = await open(server.url);
      const s = { sock, answer: '', closedAt: 0 };
      sock.on('data', (d) => { s.answer += d.toString(); });
      sock.on('close', () => { s.closedAt = performance.now(); });
      sock.on('error', () => {});
      sock.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      return s;
    }));
    const lorisStart = performance.now();
    const trickle = setInterval(() => { for (const s of loris) if (!s.closedAt) s.sock.write('x'); }, 2000);

    const loaded = [];
    for (let i = 0; i < 7; ++i) {
      const r = await chat(server.url);
      assert.equal(r.json.choices[0].message.content, reference);
      loaded.push(r.ms);
      await sleep(300);
    }
    console.log(`${idle.length} idle connections opened in ${idleMs.toFixed(0)} ms; chat ms without: ${base.map((x) => x.toFixed(1)).join(' ')}, ` +
      `with 5,000 idle + 500 slow-loris: ${loaded.map((x) => x.toFixed(1)).join(' ')}`);
    assert.ok(median(loaded) <= median(base) + 200, `median ${median(loaded)} ms vs ${median(base)} ms`);
    assert.ok(Math.max(...loaded) <= Math.max(...base) + 200, `max ${Math.max(...loaded)} ms vs ${Math.max(...base)} ms`);
    const h = await fetch(`${server.url}/health`);
    assert.equal(h.status, 200);

    // Still held: the idle connections are open and answer on the same connection.
    assert.equal(idle.filter((s) => s.closed).length, 0, 'idle keep-alive connections were dropped');
    for (const s of idle.slice(0, 50)) {
      s.data = '';
      s.sock.write(get('/health'));
    }
    await sleep(300);
    assert.equal(idle.slice(0, 50).filter((s) => /^HTTP\/1\.1 200 /.test(s.data)).length, 50);

    // The slow heads are cut off by the 10 s head deadline (408), however much they trickle.
    while (loris.some((s) => !s.closedAt) && performance.now() - lorisStart < 14000) await sleep(100);
    clearInterval(trickle);
    const dropped = loris.filter((s) => s.closedAt);
    assert.equal(dropped.length, 500, `${500 - dropped.length} slow heads were never cut off`);
    assert.ok(dropped.every((s) => s.answer.startsWith('HTTP/1.1 408 ')));
    const lastMs = Math.max(...dropped.map((s) => s.closedAt - lorisStart));
    console.log(`500 slow-loris heads answered 408 and closed within ${lastMs.toFixed(0)} ms of their first byte`);
    assert.ok(lastMs > 9000 && lastMs < 13000, `${lastMs}`);
    for (const s of idle) s.sock.destroy();
  });
});

describe('listen backlog and /health under 256 streams', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server.stop(); });

  test('a burst of 2,000 connects is accepted without SYN retries (backlog >= 1024)', async () => {
    const conns = await Promise.all(Array.from({ length: 2000 }, () => open(server.url)));
    const worst = Math.max(...conns.map((c) => c.ms));
    console.log(`2,000 simultaneous connects: slowest ${worst.toFixed(0)} ms`);
    assert.ok(worst < 900, `a connect took ${worst} ms (a dropped SYN is retried after 1 s)`);
    const answers = await Promise.all(conns.slice(0, 200).map(({ sock }) => new Promise((resolve) => {
      let d = '';
      sock.on('data', (x) => { d += x; if (d.includes('"ok"')) resolve(d); });
      sock.on('error', () => resolve(d));
      sock.write(get('/health'));
    })));
    assert.ok(answers.every((a) => a.startsWith('HTTP/1.1 200 ')));
    for (const c of conns) c.sock.destroy();
  });

  test('/health and /metrics answer within 50 ms while 256 streams run', async () => {
    // The probes run on a thread of their own, over one kept-alive raw connection, so neither the
    // streams' bytes nor a client library's overhead delay their clock.
    const probe = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const net = require('node:net');
      const lat = { health: [], metrics: [] };
      let on = true;
      parentPort.on('message', () => { on = false; });
      const u = new URL(workerData);
      const sock = net.connect({ host: u.hostname, port: Number(u.port) });
      let buf = Buffer.alloc(0), done = null;
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        const text = buf.toString('latin1'), sep = text.indexOf('\\r\\n\\r\\n');
        const len = text.match(/content-length: (\\d+)/i);
        if (done && sep >= 0 && len && buf.length >= sep + 4 + Number(len[1])) {
          const status = Number(text.slice(9, 12));
          buf = buf.subarray(sep + 4 + Number(len[1]));
          const d2 = done; done = null; d2(status);
        }
      });
      sock.on('connect', async () => {
        while (on) {
          for (const p of ['health', 'metrics']) {
            const t0 = performance.now();
            const status = await new Promise((r) => { done = r; sock.write('GET /' + p + ' HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n'); });
            if (status !== 200) throw new Error(p + ' ' + status);
            lat[p].push(performance.now() - t0);
          }
          await new Promise((r) => setTimeout(r, 10));
        }
        parentPort.postMessage(lat);
      });`, { eval: true, workerData: server.url });
    const latencies = new Promise((resolve, reject) => { probe.on('message', resolve); probe.on('error', reject); });
    const body = JSON.stringify({ model: MODEL, prompt: 'Once upon a time', max_tokens: 100, ignore_eos: true, temperature: 1, stream: true });
    const t0 = performance.now();
    const streams = await Promise.all(Array.from({ length: 256 }, () => new Promise((resolve) => {
      const sock = net.connect(hostPort(server.url));
      let tail = '';
      sock.on('data', (d) => { tail = (tail + d.toString('latin1')).slice(-64); });
      sock.on('close', () => resolve(tail));
      sock.on('error', () => resolve(tail));
      sock.write(post('/v1/completions', body, 'Connection: close\r\n'));
    })));
    const ms = performance.now() - t0;
    probe.postMessage('stop');
    const lat = await latencies;
    await probe.terminate();
    assert.ok(streams.every((t) => t.includes('data: [DONE]')), 'every stream ended with [DONE]');
    // The 99th percentile, not the maximum: on a 2-core machine one probe can lose its core to the
    // streams' client for a scheduler slice; what the target is about is the server making probes wait.
    const all = [...lat.health, ...lat.metrics].sort((a, b) => a - b);
    const p99 = all[Math.floor(0.99 * (all.length - 1))];
    console.log(`256 streams in ${ms.toFixed(0)} ms; /health ${lat.health.length} probes, max ${Math.max(...lat.health).toFixed(1)} ms; ` +
      `/metrics max ${Math.max(...lat.metrics).toFixed(1)} ms; p99 of both ${p99.toFixed(1)} ms`);
    assert.ok(lat.health.length >= 10, `only ${lat.health.length} probes ran`);
    assert.ok(p99 < 50, `the 99th percentile probe took ${p99} ms`);
  });
});

describe('SIGTERM drains', () => {
  test('streams end with a final chunk and [DONE], new requests get 503, exit within 5 s', async () => {
    // Two sequences at a time and a short grace: some streams finish, some are cut at the end of
    // the grace, some never started (503); a client that reads nothing and a slow head must not
    // hold the exit.
    const server = await startServer(['--max-batch-size', '2', '--shutdown-grace', '0.5']);
    const idle = await Promise.all(Array.from({ length: 200 }, () => idleConnection(server.url)));
    const loris = await open(server.url);
    loris.sock.on('error', () => {});
    loris.sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const trickle = setInterval(() => loris.sock.write('x'), 200);
    const stuck = await open(server.url);
    stuck.sock.on('error', () => {});
    stuck.sock.pause();  // reads nothing: its answer piles up in the socket buffers
    stuck.sock.write(post('/v1/chat/completions', chatBody({ stream: true, max_tokens: 480, ignore_eos: true, n: 4, logprobs: true, top_logprobs: 20 })));

    const started = [];
    const streams = Array.from({ length: 12 }, (_, i) => new Promise((resolve) => {
      const sock = net.connect(hostPort(server.url));
      let text = '';
      sock.on('data', (d) => { text += d.toString('utf8'); if (text.includes('data: ')) started[i] = true; });
      sock.on('close', () => resolve(text));
      sock.on('error', () => resolve(text));
      sock.write(post('/v1/chat/completions', chatBody({ stream: true, max_tokens: 480, ignore_eos: true }), 'Connection: close\r\n'));
    }));
    while (started.filter(Boolean).length < 2) await sleep(5);

    const t0 = performance.now();
    server.proc.kill('SIGTERM');
    const exited = server.exitPromise.then((e) => ({ ...e, ms: performance.now() - t0 }));
    await sleep(50);
    const late = await raw(server.url, Buffer.from(post('/v1/chat/completions', chatBody())), 3000);
    assert.equal(late.status, 503, `a request after SIGTERM: ${late.head}`);
    assert.equal(JSON.parse(late.body).error.code, 'shutting_down');
    assert.match(late.head, /\r\nConnection: close/i);
    await sleep(200);
    assert.equal(idle.filter((s) => s.closed).length, 200, 'idle keep-alive connections are closed at once');

    const texts = await Promise.all(streams);
    clearInterval(trickle);
    const exit = await exited;
    console.log(`SIGTERM to exit: ${exit.ms.toFixed(0)} ms`);
    assert.equal(exit.code, 0);
    assert.ok(exit.ms < 5000, `exit took ${exit.ms} ms`);
    let drained = 0, refused = 0;
    for (const t of texts) {
      if (t.startsWith('HTTP/1.1 503 ')) {
        assert.match(t, /shutting_down/);
        ++refused;
        continue;
      }
      assert.match(t, /^HTTP\/1\.1 200 /, t.slice(0, 100));
      assert.ok(t.endsWith('data: [DONE]\n\n\r\n0\r\n\r\n'), `a stream without its end: ${JSON.stringify(t.slice(-120))}`);
      assert.match(t, /"finish_reason":"length"/);
      assert.doesNotMatch(t, /"abort"/);
      ++drained;
    }
    console.log(`${drained} streams drained (final chunk, [DONE]), ${refused} not started yet got 503`);
    assert.ok(drained >= 2);
    stuck.sock.destroy();
    loris.sock.destroy();
    for (const s of idle) s.sock.destroy();
  });
});
