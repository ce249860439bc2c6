// Raw HTTP/1.1 over node:net for tests that send what no well-behaved client would (broken
// framing, pipelining, half-closes, slow bytes). Needs only node itself.
import net from 'node:net';

export function hostPort(url) {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port) };
}

// Sends raw bytes on a fresh connection; resolves with what came back once the server closes
// the connection, a complete Content-Length answer arrived, or timeoutMs passed.
export function raw(url, data, timeoutMs = 15000) {
  return new Promise((resolve) => {
    const sock = net.connect(hostPort(url));
    const parts = [];
    let done = false;
    const t0 = Date.now();
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(parts).toString('latin1');
      const m = text.match(/^HTTP\/1\.[01] (\d{3})/);
      const sep = text.indexOf('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : 0, head: sep >= 0 ? text.slice(0, sep) : text, body: sep >= 0 ? text.slice(sep + 4) : '',
        text, why, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('data', (d) => {
      parts.push(d);
      // A complete answer with a Content-Length ends the wait (a broken request may be kept alive).
      const text = Buffer.concat(parts).toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const len = text.match(/\r\ncontent-length: (\d+)/i);
      if (sep >= 0 && len && text.length - sep - 4 >= Number(len[1]) && !/^HTTP\/1\.1 100 /.test(text.slice(0, 13))) finish('complete');
    });
    sock.on('end', () => finish('end'));
    sock.on('close', () => finish('close'));
    sock.on('error', () => { /* EPIPE/ECONNRESET when the server refuses a huge body: read what came */ });
    sock.on('connect', () => {
      for (const d of Array.isArray(data) ? data : [data]) sock.write(d);
    });
  });
}

// Splits a byte stream of HTTP/1.1 responses (Content-Length or chunked bodies) into answers.
// Returns { answers: [{status, headers, body}], rest } with what is not complete yet left in rest.
export function parseResponses(buf) {
  const answers = [];
  let text = buf.toString('latin1');
  for (;;) {
    const sep = text.indexOf('\r\n\r\n');
    if (sep < 0) break;
    const headLines = text.slice(0, sep).split('\r\n');
    const status = Number(headLines[0].split(' ')[1]);
    const headers = {};
    for (const l of headLines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    let rest = text.slice(sep + 4);
    let body;
    if (status === 100) { text = rest; continue; }
    if (headers['transfer-encoding'] === 'chunked') {
      body = '';
      let ok = false;
      for (;;) {
        const eol = rest.indexOf('\r\n');
        if (eol < 0) break;
        const n = parseInt(rest.slice(0, eol), 16);
        if (rest.length < eol + 2 + n + 2) break;
        if (n === 0) { rest = rest.slice(eol + 4); ok = true; break; }
        body += rest.slice(eol + 2, eol + 2 + n);
        rest = rest.slice(eol + 2 + n + 2);
      }
      if (!ok) break;
    } else {
      const n = Number(headers['content-length'] ?? 0);
      if (rest.length < n) break;
      body = rest.slice(0, n);
      rest = rest.slice(n);
    }
    answers.push({ status, headers, body: Buffer.from(body, 'latin1').toString('utf8') });
    text = rest;
  }
  return { answers, rest: Buffer.from(text, 'latin1') };
}

// An open connection that collects answers: send() raw bytes, next(k) waits for k answers.
export async function connection(url) {
  const sock = net.connect(hostPort(url));
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  let buf = Buffer.alloc(0);
  const answers = [];
  let closed = false;
  const waiters = [];
  const wake = () => { for (const w of waiters.splice(0)) w(); };
  sock.on('data', (d) => {
    const p = parseResponses(Buffer.concat([buf, d]));
    answers.push(...p.answers);
    buf = p.rest;
    wake();
  });
  sock.on('close', () => { closed = true; wake(); });
  sock.on('error', () => {});
  return {
    sock,
    answers,
    get closed() { return closed; },
    send(data) { sock.write(data); },
    async next(k = 1, timeoutMs = 10000) {
      const until = Date.now() + timeoutMs;
      while (answers.length < k && !closed && Date.now() < until) {
        await new Promise((r) => { waiters.push(r); setTimeout(r, 50); });
      }
      return answers.splice(0, Math.min(k, answers.length));
    },
    close() { sock.destroy(); },
  };
}

export const get = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
export function post(path, body, extra = '') {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extra}Content-Length: ${b.length}\r\n\r\n`), b]);
}
