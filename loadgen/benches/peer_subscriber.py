#!/usr/bin/env python3
"""Peer for BENCHMARKS.md: a Python `websockets` subscriber doing what a
typical load generator does per delivery (full JSON parse, per-publisher
sequence check, latency sample), on the same relay, topics and stream as
squall's engine in the same run. Prints its CPU seconds per million
deliveries.

python3 loadgen/benches/peer_subscriber.py URL CONNECTIONS TOPICS SECONDS
"""

import asyncio
import json
import resource
import sys
import time

import websockets


async def subscriber(url, topic, stop_at, counts, last_seq, latencies):
    async with websockets.connect(url, max_size=1 << 20) as ws:
        await ws.send(json.dumps({"type": "Subscribe", "data": {"topics": [topic]}}))
        while time.monotonic() < stop_at:
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=max(0.01, stop_at - time.monotonic()))
            except asyncio.TimeoutError:
                break
            msg = json.loads(frame)
            if msg.get("type") != "Broadcast":
                continue
            data = msg["data"]
            counts[0] += 1
            key = (id(ws), data["from"])
            seq = data["sequence"]
            if last_seq.get(key, -1) >= seq:
                counts[1] += 1
            last_seq[key] = seq
            stamp = data["payload"].split("~")[1]
            scheduled_ns = int(stamp.split(".")[2])
            latencies.append(time.monotonic_ns() - scheduled_ns)


async def main():
    url, connections, topics, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    stop_at = time.monotonic() + seconds
    counts, last_seq, latencies = [0, 0], {}, []
    await asyncio.gather(
        *(subscriber(url, f"topic-{i % topics}", stop_at, counts, last_seq, latencies) for i in range(connections))
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({
        "received": counts[0],
        "out_of_order": counts[1],
        "cpu_s": cpu,
        "cpu_s_per_million_received": cpu / max(counts[0], 1) * 1e6,
    }))


asyncio.run(main())
