#!/usr/bin/env python3
"""A minimal HTTP/2 job server on loopback over TLS (hypercorn, ALPN h2 and
http/1.1), for jobpoll's HTTP/2 integration test and benchmark. Needs the Debian
packages python3-hypercorn and python3-h2 (run it with /usr/bin/python3).

Usage
-----
    python3 h2_server.py --tls-cert FILE --tls-key FILE [--port 0] [--ignore-stdin]

--port          port to bind on 127.0.0.1; 0 (the default) lets the OS choose.
--tls-cert FILE the server's certificate chain (PEM); required: clients reach
                HTTP/2 through ALPN over TLS. HTTP/1.1 is offered too, so one
                server answers both protocols.
--tls-key FILE  the unencrypted PEM private key of --tls-cert; required.
--ignore-stdin  do not exit when stdin reaches EOF.

Once bound, it prints exactly one line "PORT <n>" to stdout and flushes. It
exits with status 0 on SIGTERM or SIGINT, and when its stdin reaches EOF
(unless --ignore-stdin), like job_server.py, so the same fixtures can start it.

Job API
-------
POST /v1/jobs   body (JSON object, every field optional):
                  "steps": int >= 0   GETs that answer "running" before "completed" (default 2)
                  "seconds": number   instead: "completed" once this much time has
                                      passed since the submit (steady clock)
                  "result": any       (default null)
    -> 202 {"job_id": "job-<n>", "status": "running"}; ids job-1, job-2, ...
GET /v1/jobs/{id}
    -> 200 {"job_id", "status": "running" | "completed", "polls": p[, "result"]};
    every GET is one more poll p; unknown id -> 404 {"error": ...}.

Control (not logged, not counted)
---------------------------------
GET  /_control/log    every job request so far, in arrival order:
                      {"method", "path", "status", "http_version" ("1.1" or "2"),
                       "client": [host, port] (the client's end of the connection:
                       one port per connection), "in_flight" (job requests being
                       answered when it arrived, itself included)}
GET  /_control/stats  {"requests": job requests so far, "connections": distinct client ports}
POST /_control/hold   body {"count": n, "timeout": seconds (default 10)}: the next n
                      GET /v1/jobs/{id} are held until n of them are in flight at once
                      (or `timeout` passes: then the hold ends for all of them, a
                      failure guard), then all answered: n requests in flight
                      over one connection shows they were multiplexed.
POST /_control/reset  no jobs, no log, no hold.
"""

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
import time

from hypercorn.asyncio import serve
from hypercorn.config import Config


class State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.jobs = {}  # id -> {"steps", "deadline" (or None), "result", "polls"}
        self.next_id = 1
        self.log = []
        self.requests = 0
        self.in_flight = 0
        self.hold = None  # {"left": n, "arrived": 0, "event": asyncio.Event, "timeout": s}


STATE = State()


async def read_body(receive):
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def answer(send, status, value):
    data = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def held(hold):
    """Waits until every request of the hold has arrived, or its timeout."""
    hold["arrived"] += 1
    if hold["arrived"] >= hold["count"]:
        hold["event"].set()
        return
    try:
        await asyncio.wait_for(hold["event"].wait(), hold["timeout"])
    except asyncio.TimeoutError:
        hold["event"].set()  # a failed hold ends for every request, not one timeout each


def job_answer(job_id, job):
    job["polls"] += 1
    if job["deadline"] is not None:
        done = time.monotonic() >= job["deadline"]
    else:
        done = job["polls"] > job["steps"]
    value = {"job_id": job_id, "status": "completed" if done else "running", "polls": job["polls"]}
    if done:
        value["result"] = job["result"]
    return value


async def control(scope, receive, send, path):
    method = scope["method"]
    if method == "GET" and path == "/_control/log":
        return await answer(send, 200, STATE.log)
    if method == "GET" and path == "/_control/stats":
        ports = {tuple(e["client"]) for e in STATE.log}
        return await answer(send, 200, {"requests": STATE.requests, "connections": len(ports)})
    if method == "POST" and path == "/_control/reset":
        STATE.reset()
        return await answer(send, 200, {})
    if method == "POST" and path == "/_control/hold":
        try:
            body = json.loads(await read_body(receive) or b"{}")
            count = int(body["count"])
            timeout = float(body.get("timeout", 10))
        except (ValueError, KeyError, TypeError) as e:
            return await answer(send, 400, {"error": "hold needs {\"count\": n}: " + str(e)})
        STATE.hold = {"count": count, "left": count, "arrived": 0, "event": asyncio.Event(), "timeout": timeout}
        return await answer(send, 200, {"count": count, "timeout": timeout})
    return await answer(send, 404, {"error": "unknown control request " + method + " " + path})


async def jobs(scope, receive, send, path):
    method = scope["method"]
    if method == "POST" and path == "/v1/jobs":
        try:
            raw = await read_body(receive)
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("not an object")
            steps = int(body.get("steps", 2))
            seconds = body.get("seconds")
            deadline = None if seconds is None else time.monotonic() + float(seconds)
        except (ValueError, TypeError) as e:
            return 400, {"error": "malformed submit body: " + str(e)}
        job_id = "job-%d" % STATE.next_id
        STATE.next_id += 1
        STATE.jobs[job_id] = {"steps": steps, "deadline": deadline, "result": body.get("result"), "polls": 0}
        return 202, {"job_id": job_id, "status": "running"}
    if method == "GET" and path.startswith("/v1/jobs/") and "/" not in path[len("/v1/jobs/"):]:
        job_id = path[len("/v1/jobs/"):]
        hold = STATE.hold
        if hold is not None:
            hold["left"] -= 1
            if hold["left"] == 0:
                STATE.hold = None
            await held(hold)
        job = STATE.jobs.get(job_id)
        if job is None:
            return 404, {"error": "unknown job " + job_id}
        return 200, job_answer(job_id, job)
    return 404, {"error": "no such endpoint " + method + " " + path}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/_control/"):
        return await control(scope, receive, send, path)
    STATE.requests += 1
    STATE.in_flight += 1
    entry = {"method": scope["method"], "path": path, "status": None,
             "http_version": scope.get("http_version"), "client": list(scope.get("client") or ("", 0)),
             "in_flight": STATE.in_flight}
    STATE.log.append(entry)
    try:
        status, value = await jobs(scope, receive, send, path)
        entry["status"] = status
        await answer(send, status, value)
    finally:
        STATE.in_flight -= 1


async def main():
    parser = argparse.ArgumentParser(description="HTTP/2 job server on loopback (TLS)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--ignore-stdin", action="store_true")
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.set_inheritable(True)

    config = Config()
    config.bind = ["fd://%d" % sock.fileno()]
    config.certfile = args.tls_cert
    config.keyfile = args.tls_key
    config.alpn_protocols = ["h2", "http/1.1"]
    config.backlog = 1024
    config.h2_max_concurrent_streams = 1000
    config.keep_alive_timeout = 120
    config.accesslog = None
    config.errorlog = None  # quiet: a test reads only the PORT line

    loop = asyncio.get_running_loop()
    # hypercorn 0.13 on Python 3.11 reports "Task was destroyed but it is
    # pending" and "coroutine ignored GeneratorExit" on stderr whenever a
    # client closes an HTTP/2 connection; the requests were all answered.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not args.ignore_stdin:
        def on_stdin():
            try:
                data = sys.stdin.buffer.raw.read(4096)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(sys.stdin.fileno())
                stop.set()
        loop.add_reader(sys.stdin.fileno(), on_stdin)

    # hypercorn listens on the socket it is given; the port is known now.
    sock.listen(config.backlog)
    print("PORT %d" % sock.getsockname()[1], flush=True)
    await serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)
