// Starts a real `lmw serve` on a free loopback port and stops it (SIGTERM) after the tests.
import { spawn } from 'node:child_process';

export const LMW = process.env.LMW_BIN;
export const MODEL_DIR = process.env.LMW_MODEL;

export async function startServer(extraArgs = [], modelDir = MODEL_DIR) {
  if (!LMW || !modelDir) throw new Error('set LMW_BIN and LMW_MODEL');
  // extraArgs may name the address itself (e.g. to test the default or 0.0.0.0).
  const host = extraArgs.includes('--server-name') ? [] : ['--server-name', '127.0.0.1'];
  const args = ['serve', modelDir, ...host, '--server-port', '0', '--backend', 'cpu', ...extraArgs];
  const proc = spawn(LMW, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const server = { proc, url: null, stderr: '', exited: null };
  proc.stderr.on('data', (d) => { server.stderr += d.toString(); });
  server.exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => { server.exited = { code, signal }; resolve(server.exited); }));
  server.url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lmw serve did not print its URL in 60 s:\n${stdout}\n${server.stderr}`)), 60000);
    proc.stdout.on('data', (d) => {
      stdout += d.toString();
      const m = stdout.match(/ at (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`lmw serve exited (${code}) before it was ready:\n${server.stderr}`)); });
  });
  server.stop = async () => {
    if (server.exited) return server.exited;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    const r = await server.exitPromise;
    clearTimeout(t);
    return r;
  };
  return server;
}

// Prometheus text -> { 'name{labels}': value }
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

export async function metrics(url) {
  const r = await fetch(`${url}/metrics`);
  return parseMetrics(await r.text());
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
