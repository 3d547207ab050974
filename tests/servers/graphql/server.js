// A plain graphql-ws server, the pattern of the graphql-ws README ("use/ws"
// with a buildSchema schema and roots), over the `ws` package: the
// `graphql-transport-ws` subprotocol at /graphql. `publish(topic, payload)`
// fans the payload out to every `messages(topic)` subscription through the
// in-memory PubSub of graphql-subscriptions.
// Usage: node server.js PORT   (listens on 127.0.0.1 only)
"use strict";

const http = require("http");
const { EventEmitter } = require("events");
const { buildSchema } = require("graphql");
const { PubSub } = require("graphql-subscriptions");
const { WebSocketServer } = require("ws");
const { useServer } = require("graphql-ws/use/ws");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("usage: node server.js PORT");
  process.exit(2);
}

const schema = buildSchema(`
  type Query { hello: String }
  type Subscription { messages(topic: String!): String }
  type Mutation { publish(topic: String!, payload: String!): Boolean }
`);

// One listener per subscription on a topic: many subscribers per topic is the point.
const emitter = new EventEmitter();
emitter.setMaxListeners(0);
const pubsub = new PubSub({ eventEmitter: emitter });

const roots = {
  query: {
    hello: () => "Hello World!",
  },
  mutation: {
    publish: async ({ topic, payload }) => {
      await pubsub.publish(`messages:${topic}`, { messages: payload });
      return true;
    },
  },
  subscription: {
    messages: ({ topic }) => pubsub.asyncIterableIterator(`messages:${topic}`),
  },
};

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok", server: "graphql-ws", clients: wsServer.clients.size }));
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

const wsServer = new WebSocketServer({ server: httpServer, path: "/graphql" });
useServer({ schema, roots }, wsServer);

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`graphql-ws server listening on 127.0.0.1:${port}/graphql`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    wsServer.close();
    httpServer.close();
    process.exit(0);
  });
}
