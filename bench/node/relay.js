// A minimal relay of squall's wire protocol (DESIGN.md) on Node and `ws`,
// written only as the peer in the relay benchmarks (results/BENCHMARKS.md).
// Subscribe/Unsubscribe/Broadcast/Direct/Ping, per-topic sequences, HS256 JWT
// at the upgrade (or --no-auth), GET /health. Idiomatic and unoptimised
// beyond the obvious: each delivery is encoded once and sent as one buffer to
// every subscriber. Not implemented: metrics, rate limits, pings, bugs.
//
// node relay.js [--port 0] [--ready-file F] [--jwt-secret S | --no-auth]
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const port = Number(flag('--port', '8090'));
const readyFile = flag('--ready-file', null);
const noAuth = args.includes('--no-auth');
const secret = flag('--jwt-secret', process.env.SQUALL_JWT_SECRET);
if (!noAuth && !secret) {
  console.error('pass --jwt-secret S (or SQUALL_JWT_SECRET) or --no-auth');
  process.exit(2);
}
const SLOW_CONSUMER_BYTES = 1 << 20;
const started = Date.now();

// HS256 verification with a 60 s leeway; returns the sub claim or null.
function verify(token) {
  const parts = (token || '').split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    if (header.alg !== 'HS256') return null;
    const mac = crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest();
    const sig = Buffer.from(parts[2], 'base64url');
    if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return null;
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
    if (typeof claims.exp !== 'number' || claims.exp + 60 < Date.now() / 1000) return null;
    return typeof claims.sub === 'string' ? claims.sub : null;
  } catch (_) {
    return null;
  }
}

const topics = new Map(); // name -> { seq, subs: Set<ws> }
const users = new Map(); // sub -> Set<ws>
let connections = 0;

function deliver(targets, frame) {
  for (const ws of targets) {
    if (ws.bufferedAmount > SLOW_CONSUMER_BYTES) {
      ws.close(1013, 'slow consumer');
      continue;
    }
    ws.send(frame, { binary: false });
  }
}

function reply(ws, type, data) {
  ws.send(JSON.stringify({ type, data }));
}

function onMessage(ws, raw, isBinary) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch (e) {
    return reply(ws, 'Error', { code: 'bad_json', message: String(e.message) });
  }
  const data = msg.data || {};
  switch (msg.type) {
    case 'Subscribe':
      for (const t of data.topics) {
        let topic = topics.get(t);
        if (!topic) topics.set(t, (topic = { seq: 0, subs: new Set() }));
        topic.subs.add(ws);
        ws.topics.add(t);
      }
      return reply(ws, 'Status', { status: 'subscribed', details: { topics: data.topics } });
    case 'Unsubscribe':
      for (const t of data.topics) {
        const topic = topics.get(t);
        if (topic) topic.subs.delete(ws);
        ws.topics.delete(t);
      }
      return reply(ws, 'Status', { status: 'unsubscribed', details: { topics: data.topics } });
    case 'Broadcast': {
      let topic = topics.get(data.topic);
      if (!topic) topics.set(data.topic, (topic = { seq: 0, subs: new Set() }));
      const out = { type: 'Broadcast', data: { topic: data.topic, payload: data.payload, sequence: topic.seq++, from: ws.user } };
      return deliver(topic.subs, Buffer.from(JSON.stringify(out)));
    }
    case 'Direct': {
      const targets = users.get(data.to);
      if (!targets) return reply(ws, 'Error', { code: 'unknown_recipient', message: 'no such user' });
      return deliver(targets, Buffer.from(JSON.stringify({ type: 'Direct', data: { from: ws.user, payload: data.payload } })));
    }
    case 'Ping':
      return reply(ws, 'Pong', { timestamp: data.timestamp });
    default:
      return reply(ws, 'Error', { code: 'unknown_type', message: 'unknown message type' });
  }
}

const wss = new WebSocketServer({ noServer: true, maxPayload: 65536, perMessageDeflate: false, clientTracking: false });

wss.on('connection', (ws, user) => {
  connections++;
  ws.user = user;
  ws.topics = new Set();
  let mine = users.get(user);
  if (!mine) users.set(user, (mine = new Set()));
  mine.add(ws);
  ws.on('message', (raw, isBinary) => onMessage(ws, raw, isBinary));
  ws.on('error', () => {});
  ws.on('close', () => {
    connections--;
    for (const t of ws.topics) topics.get(t)?.subs.delete(ws);
    mine.delete(ws);
    if (mine.size === 0) users.delete(user);
  });
});

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ status: 'ok', connections, uptime_s: (Date.now() - started) / 1000 }));
  }
  res.writeHead(404);
  res.end('not found\n');
});

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://relay');
  const auth = req.headers.authorization || '';
  const token = auth.startsWith('Bearer ') ? auth.slice(7) : url.searchParams.get('token');
  const user = noAuth ? 'anonymous' : verify(token);
  if (!user) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 14\r\n\r\ninvalid token\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, user));
});

server.listen(port, '127.0.0.1', () => {
  const addr = `127.0.0.1:${server.address().port}`;
  console.error(`node peer relay listening on ${addr}`);
  if (readyFile) {
    fs.writeFileSync(readyFile + '.tmp', addr);
    fs.renameSync(readyFile + '.tmp', readyFile);
  }
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
