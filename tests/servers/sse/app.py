"""A plain Server-Sent Events pub/sub app: FastAPI + sse-starlette + uvicorn.

Usage: target/py-servers/bin/python tests/servers/sse/app.py PORT [CERT KEY]   (127.0.0.1 only)

With CERT and KEY (PEM files) it serves HTTPS with them (uvicorn's TLS).

  GET  /events/{topic}   text/event-stream; each payload published to the topic
                         arrives as one event, `data: <payload>`
  POST /publish/{topic}  the raw request body is the payload; fans out to every
                         subscriber of the topic; 200 {"subscribers": N}
  GET  /health           200 {"status": "ok", ...}

Each subscriber has its own asyncio.Queue; a publish puts the payload on the
queue of every subscriber of that topic. Nothing is kept for late subscribers.
"""

import asyncio
import sys
from collections import defaultdict

import uvicorn
from fastapi import FastAPI, Request
from sse_starlette import EventSourceResponse

app = FastAPI(title="squall test SSE pub/sub")
subscribers: dict[str, set[asyncio.Queue]] = defaultdict(set)


@app.get("/health")
async def health() -> dict:
    return {
        "status": "ok",
        "server": "fastapi+sse-starlette",
        "subscribers": sum(len(s) for s in subscribers.values()),
    }


@app.get("/events/{topic}")
async def events(topic: str, request: Request) -> EventSourceResponse:
    # Registered before the response starts: once the client has the headers,
    # every later publish to the topic reaches it.
    queue: asyncio.Queue = asyncio.Queue()
    subscribers[topic].add(queue)

    async def stream():
        try:
            while True:
                payload = await queue.get()
                yield {"data": payload}
        finally:
            subscribers[topic].discard(queue)
            if not subscribers[topic]:
                del subscribers[topic]

    return EventSourceResponse(stream())


@app.post("/publish/{topic}")
async def publish(topic: str, request: Request) -> dict:
    payload = (await request.body()).decode("utf-8", errors="replace")
    targets = list(subscribers.get(topic, ()))
    for queue in targets:
        queue.put_nowait(payload)
    return {"subscribers": len(targets)}


if __name__ == "__main__":
    if len(sys.argv) not in (2, 4) or not sys.argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    tls = {"ssl_certfile": sys.argv[2], "ssl_keyfile": sys.argv[3]} if len(sys.argv) == 4 else {}
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **tls)
