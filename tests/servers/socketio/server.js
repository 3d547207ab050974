// A plain Socket.IO 4 pub/sub app, the pattern of the socket.io docs' "rooms":
// `subscribe` joins the room named by the topic and calls the ack, `publish`
// with {topic, payload} emits `message` {topic, payload} to that room.
// Usage: node server.js PORT   (listens on 127.0.0.1 only)
// Env: PING_INTERVAL_MS / PING_TIMEOUT_MS shorten Engine.IO's heartbeat
// (defaults 25000 / 20000) so a test can see the keepalive at work.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("usage: node server.js PORT");
  process.exit(2);
}

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok", server: "socket.io", clients: io.engine.clientsCount }));
    return;
  }
  // Engine.IO answers /socket.io/ itself and hands every other request here.
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

const options = {};
if (process.env.PING_INTERVAL_MS) options.pingInterval = Number(process.env.PING_INTERVAL_MS);
if (process.env.PING_TIMEOUT_MS) options.pingTimeout = Number(process.env.PING_TIMEOUT_MS);
const io = new Server(httpServer, options);

io.on("connection", (socket) => {
  socket.on("subscribe", (topic, ack) => {
    if (typeof topic !== "string" || topic === "") {
      if (typeof ack === "function") ack({ ok: false, error: "topic must be a non-empty string" });
      return;
    }
    socket.join(topic);
    if (typeof ack === "function") ack({ ok: true, topic });
  });
  socket.on("publish", (msg, ack) => {
    if (!msg || typeof msg.topic !== "string") {
      if (typeof ack === "function") ack({ ok: false, error: "publish needs {topic, payload}" });
      return;
    }
    io.to(msg.topic).emit("message", { topic: msg.topic, payload: msg.payload });
    if (typeof ack === "function") ack({ ok: true });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`socket.io server listening on 127.0.0.1:${port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
