// Encode throughput of @huggingface/transformers (Node, one thread) on the same documents and the
// same measurement as `lmw bench-tokenizer`; the token count and checksum must match it.
//   cd bench/tokenizer && npm install --ignore-scripts && node bench_transformers_js.mjs MODEL_DIR TEXT [PASSES]
import fs from 'node:fs';
import path from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';

const [modelDir, textFile, passesArg] = process.argv.slice(2);
if (!modelDir || !textFile) {
  console.error('usage: node bench_transformers_js.mjs MODEL_DIR TEXT [PASSES]');
  process.exit(2);
}
const passes = Number(passesArg ?? 3);
env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(modelDir));

const text = fs.readFileSync(textFile, 'utf8');
const docs = [];
for (let start = 0; start < text.length;) {
  const at = text.indexOf('\n\n', start);
  const end = at < 0 ? text.length : at + 2;
  docs.push(text.slice(start, end));
  start = end;
}

const t0 = performance.now();
const tok = await AutoTokenizer.from_pretrained(path.basename(path.resolve(modelDir)), { local_files_only: true });
const loadS = (performance.now() - t0) / 1000;

const seconds = [];
let out = [];
for (let p = 0; p < passes; ++p) {
  const start = performance.now();
  out = docs.map((d) => tok.encode(d, { add_special_tokens: false }));
  seconds.push((performance.now() - start) / 1000);
}
let tokens = 0;
let h = 0;
for (const ids of out) {
  tokens += ids.length;
  for (const id of ids) h = (Math.imul(h, 31) + id + 1) >>> 0;
}
const mb = Buffer.byteLength(text, 'utf8') / 1e6;
const best = Math.min(...seconds);
const version = JSON.parse(fs.readFileSync(new URL('./node_modules/@huggingface/transformers/package.json', import.meta.url))).version;
console.log(`@huggingface/transformers ${version} ${modelDir}: loaded in ${loadS.toFixed(2)} s`);
console.log(`  text ${mb.toFixed(2)} MB in ${docs.length} documents -> ${tokens} tokens, checksum ${h.toString(16).padStart(8, '0')}`);
console.log(`  encode, 1 thread: ${(mb / seconds[0]).toFixed(2)} MB/s first pass, ${(mb / best).toFixed(2)} MB/s best of ${passes} (${(tokens / best).toFixed(0)} tokens/s)`);
