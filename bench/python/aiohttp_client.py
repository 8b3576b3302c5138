#!/usr/bin/env python3
"""The job_load benchmark's Python peer: what a user would otherwise write to
run many jobs at once (Debian packages python3-aiohttp and python3-tenacity).

One aiohttp ClientSession with TCPConnector(limit=CONNECTIONS); each job
submits (POST /v1/jobs), then GETs /v1/jobs/{id} every INTERVAL seconds
(asyncio.sleep between polls) until "completed"; tenacity retries a request
on 429, 5xx and connection errors; asyncio.gather runs every job at once.

    aiohttp_client.py --url https://127.0.0.1:PORT --jobs N [--connections 100]
                      [--interval 0.5] [--ca-file FILE] [--body JSON]

Prints "ok=<n> failed=<n> wall_s=<s>" on one line; exits 0 when every job
completed, 1 otherwise.
"""

import argparse
import asyncio
import json
import ssl
import sys
import time

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential


class Transient(Exception):
    """A 429 or 5xx answer: worth another try."""


def transient(error):
    return isinstance(error, (Transient, aiohttp.ClientConnectionError, asyncio.TimeoutError))


async def request(session, method, url, body=None):
    async for attempt in AsyncRetrying(retry=retry_if_exception(transient), stop=stop_after_attempt(10),
                                       wait=wait_exponential(multiplier=0.1, max=5), reraise=True):
        with attempt:
            async with session.request(method, url, data=body,
                                       headers={"Content-Type": "application/json"} if body else None) as r:
                if r.status == 429 or r.status >= 500:
                    raise Transient("%s %s answered %d" % (method, url, r.status))
                r.raise_for_status()
                return await r.json()


async def run_job(session, base, body, interval):
    job = await request(session, "POST", base + "/v1/jobs", body)
    url = base + "/v1/jobs/" + job["job_id"]
    for _ in range(100000):  # bounded: a job that never completes ends the run as failed
        answer = await request(session, "GET", url)
        if answer["status"] == "completed":
            return answer.get("result")
        if answer["status"] != "running":
            raise RuntimeError("job %s: unexpected status %r" % (job["job_id"], answer["status"]))
        await asyncio.sleep(interval)
    raise RuntimeError("job %s never completed" % job["job_id"])


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--ca-file")
    parser.add_argument("--body", default='{"seconds": 2}')
    args = parser.parse_args()
    if not args.url.startswith(("http://127.0.0.1", "https://127.0.0.1")):
        sys.exit("aiohttp_client.py: only 127.0.0.1 is polled, got " + args.url)

    ssl_context = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    connector = aiohttp.TCPConnector(limit=args.connections, ssl=ssl_context if ssl_context else None)
    start = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        results = await asyncio.gather(*(run_job(session, args.url, args.body, args.interval)
                                         for _ in range(args.jobs)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    print("ok=%d failed=%d wall_s=%.3f" % (len(results) - len(failed), len(failed), time.monotonic() - start))
    if failed:
        print("first failure: %r" % failed[0], file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
