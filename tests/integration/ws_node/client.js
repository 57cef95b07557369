#!/usr/bin/env node
// Echo client for CovetPy's black-box WebSocket tests, on the npm `ws` package.
//
//   node client.js URL [--deflate on|off] [--ca FILE] [--count N]
//
// Sends a small text message, a large compressible text message, a random binary message and a
// burst of N numbered text messages, checks that each echo is identical (type and content) and in
// order, then closes with 1000 "done". Prints one JSON line on stdout:
//   {"ok": bool, "extensions": "<Sec-WebSocket-Extensions answered>", "negotiated": {...},
//    "checked": N, "closeCode": n, "closeReason": "...", "error": "..."}
// and exits 0 when ok, 1 otherwise.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const WebSocket = require('ws');

function parseArgs(argv) {
  const out = { url: null, deflate: true, ca: null, count: 200 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--deflate') out.deflate = argv[++i] !== 'off';
    else if (a === '--ca') out.ca = argv[++i];
    else if (a === '--count') out.count = Number(argv[++i]);
    else if (!out.url) out.url = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!out.url) throw new Error('usage: client.js URL [--deflate on|off] [--ca FILE] [--count N]');
  return out;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const result = { ok: false, extensions: null, negotiated: null, checked: 0, closeCode: null,
                   closeReason: null, error: null };
  let finished = false;
  const finish = (err) => {
    if (finished) return;
    finished = true;
    if (err) result.error = String(err && err.stack || err);
    result.ok = !result.error;
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(result.ok ? 0 : 1);
  };
  const timer = setTimeout(() => finish(new Error('timed out after 30 s')), 30000);

  const options = { perMessageDeflate: args.deflate, handshakeTimeout: 10000 };
  if (args.ca) options.ca = fs.readFileSync(args.ca);
  const ws = new WebSocket(args.url, options);

  const big = 'covet websocket interop '.repeat(40000);  // ~960 KB, compresses well
  const expected = [
    { data: 'hello from node ws', binary: false },
    { data: big, binary: false },
    { data: crypto.randomBytes(65536), binary: true },
  ];
  for (let i = 0; i < args.count; i++) expected.push({ data: `burst message #${i}`, binary: false });

  ws.on('upgrade', (res) => { result.extensions = res.headers['sec-websocket-extensions'] || ''; });
  ws.on('open', () => {
    const ext = ws._extensions && ws._extensions['permessage-deflate'];
    result.negotiated = ext ? { 'permessage-deflate': ext.params || true } : {};
    for (const m of expected) ws.send(m.data, { binary: m.binary });
  });
  ws.on('message', (data, isBinary) => {
    const want = expected[result.checked];
    if (!want) return finish(new Error(`unexpected extra message (${data.length} bytes)`));
    const same = want.binary
      ? isBinary && Buffer.compare(Buffer.from(data), want.data) === 0
      : !isBinary && data.toString('utf8') === want.data;
    if (!same) {
      return finish(new Error(`echo #${result.checked} differs: binary=${isBinary} length=${data.length}, ` +
                              `expected binary=${want.binary} length=${want.data.length}`));
    }
    result.checked++;
    if (result.checked === expected.length) ws.close(1000, 'done');
  });
  ws.on('close', (code, reason) => {
    clearTimeout(timer);
    result.closeCode = code;
    result.closeReason = reason.toString('utf8');
    if (result.checked !== expected.length) {
      return finish(new Error(`closed after ${result.checked} of ${expected.length} echoes`));
    }
    finish(null);
  });
  ws.on('error', (err) => finish(err));
}

try {
  main();
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(err) }) + '\n');
  process.exit(2);
}
