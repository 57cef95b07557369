// Express peer for the benchmark (python -m bench): one process, NODE_ENV=production (Express's documented production setting),
// no logging middleware. Express has no models: the 1 KB body is checked by a hand-written validator.
'use strict';
const express = require('express');

const app = express();
const HELLO = 'Hello, World!';

function validItem(b) {
  return b !== null && typeof b === 'object' && typeof b.name === 'string' && typeof b.price === 'number' &&
    Array.isArray(b.tags) && b.tags.every((t) => typeof t === 'string') && typeof b.description === 'string';
}

app.get('/plaintext', (req, res) => { res.type('text/plain').send(HELLO); });
app.get('/json', (req, res) => { res.json({ message: HELLO }); });
app.get('/users/:userId', (req, res) => {
  const id = Number.parseInt(req.params.userId, 10);
  if (!/^[0-9]+$/.test(req.params.userId)) { res.status(422).json({ detail: 'user_id must be an integer' }); return; }
  res.json({ id, q: req.query.q === undefined ? null : req.query.q });
});
app.post('/items', express.json(), (req, res) => {
  if (!validItem(req.body)) { res.status(422).json({ detail: 'invalid item' }); return; }
  res.json({ name: req.body.name, tag_count: req.body.tags.length });
});
app.get('/sleep', async (req, res) => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  res.type('text/plain').send(HELLO);
});

app.listen(Number(process.env.BENCH_PORT), '127.0.0.1');
