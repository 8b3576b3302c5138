#!/usr/bin/env python3
"""A scriptable HTTP/1.1 job server on loopback (HTTPS with --tls-cert and --tls-key),
for jobpoll's integration tests, demo and benchmarks. Python 3 standard library only.

Usage
-----
    python3 job_server.py [--port 0] [--host 127.0.0.1] [--quota N/SECONDS]
                          [--log-requests] [--ignore-stdin]
                          [--tls-cert FILE --tls-key FILE]

--port           port to bind; 0 (the default) lets the OS choose a free port.
--host           address to bind (default 127.0.0.1).
--quota N/S      admit at most N requests in any sliding window of S real seconds
                 (S may be fractional); more answer 429. Off by default.
--log-requests   print one line per request to stderr (silent by default).
--ignore-stdin   do not exit when stdin reaches EOF (for shell scripts that start
                 the server in the background, where stdin is /dev/null).
--tls-cert FILE  serve HTTPS instead of HTTP, with this certificate chain (PEM, the
                 server's certificate first); needs --tls-key. Every endpoint works
                 the same over TLS, control endpoints included. ALPN offers
                 http/1.1 only.
--tls-key FILE   the unencrypted PEM private key of --tls-cert; needs --tls-cert.
                 A client that rejects the certificate just ends its connection:
                 nothing is logged and nothing is printed (one line with
                 --log-requests).

Once bound, the server prints exactly one line "PORT <n>" to stdout and flushes.
It exits with status 0 on SIGTERM or SIGINT, and when its stdin reaches EOF
(unless --ignore-stdin): a test process that dies closes the pipe and so never
leaves a server behind.

Every response carries Content-Length and, unless scripted or said otherwise
below (the EBI dialect's text/plain, the hostile answers, the Azure DELETE's
empty 202), Content-Type application/json. Connections are kept alive
(HTTP/1.1). Errors are {"error": "<what was wrong and what was received>"}
(the LRO and Azure dialects: their own error objects; EBI: plain text).

Job API (the /v1 jobs)
----------------------
POST /v1/jobs
    Body (JSON object, every field optional; an empty body is {}):
      "tool": str, "params": object,
      "steps": int >= 0     GETs that answer non-terminal before the terminal
                            answer (default 2),
      "outcome": "completed" | "failed" (default "completed"),
      "result": any         (default {"tool": tool, "params": params}),
      "error": str          (default "job failed"),
      "eta_seconds": number reported while the job runs,
      "items": int >= 0     the result is also a paged list of that many items
                            {"n": i}, served at /v1/jobs/{id}/result,
      "client_ref": str     the client's own name for the job, stored with it
                            and found again by GET /v1/jobs?client_ref=.
    -> 202 {"job_id": "job-<n>", "status": "pending"}, Location: /v1/jobs/job-<n>.
    Ids are job-1, job-2, ... in submission order. Malformed body -> 400.
    Header Idempotency-Key: K (1 to 255 printable ASCII characters, 0x20-0x7E;
    taken as received, spaces included): the first POST with K creates the job
    as above and the server remembers K for it; every later POST with K
    creates nothing and answers that same job:
      202 {"job_id": <its id>, "status": <its current status>}, the same
      Location, and a header Idempotent-Replayed: true
    (the status the job's last GET answered, "pending" before any; a replay
    does not advance the job). The body of a replay is validated like
    any other (a malformed one is 400) but not compared with the first one: a
    different body under K still answers K's job. Concurrent POSTs with K: one
    creates, the others replay. A POST that answers 400 remembers nothing. An
    empty or over-long key, one with another character, or more than one
    Idempotency-Key header -> 400 saying what was received. With the config's
    "idempotency" false the header is ignored altogether (not checked, not
    remembered: every POST creates a job); keys remembered before stay.
GET /v1/jobs?client_ref=R
    -> 200 {"jobs": [{"job_id", "status": current status}, ...]}: the jobs
    submitted with "client_ref" R, in creation order ([] when none; a lookup
    does not advance a job). R may be empty ("client_ref="). No client_ref, or
    more than one -> 400. With the config's "lookup" false -> 404 (a server
    without lookup).
GET /v1/jobs/{id}
    Every GET advances the job one step: progress depends only on the number
    of polls, never on wall time. With `steps` = S, poll number p (from 1):
      p <= S: 200 {"job_id", "status": "pending" (p = 1) or "running",
                   "progress": round(p / (S + 1), 3), "eta_seconds" (if set)}
      p >  S: 200 {"job_id", "status": "completed", "progress": 1.0, "result"}
              or  {"job_id", "status": "failed", "error",
                   "progress": round(S / (S + 1), 3)}, repeated on every later GET.
    A cancelled job answers 200 {"job_id", "status": "cancelled"}.
    Unknown id -> 404 {"error": "unknown job <id>"}.
DELETE /v1/jobs/{id}
    -> 200 {"job_id", "status": "cancelled"} and marks the job cancelled;
    unknown id -> 404.
GET /v1/jobs/{id}/result?offset=O&limit=L   (O defaults to 0, L to 10)
    -> 200 {"items": [{"n": O}, ... up to L items], "offset": O, "limit": L,
            "total": items}
    409 {"error": "job not completed"} until the job has answered "completed";
    404 for an unknown id or a job submitted without "items";
    400 for an offset or limit that is not a non-negative integer.

Reporting-export API (load-job / get-job-data)
----------------------------------------------
POST /transaction/load-job?startDate=..&endDate=..&site=..   (GET accepted too)
    -> 200 {"data": {"hash": H}}, H = md5("load-job-<n>") in hex (32 lowercase
    hex digits), n = 1, 2, ... in submission order. The job takes the server
    config (working_polls, outcome, total, page_limit) as it is at submission.
GET /transaction/get-job-data?hash=H[&offset=O&limit=L]   (O defaults to 0,
    L to page_limit)
    The first `working_polls` GETs find the job working and advance it:
      200 {"data": {"hash": H, "status": "working", "data": [], "offset": 0,
                    "limit": L, "total": 0}}
    then, on every later GET, with outcome "pass":
      200 {"data": {"hash": H, "status": "pass", "data": [items O .. O+L),
                    "offset": O, "limit": L, "total": total}}
      where item i (from 0) is {"id": "tx-<i>", "number": i, "type": "Sale",
      "total": 10.5 + i}; or with outcome "fail":
      200 {"data": {"hash": H, "status": "fail", "data": [], "offset": 0,
                    "limit": L, "total": 0, "message": "report failed"}}
    Unknown hash -> 404 {"error": "unknown hash"}; no hash -> 400.

Google long-running operations (/v1/lro)
----------------------------------------
POST /v1/lro/operations
    Body (JSON object, every field optional): "steps": int >= 1 (default 3),
    "outcome": "succeed" | "fail" (default "succeed"), "result": any (default
    "result of operations/<n>").
    -> 200 {"name": "operations/<n>", "done": false, "metadata": {"progressPercent": 0}}
    (n = 1, 2, ... in submission order). Malformed body -> 400 as for /v1/jobs.
GET /v1/lro/operations/{n}
    Every GET advances the operation one step; GET number k (from 1):
      k <  steps: 200 {"name", "done": false, "metadata": {"progressPercent": 100 * k // steps}}
      k >= steps: 200 {"name", "done": true, "metadata": {"progressPercent": 100},
                       "response": {"result": result}}
              or  {"name", "done": true, "metadata": {"progressPercent": 100},
                   "error": {"code": 13, "message": "internal: simulated failure"}}
    A cancelled operation answers {"name", "done": true, "metadata": {...},
    "error": {"code": 1, "message": "operation cancelled"}}.
POST /v1/lro/operations/{n}:cancel
    -> 200 {}; an operation that is not done yet is cancelled.
    Unknown operation (GET or cancel) -> 404
    {"error": {"code": 5, "message": "operation operations/<n> not found"}}.

Azure asynchronous operations (/azure)
--------------------------------------
PUT /azure/resources/{name}
    Body (JSON object, every field optional): "steps": int >= 0 (default 3),
    "outcome": "succeed" | "fail" (default "succeed"), "size": any (default 1).
    -> 201 {"name": name, "status": "Accepted"},
       Operation-Location: <scheme>://<Host of the request>/azure/operations/op-<n>
       (http://127.0.0.1:PORT/... for a client that sends Host 127.0.0.1:PORT),
       Retry-After: the config's "azure_retry_after" (whole seconds, default 1).
GET /azure/operations/{id}
    Every GET advances the operation one step; GET number k (from 1):
      k = 1 <= steps:    200 {"id", "status": "NotStarted"}
      1 < k <= steps:    200 {"id", "status": "Running", "percentComplete": round(100 * (k - 1) / steps)}
      k > steps:         200 {"id", "status": "Succeeded", "percentComplete": 100,
                              "resourceLocation": "/azure/resources/<name>"}
                     or  200 {"id", "status": "Failed",
                              "error": {"code": "InternalError", "message": "simulated failure"}}
    A cancelled operation answers 200 {"id", "status": "Canceled"}.
DELETE /azure/operations/{id}
    -> 202 (empty body); an operation that has not ended is Canceled.
GET /azure/resources/{name}
    -> 200 {"name", "properties": {"provisioningState": "Succeeded", "size": size}}
    once its latest operation has answered Succeeded; 404 before (and after a
    failure or cancel). Unknown operation or resource -> 404
    {"error": {"code": "NotFound", "message": ...}}.

EBI-style job dispatcher (/ebi, plain text and forms)
-----------------------------------------------------
POST /ebi/run
    Content-Type application/x-www-form-urlencoded; fields "email" and
    "sequence" required (non-empty), optional "steps" (int >= 0, default 2) and
    "outcome" ("finished" | "failure", default "finished").
    -> 200 text/plain job id "ncbiblast-R<YYYYMMDD>-<n:06d>-0001-p1m" (UTC date of
    submission, n = 1, 2, ...). Another Content-Type, a body that is not a form,
    a missing or empty field or a bad value -> 400 text/plain saying which.
GET /ebi/status/{id}
    Every GET advances the job one step; GET number k (from 1):
      k = 1 <= steps: 200 text/plain "QUEUED"; 1 < k <= steps: "RUNNING";
      k > steps: "FINISHED" or "FAILURE".
    Unknown id -> 404 text/plain "NOT_FOUND".
GET /ebi/result/{id}/out
    -> 200 text/plain, several lines (the job id, the sequence, two hits) once the
    job has answered FINISHED; 404 text/plain before, for another result type
    or an unknown id.

Hostile answers (/hostile, for the client-robustness tests)
-----------------------------------------------------------
POST /hostile/{kind}
    Body (JSON object, every field optional): "depth", "bytes", "count" (ints
    >= 0) size the hostile answer. Creates job hostile-<n> (n = 1, 2, ...).
    For a poll kind -> 202 {"job_id": "hostile-<n>", "status": "pending"},
    Location: /hostile/{kind}/hostile-<n>; every GET of that Location answers:
      deep             200 application/json: "[" * depth + "]" * depth (depth
                       default 100000, ~200 KB)
      deep-status      200 {"job_id", "status": <"[" * depth + "]" * depth>}
      bignum-status    200 {"job_id": .., "status": 1e999} (the bytes as written)
      bignum-progress  200 {"job_id": .., "status": "running", "progress": 1e999}
      huge-header      200 {"job_id", "status": "completed", "result": {"ok": true}}
                       with a header X-Hostile-Padding of `bytes` "a"s (default
                       1 MiB: one header line well over 64 KB)
      many-headers     the same with `count` headers X-Hostile-<i>: 40 "b"s
                       (default 20000, ~1 MB of headers)
      html             200 text/html, an HTML error page (~1 KB)
      oversized        200 application/json, {"job_id", "status": "running",
                       "padding": "ccc..."} of `bytes` bytes in all (default
                       64 MiB + 1 KiB: over the jobpoll tool's 64 MiB limit)
    For a submit kind the submit answer is hostile (the job exists all the same;
    its GET answers {"job_id", "status": "pending"}):
      submit-no-handle     202 {"status": "accepted", "message": "job queued"} (no
                           id, no Location)
      submit-undecodable   202 application/json, a JSON text cut in the middle:
                           {"job_id": "hostile-<n>", "status": "pend
      submit-html          202 text/html, an HTML page
      submit-deep          202 application/json, nested `depth` deep (default 100000)
    Unknown kind -> 404. GET /hostile/{kind}/{id} of an unknown id -> 404.

Quota
-----
With --quota N/S or the config's "quota", every non-control request counts
(any path, any method, scripted or not). A request that finds N admitted
requests in the last S seconds is not admitted:
    429 {"error": "quota exceeded"}, Retry-After: <whole seconds until the
    oldest admitted request leaves the window, at least 1>.
A rejected request does not count, consumes no scripted reply and does not
advance a job. The quota is checked before scripted replies.

Control endpoints (never counted, never logged, never scripted)
---------------------------------------------------------------
POST /_control/script
    {"method": "GET", "path": "/v1/jobs/job-1", "responses": [reply, ...]}
    Queues replies for the next requests whose method and path (without the
    query) match; a path ending in "*" matches every path with that prefix.
    Each POST adds one entry; the first entry (in posting order) that matches
    a request and still has replies answers it with its next reply. Once the
    queues are empty the normal behaviour resumes. A scripted reply does not
    advance a job. A reply is an object:
      {"status": 503, "headers": {"Retry-After": "1"}, "body": "text"}
          answers with that status, exactly those headers (plus Content-Length,
          Server and Date) and the body verbatim (default empty);
      {"status": 200, "json": any, "headers": {...}}
          the same with the value JSON-encoded and Content-Type
          application/json unless "headers" names one;
      {"delay_ms": 10000, ...}
          waits that long first (without blocking other requests), then
          answers with the rest of the reply, or normally if it has no status
          or action (a normal answer does advance the job). A delay cut short
          by server shutdown or /_control/reset closes the connection without
          answering;
      {"action": "reset"}
          sends a status line and headers announcing Content-Length 1000, then
          10 bytes, then closes with SO_LINGER {1, 0}: the client sees a TCP RST
          in the middle of the response;
      {"action": "close"}
          closes the connection without writing anything.
    A "Connection: close" header in a reply closes the connection after it.
    -> 200 {"method", "path", "queued": number of replies}; 400 if malformed.
POST /_control/config
    any of {"working_polls": int >= 0, "outcome": "pass" | "fail",
            "total": int >= 0, "page_limit": int >= 0,
            "quota": {"limit": int >= 1, "window_s": number > 0} or null,
            "close_reused": number in [0, 1],
            "latency_ms": [low, high] (0 <= low <= high <= 10000) or null,
            "azure_retry_after": int >= 0,
            "idempotency": bool, "lookup": bool}
    -> 200 the resulting config ("close_reused", "latency_ms",
    "azure_retry_after", "idempotency" and "lookup" appear in it once set).
    "idempotency" (default true): whether POST /v1/jobs honours an
    Idempotency-Key header; false ignores it (a server without idempotency).
    "lookup" (default true): whether GET /v1/jobs?client_ref= is served; false
    answers it 404 (a server without lookup).
    "azure_retry_after" = S (default 1): the Retry-After (seconds) of the Azure
    PUT's 201 answer, the wait a client owes before its first poll.
    Setting "quota" forgets the admitted requests.
    "close_reused" = F (default 0) closes, without answering, a fraction F of
    the requests that arrive on a reused connection (one that carried an
    earlier request, control requests included), like a keep-alive connection
    that the server timed out just as the client reused it. It is
    deterministic: the n-th such request (n = 1, 2, ...) is closed when
    floor(n * F) > floor((n - 1) * F), so exactly floor(n * F) of the first n
    are. Such a request is logged (status null, "closed_reused": true) and
    checked before the quota and scripted replies: it counts against neither
    and consumes no scripted reply. Setting "close_reused" restarts n at 0.
    "latency_ms" = [L, H] gives every non-control request a latency drawn
    uniformly from [L, H] ms (a pseudo-random sequence that restarts when it is
    set), split at a uniformly drawn point into a part before the request
    "arrives" (like a slow network: its "arrived" time and the quota see it
    that much later) and a part after it, before the answer is sent (a slow
    server). Scripted delays come on top. null: none (the default).
GET /_control/log
    -> 200 [{"method", "path", "query" (raw query string), "headers": {name: value}
             (a repeated name's values joined with ", "),
             "body": str, "status": int sent (null after reset, close or a cut
             delay), "scripted": bool,
             "arrived": time.monotonic() of this server process (float
             seconds) when its request line had been read,
             "reused": bool, whether an earlier request (control requests
             included) came on the same connection,
             "closed_reused": bool, whether "close_reused" closed it}]
    for every non-control request, in arrival order. It first waits (up to
    30 s) for every request whose request line has been read to be logged,
    so a request still in the network part of "latency_ms" when its client
    gave up on it is there.
GET /_control/jobs
    -> 200 {"jobs": [{"id", "kind": "v1" | "load-job" | "lro" | "azure" | "ebi" | "hostile",
                      "submits": 1, "polls": GETs answered normally, "cancelled": bool,
                      "status": current status,
                      and for a v1 job: "idempotency_key": the Idempotency-Key
                      it was created with (null: none, or "idempotency" was
                      off), "client_ref": its "client_ref" (null: none),
                      "params": its body's "params" as given (null: none)}],
            "load_jobs": submitted load-jobs, "v1_jobs": submitted v1 jobs,
            "lro_jobs", "azure_jobs", "ebi_jobs", "hostile_jobs": the same for
            each of those kinds, each present only once one was submitted}
    (a load-job's id is its hash, an LRO's its name "operations/<n>", an
    Azure operation's "op-<n>", an EBI job's its text id; the status is the
    one the last GET answered (before any, the first): "running", "succeeded", "failed" or
    "cancelled" for an LRO, the status text for Azure and EBI, the kind for a
    hostile job). A replayed POST is not a submit ("submits" stays 1): see
    /_control/submissions.
GET /_control/submissions
    -> 200 [{"key": the Idempotency-Key header as received (repeated headers
                    joined with ", ", as in the log; kept even with
                    "idempotency" off) or null,
             "client_ref": the body's "client_ref" as received (any JSON
                    value) or null,
             "params": the body's "params" as received or null (also when
                    the body is not a JSON object),
             "job_id": the job it created or replayed, or null (a 400, or
                    answered by a script, the quota or "close_reused"),
             "replayed": bool, whether it was answered with an existing
                    job because of its Idempotency-Key,
             "status": int sent (null after reset, close or a cut delay),
             "scripted": bool, as in the log (a scripted delay without a
                    status still answers normally, and may create a job)}]
    for every POST /v1/jobs that arrived, in arrival order (the same
    requests as the log's POST /v1/jobs entries; it waits as the log does).
    A job was created by each entry with a job_id and "replayed" false.
POST /_control/reset
    Clears jobs, scripts, the log, the submissions, the remembered
    Idempotency-Keys and the quota window, restores the startup config
    (--quota included), restarts ids at 1 and cuts scripted delays short.
    -> 200 the config.
"""

import argparse
import collections
import copy
import hashlib
import http.server
import random
import json
import math
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

DEFAULT_CONFIG = {"working_polls": 2, "outcome": "pass", "total": 22, "page_limit": 10, "quota": None}
# Config fields that appear in the config only once set (the answer to a
# config request stays as it was for clients that do not use them).
OPTIONAL_CONFIG = {"close_reused": 0, "latency_ms": None, "azure_retry_after": 1,
                   "idempotency": True, "lookup": True}
# An Idempotency-Key: 1 to 255 printable ASCII characters.
MAX_IDEMPOTENCY_KEY = 255


class BadRequest(Exception):
    """The request is malformed; the message says what was wrong and what was received."""


class Reply:
    """One complete HTTP answer: status, header pairs and body bytes."""

    def __init__(self, status, body=b"", headers=None):
        self.status = status
        self.body = body
        self.headers = list(headers or [])

    @staticmethod
    def json(status, value, headers=None):
        return Reply(status, json.dumps(value).encode(), [("Content-Type", "application/json")] + list(headers or []))


def error(status, message):
    return Reply.json(status, {"error": message})


def parse_json_body(body):
    """The body as a JSON value; an empty body is {}."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"malformed JSON body ({e}): {body[:200]!r}") from None


def check_int(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f'"{name}" must be an integer >= {minimum}, got {json.dumps(value)}')
    return value


def idempotency_key(values):
    """The Idempotency-Key of a request from the values of its Idempotency-Key
    headers (None: no such header); 400 unless one valid key."""
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"expected one Idempotency-Key header, got {len(values)}: {json.dumps(values)[:300]}")
    key = values[0]
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in key):
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters "
                         f"(0x20-0x7E), got {json.dumps(key[:300])}"
                         f"{'...' if len(key) > 300 else ''} ({len(key)} characters)")
    return key


def submission_fields(body):
    """The "client_ref" and "params" of a POST /v1/jobs body as received (None
    when absent or the body is not a JSON object), for /_control/submissions."""
    try:
        spec = parse_json_body(body)
    except BadRequest:
        return None, None
    if not isinstance(spec, dict):
        return None, None
    return spec.get("client_ref"), spec.get("params")


def query_int(query, name, default):
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest(f"{name} must be a non-negative integer, got {values[0]!r}")
    return value


def check_script_reply(reply):
    """Rejects a scripted reply the handler could not carry out."""
    if not isinstance(reply, dict):
        raise BadRequest(f"a scripted reply must be an object, got {json.dumps(reply)}")
    unknown = set(reply) - {"status", "headers", "body", "json", "delay_ms", "action"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)} in scripted reply {json.dumps(reply)}")
    if "status" in reply:
        status = reply["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise BadRequest(f"scripted status must be an integer in [100, 599], got {json.dumps(status)}")
    if "action" in reply:
        if reply["action"] not in ("reset", "close"):
            raise BadRequest(f'scripted action must be "reset" or "close", got {json.dumps(reply["action"])}')
        if set(reply) & {"status", "headers", "body", "json"}:
            raise BadRequest(f"a scripted action takes no status, headers or body: {json.dumps(reply)}")
    elif set(reply) & {"headers", "body", "json"} and "status" not in reply:
        raise BadRequest(f"a scripted reply with headers or a body needs a status: {json.dumps(reply)}")
    if "body" in reply and "json" in reply:
        raise BadRequest(f'a scripted reply has "body" or "json", not both: {json.dumps(reply)}')
    if "body" in reply and not isinstance(reply["body"], str):
        raise BadRequest(f'scripted "body" must be a string, got {json.dumps(reply["body"])}')
    headers = reply.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadRequest(f'scripted "headers" must map names to strings, got {json.dumps(headers)}')
    if any(name.lower() == "content-length" for name in headers):
        raise BadRequest('scripted "headers" must not set Content-Length (the server computes it; '
                         'use {"action": "reset"} for a cut-off body)')
    delay = reply.get("delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise BadRequest(f'scripted "delay_ms" must be a non-negative number, got {json.dumps(delay)}')


def scripted_reply(reply):
    """The Reply a scripted reply with a status describes."""
    headers = list(reply.get("headers", {}).items())
    if "json" in reply:
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return Reply(reply["status"], json.dumps(reply["json"]).encode(), headers)
    return Reply(reply["status"], reply.get("body", "").encode(), headers)


def text_reply(status, text):
    """A text/plain answer (the EBI dialect), the text as given (no newline added)."""
    return Reply(status, text.encode(), [("Content-Type", "text/plain;charset=UTF-8")])


def ebi_result(job):
    """The multi-line "out" result of a finished EBI job."""
    return (f"# ncbiblast result of {job['id']}\n"
            f"# query: {job['sequence']} ({len(job['sequence'])} letters)\n"
            f"hit 1\tsp|P00001|EXAMPLE1\tscore 98.5\te-value 1e-20\n"
            f"hit 2\tsp|P00002|EXAMPLE2\tscore 41.0\te-value 0.003\n")


# Hostile kinds and the sizes each takes (name -> default).
MIB = 1 << 20
HOSTILE_KINDS = {
    "deep": {"depth": 100000},
    "deep-status": {"depth": 100000},
    "bignum-status": {},
    "bignum-progress": {},
    "huge-header": {"bytes": MIB},
    "many-headers": {"count": 20000},
    "html": {},
    "oversized": {"bytes": 64 * MIB + 1024},
    "submit-no-handle": {},
    "submit-undecodable": {},
    "submit-html": {},
    "submit-deep": {"depth": 100000},
}

HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n"
             "<h1>502 Bad Gateway</h1>\n<p>The upstream server did not answer in time.</p>\n"
             + "<!-- padding -->\n" * 50 + "</body></html>\n")


def hostile_poll_answer(job):
    """The answer of every GET of a hostile job."""
    kind, job_id = job["hostile"], job["id"]
    as_json = [("Content-Type", "application/json")]
    if kind == "deep":
        return Reply(200, b"[" * job["depth"] + b"]" * job["depth"], as_json)
    if kind == "deep-status":
        return Reply(200, b'{"job_id": "%s", "status": ' % job_id.encode() + b"[" * job["depth"]
                     + b"]" * job["depth"] + b"}", as_json)
    if kind == "bignum-status":
        return Reply(200, b'{"job_id": "%s", "status": 1e999}' % job_id.encode(), as_json)
    if kind == "bignum-progress":
        return Reply(200, b'{"job_id": "%s", "status": "running", "progress": 1e999}' % job_id.encode(), as_json)
    if kind in ("huge-header", "many-headers"):
        reply = Reply.json(200, {"job_id": job_id, "status": "completed", "result": {"ok": True}})
        if kind == "huge-header":
            reply.headers.append(("X-Hostile-Padding", "a" * job["bytes"]))
        else:
            reply.headers.extend((f"X-Hostile-{i}", "b" * 40) for i in range(job["count"]))
        return reply
    if kind == "html":
        return Reply(200, HTML_PAGE.encode(), [("Content-Type", "text/html; charset=utf-8")])
    if kind == "oversized":
        head = b'{"job_id": "%s", "status": "running", "padding": "' % job_id.encode()
        tail = b'"}'
        return Reply(200, head + b"c" * max(0, job["bytes"] - len(head) - len(tail)) + tail, as_json)
    return Reply.json(200, {"job_id": job_id, "status": "pending"})  # a submit kind


def hostile_submit_answer(job):
    """The 202 answer to the submit of a hostile submit kind (the job exists all the same)."""
    kind, job_id = job["hostile"], job["id"]
    if kind == "submit-no-handle":
        return Reply.json(202, {"status": "accepted", "message": "job queued"})
    if kind == "submit-undecodable":
        return Reply(202, b'{"job_id": "%s", "status": "pend' % job_id.encode(), [("Content-Type", "application/json")])
    if kind == "submit-html":
        return Reply(202, b"<html><body><p>Accepted: your job is queued.</p></body></html>\n",
                     [("Content-Type", "text/html")])
    return Reply(202, b"[" * job["depth"] + b"]" * job["depth"], [("Content-Type", "application/json")])


class State:
    """Everything the handlers share; every method takes the one lock."""

    def __init__(self, startup_config):
        self.lock = threading.Lock()
        # Requests whose request line has been read but that are not logged
        # yet (in the network part of "latency_ms", or reading their body):
        # /_control/log and /_control/submissions wait for them, so a client
        # that gave up on a request it sent still finds it logged.
        self.arriving = 0
        self.arrivals_settled = threading.Condition(self.lock)
        self.startup_config = startup_config
        self.shutting_down = threading.Event()
        self._clear()

    def _clear(self):
        self.config = copy.deepcopy(self.startup_config)
        self.jobs = {}  # id (or hash) -> job dict, in submission order
        self.v1_count = 0
        self.idempotency_keys = {}  # Idempotency-Key -> the id of the v1 job created with it
        self.submissions = []  # every POST /v1/jobs, in arrival order (/_control/submissions)
        self.load_count = 0
        # Submissions of the other dialects, by kind ("lro", "azure", "ebi", "hostile").
        self.dialect_counts = {}
        self.azure_resources = {}  # resource name -> the id of its latest operation
        self.scripts = []  # [{"method", "path", "replies": deque}]
        self.log = []
        self.admitted = collections.deque()  # monotonic times of admitted requests
        self.reused_arrivals = 0  # requests on reused connections since "close_reused" was set
        self.latency = random.Random(0)  # draws of "latency_ms"
        # Set by reset and shutdown to cut scripted delays short; replaced by reset.
        self.wake = threading.Event()
        if self.shutting_down.is_set():
            self.wake.set()

    # --- arrival: log, quota, script ------------------------------------------

    def begin_arrival(self):
        """A non-control request line has been read: it is on its way to the log."""
        with self.lock:
            self.arriving += 1

    def end_arrival(self):
        """That request is logged, or will never be (a bad body, a lost connection)."""
        with self.lock:
            self.arriving -= 1
            self.arrivals_settled.notify_all()

    def arrive(self, method, path, query, headers, body, arrived, reused):
        """Logs a non-control request; returns (log entry, quota Reply or None,
        scripted reply or None, the event that cuts its delay short). The event
        is taken now, so a reset after the request is logged always cuts it.
        A request that "close_reused" drops comes back with the scripted reply
        {"action": "close"}, not counted as scripted. A POST /v1/jobs also gets
        its /_control/submissions record, kept in the entry as "_submission"
        (not shown in the log)."""
        with self.lock:
            entry = {"method": method, "path": path, "query": query, "headers": headers,
                     "body": body.decode("utf-8", "replace"), "status": None, "scripted": False,
                     "arrived": arrived, "reused": reused, "closed_reused": False}
            self.log.append(entry)
            if method == "POST" and path == "/v1/jobs":
                client_ref, params = submission_fields(body)
                key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
                entry["_submission"] = {"key": key, "client_ref": client_ref, "params": params, "job_id": None,
                                        "replayed": False, "status": None, "scripted": False}
                self.submissions.append(entry["_submission"])
            if reused and self._close_reused():
                entry["closed_reused"] = True
                return entry, None, {"action": "close"}, self.wake
            rejected = self._check_quota()
            if rejected:
                self._set_status(entry, rejected.status)
                return entry, rejected, None, self.wake
            for script in self.scripts:
                if script["method"] == method and self._path_matches(script["path"], path):
                    reply = script["replies"].popleft()
                    if not script["replies"]:
                        self.scripts.remove(script)
                    entry["scripted"] = True
                    if "_submission" in entry:
                        entry["_submission"]["scripted"] = True
                    return entry, None, reply, self.wake
            return entry, None, None, self.wake

    @staticmethod
    def _path_matches(pattern, path):
        return path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern

    def draw_latency(self):
        """(seconds before arrival, seconds before the answer) of "latency_ms"."""
        with self.lock:
            bounds = self.config.get("latency_ms")
            if not bounds:
                return 0.0, 0.0
            total = self.latency.uniform(bounds[0], bounds[1]) / 1000
            before = self.latency.uniform(0, total)
            return before, total - before

    def _close_reused(self):
        """Whether "close_reused" drops this request on a reused connection."""
        fraction = self.config.get("close_reused", OPTIONAL_CONFIG["close_reused"])
        self.reused_arrivals += 1
        n = self.reused_arrivals
        return math.floor(n * fraction) > math.floor((n - 1) * fraction)

    def _check_quota(self):
        quota = self.config["quota"]
        if quota is None:
            return None
        now = time.monotonic()
        window = quota["window_s"]
        while self.admitted and self.admitted[0] <= now - window:
            self.admitted.popleft()
        if len(self.admitted) < quota["limit"]:
            self.admitted.append(now)
            return None
        retry_after = max(1, math.ceil(self.admitted[0] + window - now))
        return Reply.json(429, {"error": "quota exceeded"}, [("Retry-After", str(retry_after))])

    def record(self, entry, status):
        """Notes the status sent for a logged request."""
        with self.lock:
            self._set_status(entry, status)

    @staticmethod
    def _set_status(entry, status):
        entry["status"] = status
        if "_submission" in entry:
            entry["_submission"]["status"] = status

    # --- the normal behaviour -------------------------------------------------

    def handle(self, method, path, query, body, headers=None, origin="", entry=None):
        """The normal answer to a non-control request; `headers` are the
        request's (an http.client.HTTPMessage, or a dict), `origin`
        "scheme://host:port" as the client named the server (for absolute URLs
        in answers), `entry` its log entry (from arrive)."""
        headers = headers or {}
        with self.lock:
            try:
                if path.startswith("/ebi/"):
                    return self._route_ebi(method, path, body, headers)
                return self._route(method, path, query, body, origin, headers, entry)
            except BadRequest as e:
                if path.startswith("/ebi/"):
                    return text_reply(400, str(e))
                return error(400, str(e))

    def _route(self, method, path, raw_query, body, origin="", headers=None, entry=None):
        query = urllib.parse.parse_qs(raw_query)
        parts = path.strip("/").split("/")
        if parts[0] == "v1" and len(parts) >= 2 and parts[1] == "lro":
            return self._route_lro(method, path, parts, body)
        if parts[0] == "azure":
            return self._route_azure(method, path, parts, body, origin)
        if parts[0] == "hostile":
            return self._route_hostile(method, path, parts, body)
        if path == "/v1/jobs":
            if method == "POST":
                return self._submit_v1(body, headers or {}, (entry or {}).get("_submission"))
            if method == "GET":
                return self._lookup_v1(raw_query)
            return self._not_allowed(method, path)
        if len(parts) == 3 and parts[:2] == ["v1", "jobs"]:
            if method == "GET":
                return self._poll_v1(parts[2])
            if method == "DELETE":
                return self._cancel_v1(parts[2])
            return self._not_allowed(method, path)
        if len(parts) == 4 and parts[:2] == ["v1", "jobs"] and parts[3] == "result":
            return self._result_v1(parts[2], query) if method == "GET" else self._not_allowed(method, path)
        if path == "/transaction/load-job":
            return self._load_job() if method in ("POST", "GET") else self._not_allowed(method, path)
        if path == "/transaction/get-job-data":
            return self._get_job_data(query) if method == "GET" else self._not_allowed(method, path)
        return error(404, f"no route for {method} {path}")

    @staticmethod
    def _not_allowed(method, path):
        return error(405, f"method {method} not allowed on {path}")

    def _submit_v1(self, body, headers, submission=None):
        """POST /v1/jobs; `submission` is its /_control/submissions record."""
        key = None
        if self.config.get("idempotency", OPTIONAL_CONFIG["idempotency"]):
            if hasattr(headers, "get_all"):
                values = headers.get_all("Idempotency-Key")
            else:
                values = [v for k, v in headers.items() if k.lower() == "idempotency-key"]
            key = idempotency_key(values)
        spec = parse_json_body(body)
        if not isinstance(spec, dict):
            raise BadRequest(f"the job must be a JSON object, got {json.dumps(spec)[:200]}")
        client_ref = spec.get("client_ref")
        if client_ref is not None and not isinstance(client_ref, str):
            raise BadRequest(f'"client_ref" must be a string, got {json.dumps(client_ref)[:200]}')
        tool = spec.get("tool")
        params = spec.get("params", {})
        steps = check_int("steps", spec.get("steps", 2))
        outcome = spec.get("outcome", "completed")
        if outcome not in ("completed", "failed"):
            raise BadRequest(f'"outcome" must be "completed" or "failed", got {json.dumps(outcome)}')
        eta = spec.get("eta_seconds")
        if eta is not None and (isinstance(eta, bool) or not isinstance(eta, (int, float))):
            raise BadRequest(f'"eta_seconds" must be a number, got {json.dumps(eta)}')
        items = spec.get("items")
        if items is not None:
            check_int("items", items)
        if key is not None and key in self.idempotency_keys:
            job_id = self.idempotency_keys[key]
            if submission is not None:
                submission.update(job_id=job_id, replayed=True)
            return Reply.json(202, {"job_id": job_id, "status": self._v1_status(self.jobs[job_id])},
                              [("Location", f"/v1/jobs/{job_id}"), ("Idempotent-Replayed", "true")])
        self.v1_count += 1
        job_id = f"job-{self.v1_count}"
        self.jobs[job_id] = {
            "id": job_id, "kind": "v1", "polls": 0, "cancelled": False, "steps": steps, "outcome": outcome,
            "result": spec.get("result", {"tool": tool, "params": params}),
            "error": spec.get("error", "job failed"), "eta_seconds": eta, "items": items,
            "idempotency_key": key, "client_ref": client_ref, "params": spec.get("params"),
        }
        if key is not None:
            self.idempotency_keys[key] = job_id
        if submission is not None:
            submission["job_id"] = job_id
        return Reply.json(202, {"job_id": job_id, "status": "pending"}, [("Location", f"/v1/jobs/{job_id}")])

    def _lookup_v1(self, raw_query):
        """GET /v1/jobs?client_ref=R: the v1 jobs submitted with client_ref R."""
        if not self.config.get("lookup", OPTIONAL_CONFIG["lookup"]):
            return error(404, 'no route for GET /v1/jobs (the server\'s "lookup" is off)')
        refs = urllib.parse.parse_qs(raw_query, keep_blank_values=True).get("client_ref", [])
        if not refs:
            raise BadRequest(f"GET /v1/jobs needs a client_ref query parameter (GET /v1/jobs?client_ref=R), "
                             f"got query {raw_query[:200]!r}")
        if len(refs) > 1:
            raise BadRequest(f"GET /v1/jobs takes one client_ref query parameter, got {len(refs)}: "
                             f"{json.dumps(refs)[:200]}")
        jobs = [{"job_id": job["id"], "status": self._v1_status(job)} for job in self.jobs.values()
                if job["kind"] == "v1" and job["client_ref"] == refs[0]]
        return Reply.json(200, {"jobs": jobs})

    @staticmethod
    def _v1_status(job):
        if job["cancelled"]:
            return "cancelled"
        if job["polls"] == 0:
            return "pending"
        if job["polls"] <= job["steps"]:
            return "pending" if job["polls"] == 1 else "running"
        return job["outcome"]

    def _poll_v1(self, job_id):
        job = self.jobs.get(job_id)
        if job is None or job["kind"] != "v1":
            return error(404, f"unknown job {job_id}")
        job["polls"] += 1
        status = self._v1_status(job)
        answer = {"job_id": job_id, "status": status}
        if status in ("pending", "running"):
            answer["progress"] = round(job["polls"] / (job["steps"] + 1), 3)
            if job["eta_seconds"] is not None:
                answer["eta_seconds"] = job["eta_seconds"]
        elif status == "completed":
            answer.update(progress=1.0, result=job["result"])
        elif status == "failed":
            answer.update(error=job["error"], progress=round(job["steps"] / (job["steps"] + 1), 3))
        return Reply.json(200, answer)

    def _cancel_v1(self, job_id):
        job = self.jobs.get(job_id)
        if job is None or job["kind"] != "v1":
            return error(404, f"unknown job {job_id}")
        job["cancelled"] = True
        return Reply.json(200, {"job_id": job_id, "status": "cancelled"})

    def _result_v1(self, job_id, query):
        job = self.jobs.get(job_id)
        if job is None or job["kind"] != "v1":
            return error(404, f"unknown job {job_id}")
        offset = query_int(query, "offset", 0)
        limit = query_int(query, "limit", 10)
        if self._v1_status(job) != "completed":
            return error(409, "job not completed")
        if job["items"] is None:
            return error(404, f'job {job_id} has no paged result (it was submitted without "items")')
        page = [{"n": i} for i in range(offset, min(offset + limit, job["items"]))]
        return Reply.json(200, {"items": page, "offset": offset, "limit": limit, "total": job["items"]})

    def _load_job(self):
        self.load_count += 1
        digest = hashlib.md5(f"load-job-{self.load_count}".encode()).hexdigest()
        self.jobs[digest] = {"id": digest, "kind": "load-job", "polls": 0, "cancelled": False,
                             **{k: self.config[k] for k in ("working_polls", "outcome", "total", "page_limit")}}
        return Reply.json(200, {"data": {"hash": digest}})

    @staticmethod
    def _load_status(job):
        return "working" if job["polls"] <= job["working_polls"] else job["outcome"]

    def _get_job_data(self, query):
        digest = query.get("hash", [""])[0]
        if not digest:
            raise BadRequest("get-job-data needs a hash query parameter, got none")
        job = self.jobs.get(digest)
        if job is None or job["kind"] != "load-job":
            return error(404, "unknown hash")
        offset = query_int(query, "offset", 0)
        limit = query_int(query, "limit", job["page_limit"])
        job["polls"] += 1
        status = self._load_status(job)
        data = {"hash": digest, "status": status, "data": [], "offset": 0, "limit": limit, "total": 0}
        if status == "pass":
            data.update(offset=offset, total=job["total"], data=[
                {"id": f"tx-{i}", "number": i, "type": "Sale", "total": 10.5 + i}
                for i in range(offset, min(offset + limit, job["total"]))])
        elif status == "fail":
            data["message"] = "report failed"
        return Reply.json(200, {"data": data})

    # --- the other dialects ---------------------------------------------------

    def _new_job(self, kind, job_id, **fields):
        self.dialect_counts[kind] = self.dialect_counts.get(kind, 0) + 1
        job = {"id": job_id, "kind": kind, "polls": 0, "cancelled": False, **fields}
        self.jobs[job_id] = job
        return job

    def _next_number(self, kind):
        return self.dialect_counts.get(kind, 0) + 1

    @staticmethod
    def _dialect_spec(body, outcomes, default_steps, minimum_steps=0):
        spec = parse_json_body(body)
        if not isinstance(spec, dict):
            raise BadRequest(f"the request must be a JSON object, got {json.dumps(spec)[:200]}")
        steps = check_int("steps", spec.get("steps", default_steps), minimum_steps)
        outcome = spec.get("outcome", outcomes[0])
        if outcome not in outcomes:
            raise BadRequest(f'"outcome" must be {" or ".join(json.dumps(o) for o in outcomes)}, '
                             f'got {json.dumps(outcome)}')
        return spec, steps, outcome

    # Google long-running operations

    def _route_lro(self, method, path, parts, body):
        if parts == ["v1", "lro", "operations"]:
            return self._submit_lro(body) if method == "POST" else self._not_allowed(method, path)
        if len(parts) == 4 and parts[2] == "operations":
            number, _, verb = parts[3].partition(":")
            name = f"operations/{number}"
            if verb == "cancel":
                return self._cancel_lro(name) if method == "POST" else self._not_allowed(method, path)
            if verb:
                return self._lro_not_found(f"unknown custom method :{verb} on {name}")
            return self._poll_lro(name) if method == "GET" else self._not_allowed(method, path)
        return self._lro_not_found(f"no route for {method} {path}")

    @staticmethod
    def _lro_not_found(message):
        return Reply.json(404, {"error": {"code": 5, "message": message, "status": "NOT_FOUND"}})

    def _submit_lro(self, body):
        spec, steps, outcome = self._dialect_spec(body, ("succeed", "fail"), 3, 1)
        name = f"operations/{self._next_number('lro')}"
        self._new_job("lro", name, steps=steps, outcome=outcome,
                      result=spec.get("result", f"result of {name}"))
        return Reply.json(200, {"name": name, "done": False, "metadata": {"progressPercent": 0}})

    @staticmethod
    def _lro_status(job):
        if job["cancelled"]:
            return "cancelled"
        if job["polls"] < job["steps"]:
            return "running"
        return "succeeded" if job["outcome"] == "succeed" else "failed"

    def _lro_answer(self, job):
        status = self._lro_status(job)
        percent = 100 * min(job["polls"], job["steps"]) // job["steps"]
        answer = {"name": job["id"], "done": status != "running", "metadata": {"progressPercent": percent}}
        if status == "succeeded":
            answer["response"] = {"result": job["result"]}
        elif status == "failed":
            answer["error"] = {"code": 13, "message": "internal: simulated failure"}
        elif status == "cancelled":
            answer["error"] = {"code": 1, "message": "operation cancelled"}
        return answer

    def _poll_lro(self, name):
        job = self.jobs.get(name)
        if job is None or job["kind"] != "lro":
            return self._lro_not_found(f"operation {name} not found")
        if not job["cancelled"]:
            job["polls"] += 1
        return Reply.json(200, self._lro_answer(job))

    def _cancel_lro(self, name):
        job = self.jobs.get(name)
        if job is None or job["kind"] != "lro":
            return self._lro_not_found(f"operation {name} not found")
        if self._lro_status(job) == "running":
            job["cancelled"] = True
        return Reply.json(200, {})

    # Azure asynchronous operations

    def _route_azure(self, method, path, parts, body, origin):
        if len(parts) == 3 and parts[1] == "resources":
            if method == "PUT":
                return self._put_azure(parts[2], body, origin)
            if method == "GET":
                return self._get_azure_resource(parts[2])
            return self._not_allowed(method, path)
        if len(parts) == 3 and parts[1] == "operations":
            if method == "GET":
                return self._poll_azure(parts[2])
            if method == "DELETE":
                return self._cancel_azure(parts[2])
            return self._not_allowed(method, path)
        return self._azure_not_found(f"no route for {method} {path}")

    @staticmethod
    def _azure_not_found(message):
        return Reply.json(404, {"error": {"code": "NotFound", "message": message}})

    def _put_azure(self, name, body, origin):
        spec, steps, outcome = self._dialect_spec(body, ("succeed", "fail"), 3)
        op_id = f"op-{self._next_number('azure')}"
        self._new_job("azure", op_id, steps=steps, outcome=outcome, resource=name, size=spec.get("size", 1))
        self.azure_resources[name] = op_id
        retry_after = self.config.get("azure_retry_after", OPTIONAL_CONFIG["azure_retry_after"])
        return Reply.json(201, {"name": name, "status": "Accepted"},
                          [("Operation-Location", f"{origin}/azure/operations/{op_id}"),
                           ("Retry-After", str(retry_after))])

    @staticmethod
    def _azure_status(job):
        if job["cancelled"]:
            return "Canceled"
        if job["polls"] <= job["steps"]:
            return "NotStarted" if job["polls"] <= 1 else "Running"
        return "Succeeded" if job["outcome"] == "succeed" else "Failed"

    def _poll_azure(self, op_id):
        job = self.jobs.get(op_id)
        if job is None or job["kind"] != "azure":
            return self._azure_not_found(f"operation {op_id} not found")
        if not job["cancelled"]:
            job["polls"] += 1
        status = self._azure_status(job)
        answer = {"id": op_id, "status": status}
        if status == "Running":
            answer["percentComplete"] = round(100 * (job["polls"] - 1) / job["steps"])
        elif status == "Succeeded":
            answer.update(percentComplete=100, resourceLocation=f"/azure/resources/{job['resource']}")
        elif status == "Failed":
            answer["error"] = {"code": "InternalError", "message": "simulated failure"}
        return Reply.json(200, answer)

    def _cancel_azure(self, op_id):
        job = self.jobs.get(op_id)
        if job is None or job["kind"] != "azure":
            return self._azure_not_found(f"operation {op_id} not found")
        if self._azure_status(job) in ("NotStarted", "Running"):
            job["cancelled"] = True
        return Reply(202)

    def _get_azure_resource(self, name):
        job = self.jobs.get(self.azure_resources.get(name, ""))
        if job is None or self._azure_status(job) != "Succeeded" or job["polls"] <= job["steps"]:
            return self._azure_not_found(f"resource {name} not found")
        return Reply.json(200, {"name": name, "properties": {"provisioningState": "Succeeded", "size": job["size"]}})

    # EBI-style job dispatcher (plain text, forms)

    def _route_ebi(self, method, path, body, headers):
        parts = path.strip("/").split("/")
        if parts == ["ebi", "run"]:
            return self._submit_ebi(body, headers) if method == "POST" else self._ebi_not_allowed(method, path)
        if len(parts) == 3 and parts[1] == "status":
            return self._poll_ebi(parts[2]) if method == "GET" else self._ebi_not_allowed(method, path)
        if len(parts) == 4 and parts[1] == "result":
            return self._result_ebi(parts[2], parts[3]) if method == "GET" else self._ebi_not_allowed(method, path)
        return text_reply(404, f"no route for {method} {path}")

    @staticmethod
    def _ebi_not_allowed(method, path):
        return text_reply(405, f"method {method} not allowed on {path}")

    def _submit_ebi(self, body, headers):
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise BadRequest(f"expected a form (Content-Type application/x-www-form-urlencoded), "
                             f"got Content-Type {content_type or '(none)'!r} and body {body[:100]!r}")
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError) as e:
            raise BadRequest(f"the body is not a form ({e}): {body[:100]!r}") from None
        for name in ("email", "sequence"):
            if not fields.get(name, [""])[0]:
                raise BadRequest(f"missing field: {name} (fields received: {', '.join(sorted(fields)) or 'none'})")
        steps_text = fields.get("steps", ["2"])[0]
        if not steps_text.isdigit():
            raise BadRequest(f"steps must be a non-negative integer, got {steps_text!r}")
        outcome = fields.get("outcome", ["finished"])[0]
        if outcome not in ("finished", "failure"):
            raise BadRequest(f"outcome must be finished or failure, got {outcome!r}")
        n = self._next_number("ebi")
        job_id = f"ncbiblast-R{time.strftime('%Y%m%d', time.gmtime())}-{n:06d}-0001-p1m"
        self._new_job("ebi", job_id, steps=int(steps_text), outcome=outcome,
                      email=fields["email"][0], sequence=fields["sequence"][0])
        return text_reply(200, job_id)

    @staticmethod
    def _ebi_status(job):
        if job["polls"] <= job["steps"]:
            return "QUEUED" if job["polls"] <= 1 else "RUNNING"
        return "FINISHED" if job["outcome"] == "finished" else "FAILURE"

    def _poll_ebi(self, job_id):
        job = self.jobs.get(job_id)
        if job is None or job["kind"] != "ebi":
            return text_reply(404, "NOT_FOUND")
        job["polls"] += 1
        return text_reply(200, self._ebi_status(job))

    def _result_ebi(self, job_id, kind):
        job = self.jobs.get(job_id)
        if job is None or job["kind"] != "ebi":
            return text_reply(404, "NOT_FOUND")
        if kind != "out":
            return text_reply(404, f"unknown result type {kind!r} (known: out)")
        if job["polls"] <= job["steps"] or job["outcome"] != "finished":
            return text_reply(404, f"no result: job {job_id} is {self._ebi_status(job)}")
        return text_reply(200, ebi_result(job))

    # Hostile answers

    def _route_hostile(self, method, path, parts, body):
        if len(parts) == 2:
            if parts[1] not in HOSTILE_KINDS:
                return error(404, f"unknown hostile kind {parts[1]!r}; known: {sorted(HOSTILE_KINDS)}")
            return self._submit_hostile(parts[1], body) if method == "POST" else self._not_allowed(method, path)
        if len(parts) == 3:
            job = self.jobs.get(parts[2])
            if job is None or job["kind"] != "hostile" or job["hostile"] != parts[1]:
                return error(404, f"unknown hostile job {parts[1]}/{parts[2]}")
            if method != "GET":
                return self._not_allowed(method, path)
            job["polls"] += 1
            return hostile_poll_answer(job)
        return error(404, f"no route for {method} {path}")

    def _submit_hostile(self, kind, body):
        spec = parse_json_body(body)
        if not isinstance(spec, dict):
            raise BadRequest(f"the request must be a JSON object, got {json.dumps(spec)[:200]}")
        sizes = {name: check_int(name, spec.get(name, default)) for name, default in HOSTILE_KINDS[kind].items()}
        job_id = f"hostile-{self._next_number('hostile')}"
        job = self._new_job("hostile", job_id, hostile=kind, **sizes)
        if kind.startswith("submit-"):
            return hostile_submit_answer(job)
        return Reply.json(202, {"job_id": job_id, "status": "pending"}, [("Location", f"/hostile/{kind}/{job_id}")])

    # --- control --------------------------------------------------------------

    def control(self, method, path, body):
        """The answer to a /_control/ request."""
        routes = {("POST", "/_control/script"): self._script, ("POST", "/_control/config"): self._configure,
                  ("GET", "/_control/log"): self._log, ("GET", "/_control/jobs"): self._jobs,
                  ("GET", "/_control/submissions"): self._submissions, ("POST", "/_control/reset"): self._reset}
        route = routes.get((method, path))
        if route is None:
            return error(404, f"no control route for {method} {path}")
        with self.lock:
            if route in (self._log, self._submissions):
                self.arrivals_settled.wait_for(lambda: self.arriving == 0, timeout=30)
            try:
                return route(body)
            except BadRequest as e:
                return error(400, str(e))

    def _script(self, body):
        spec = parse_json_body(body)
        if not isinstance(spec, dict):
            raise BadRequest(f"a script must be a JSON object, got {json.dumps(spec)[:200]}")
        method, path, replies = spec.get("method"), spec.get("path"), spec.get("responses")
        if not isinstance(method, str) or not method:
            raise BadRequest(f'a script needs "method" (a string), got {json.dumps(method)}')
        if not isinstance(path, str) or not path.startswith("/"):
            raise BadRequest(f'a script needs "path" (starting with "/"), got {json.dumps(path)}')
        if not isinstance(replies, list) or not replies:
            raise BadRequest(f'a script needs "responses" (a non-empty list), got {json.dumps(replies)}')
        for reply in replies:
            check_script_reply(reply)
        self.scripts.append({"method": method.upper(), "path": path, "replies": collections.deque(replies)})
        return Reply.json(200, {"method": method.upper(), "path": path, "queued": len(replies)})

    def _configure(self, body):
        changes = parse_json_body(body)
        if not isinstance(changes, dict):
            raise BadRequest(f"the config must be a JSON object, got {json.dumps(changes)[:200]}")
        known = set(DEFAULT_CONFIG) | set(OPTIONAL_CONFIG)
        unknown = set(changes) - known
        if unknown:
            raise BadRequest(f"unknown config field(s) {sorted(unknown)}; known: {sorted(known)}")
        config = dict(self.config)
        for name in ("working_polls", "total", "page_limit"):
            if name in changes:
                config[name] = check_int(name, changes[name])
        if "outcome" in changes:
            if changes["outcome"] not in ("pass", "fail"):
                raise BadRequest(f'"outcome" must be "pass" or "fail", got {json.dumps(changes["outcome"])}')
            config["outcome"] = changes["outcome"]
        if "quota" in changes:
            config["quota"] = check_quota(changes["quota"])
            self.admitted.clear()
        if "close_reused" in changes:
            fraction = changes["close_reused"]
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
                raise BadRequest(f'"close_reused" must be a number in [0, 1], got {json.dumps(fraction)}')
            config["close_reused"] = fraction
            self.reused_arrivals = 0
        if "latency_ms" in changes:
            bounds = changes["latency_ms"]
            if bounds is not None and not (
                    isinstance(bounds, list) and len(bounds) == 2
                    and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
                    and 0 <= bounds[0] <= bounds[1] <= 10000):
                raise BadRequest(f'"latency_ms" must be [low, high] with 0 <= low <= high <= 10000, or null, '
                                 f'got {json.dumps(bounds)[:200]}')
            config["latency_ms"] = bounds
            self.latency = random.Random(0)
        if "azure_retry_after" in changes:
            config["azure_retry_after"] = check_int("azure_retry_after", changes["azure_retry_after"])
        for name in ("idempotency", "lookup"):
            if name in changes:
                if not isinstance(changes[name], bool):
                    raise BadRequest(f'"{name}" must be true or false, got {json.dumps(changes[name])[:200]}')
                config[name] = changes[name]
        self.config = config
        return Reply.json(200, config)

    def _log(self, _body):
        return Reply.json(200, [{k: v for k, v in entry.items() if k != "_submission"} for entry in self.log])

    def _jobs(self, _body):
        jobs = []
        for job in self.jobs.values():
            entry = {"id": job["id"], "kind": job["kind"], "submits": 1, "polls": job["polls"],
                     "cancelled": job["cancelled"], "status": self._status_of(job)}
            if job["kind"] == "v1":
                entry.update(idempotency_key=job["idempotency_key"], client_ref=job["client_ref"],
                             params=job["params"])
            jobs.append(entry)
        answer = {"jobs": jobs, "load_jobs": self.load_count, "v1_jobs": self.v1_count}
        for kind, count in self.dialect_counts.items():
            answer[f"{kind}_jobs"] = count
        return Reply.json(200, answer)

    def _status_of(self, job):
        kind = job["kind"]
        if kind == "v1":
            return self._v1_status(job)
        if kind == "load-job":
            return self._load_status(job)
        if kind == "lro":
            return self._lro_status(job)
        if kind == "azure":
            return self._azure_status(job)
        if kind == "ebi":
            return self._ebi_status(job)
        return job["hostile"]

    def _submissions(self, _body):
        return Reply.json(200, self.submissions)

    def _reset(self, _body):
        self.wake.set()
        self._clear()
        return Reply.json(200, self.config)

    def shut_down(self):
        """Cuts every scripted delay short (now and later)."""
        with self.lock:
            self.shutting_down.set()
            self.wake.set()


def check_quota(quota):
    """A quota from the config: null, or {"limit": N >= 1, "window_s": S > 0}."""
    if quota is None:
        return None
    if not isinstance(quota, dict) or set(quota) != {"limit", "window_s"}:
        raise BadRequest(f'"quota" must be null or {{"limit": N, "window_s": S}}, got {json.dumps(quota)}')
    check_int("quota.limit", quota["limit"], 1)
    window = quota["window_s"]
    if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
        raise BadRequest(f'"quota.window_s" must be a number > 0, got {json.dumps(window)}')
    return {"limit": quota["limit"], "window_s": window}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one segment: otherwise the body waits ~40 ms for the
    # client's delayed ACK (Nagle), and every sequential request with it.
    disable_nagle_algorithm = True

    def parse_request(self):
        """The request line has just been read: the arrival time of the request
        (after the network part of "latency_ms", for a non-control request)."""
        parsed = super().parse_request()
        self.answer_delay = 0.0
        if parsed and not self.path.startswith("/_control/"):
            self.server.state.begin_arrival()
            self.arriving = True
            before, self.answer_delay = self.server.state.draw_latency()
            if before > 0:
                time.sleep(before)
        self.arrived = time.monotonic()
        return parsed

    def handle_one_request(self):
        try:
            super().handle_one_request()
        finally:
            self._end_arrival()

    def _end_arrival(self):
        if getattr(self, "arriving", False):
            self.arriving = False
            self.server.state.end_arrival()

    def do_GET(self):
        self.requests_served += 1
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self):
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        try:
            body = self._read_body()
        except BadRequest as e:
            self.close_connection = True
            self._send(error(400, str(e)))
            return
        if url.path.startswith("/_control/"):
            self._send(state.control(self.command, url.path, body))
            return
        headers = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        entry, rejected, script, wake = state.arrive(self.command, url.path, url.query, headers, body,
                                                     self.arrived, self.requests_served > 1)
        self._end_arrival()
        if self.answer_delay > 0:
            time.sleep(self.answer_delay)  # the server part of "latency_ms"
        if rejected:
            self._answer(entry, rejected)
        elif script is None:
            self._answer(entry, state.handle(self.command, url.path, url.query, body, self.headers, self._origin(),
                                             entry))
        # An Event wait, not time.sleep: reset and shutdown cut it short.
        elif script.get("delay_ms", 0) > 0 and wake.wait(script["delay_ms"] / 1000):
            self._drop(reset=False, why="delay cut short")
        elif script.get("action") == "close":
            self._drop(reset=False, why="close_reused" if entry["closed_reused"] else "scripted close")
        elif script.get("action") == "reset":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n0123456789")
            self._drop(reset=True, why="scripted reset")
        elif "status" in script:
            self._answer(entry, scripted_reply(script), "scripted ")
        else:
            self._answer(entry, state.handle(self.command, url.path, url.query, body, self.headers, self._origin(),
                                             entry), "delayed ")

    def _origin(self):
        """"scheme://host:port" as the client named this server (its Host
        header), else the bound address."""
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        host = self.headers.get("Host")
        if not host:
            address, port = self.server.server_address[:2]
            host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        return f"{scheme}://{host}"

    def _answer(self, entry, reply, kind=""):
        """Logs the status (before sending, so a client that reads the log right
        after the answer sees it) and sends the reply."""
        self.server.state.record(entry, reply.status)
        if self.server.log_requests:
            self._print(f"{self.command} {self.path} -> {kind}{reply.status}")
        self._send(reply)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionAbortedError("the client closed the connection in the middle of a chunked body")
                try:
                    size = int(line.split(b";")[0], 16)
                except ValueError:
                    raise BadRequest(f"malformed chunk size line {line[:100]!r}") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ConnectionAbortedError("the client closed the connection in the middle of a chunk")
                body += chunk
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length", "0")
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0:
            raise BadRequest(f"Content-Length must be a non-negative integer, got {length!r}")
        body = self.rfile.read(size)
        if len(body) < size:
            raise ConnectionAbortedError("the client closed the connection in the middle of a request body")
        return body

    def _send(self, reply):
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _drop(self, reset, why):
        """Closes the connection at once; with `reset`, with an RST instead of a FIN."""
        if self.server.log_requests:
            self._print(f"{self.command} {self.path} -> no answer ({why})")
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket closes only once the file made from it (rfile) is closed too;
        # wfile writes to the socket directly and must stay open for http.server's flush.
        self.rfile.close()
        self.connection.close()

    def send_error(self, code, message=None, explain=None):
        """Errors found by http.server itself (bad request line, unknown method) as JSON."""
        self.close_connection = True
        self._send(error(code, message or self.responses.get(code, ("error",))[0]))

    def log_request(self, code="-", size="-"):
        """Requests are printed with their outcome by _answer and _drop (with --log-requests)."""

    def log_message(self, format, *args):
        if self.server.log_requests:
            self._print(format % args)

    def setup(self):
        """Over TLS, the handshake first (in this connection's thread): a client
        that rejects the certificate raises here and is dropped by handle_error."""
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except OSError as e:
                if self.server.log_requests:
                    self._print(f"TLS handshake failed: {e}")
                raise
        super().setup()
        self.requests_served = 0  # on this connection, control requests included

    def _print(self, line):
        sys.stderr.write(f"job_server {self.address_string()}: {line}\n")
        sys.stderr.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the benchmarks open 1,000 connections at once

    def __init__(self, address, state, log_requests, tls_context=None):
        self.state = state
        self.log_requests = log_requests
        super().__init__(address, Handler)
        if tls_context is not None:
            # No handshake in accept(): it would run on the serve_forever thread,
            # where one slow or failing client holds up every other connection.
            # Handler.setup does it in the connection's own thread.
            self.socket = tls_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request, client_address):
        """A client that goes away mid-exchange, or ends a TLS handshake because it
        rejects the certificate, is normal here; anything else is printed."""
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


class Stop(Exception):
    """Raised in the main thread by SIGTERM and SIGINT."""


def parse_quota_option(text):
    try:
        limit, window = text.split("/")
        quota = {"limit": int(limit), "window_s": float(window)}
        return check_quota(quota)
    except (ValueError, BadRequest) as e:
        raise argparse.ArgumentTypeError(f"--quota wants N/SECONDS (e.g. 20/15), got {text!r} ({e})")


def tls_context(parser, cert, key):
    """The server's TLS context for --tls-cert and --tls-key (None for plain HTTP);
    a usage error if only one is given or the pair cannot be loaded."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        parser.error(f"--tls-cert and --tls-key go together, got only {'--tls-cert' if key is None else '--tls-key'}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except OSError as e:
        parser.error(f"cannot load --tls-cert {cert!r} with --tls-key {key!r}: {e}")
    # The handler speaks HTTP/1.1 only: a client that offers h2 settles on http/1.1.
    context.set_alpn_protocols(["http/1.1"])
    return context


def main():
    parser = argparse.ArgumentParser(
        description="Scriptable HTTP/1.1 job server for jobpoll's tests (HTTPS with --tls-cert and --tls-key).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--quota", type=parse_quota_option, default=None)
    parser.add_argument("--log-requests", action="store_true")
    parser.add_argument("--ignore-stdin", action="store_true")
    parser.add_argument("--tls-cert", metavar="FILE")
    parser.add_argument("--tls-key", metavar="FILE")
    args = parser.parse_args()
    tls = tls_context(parser, args.tls_cert, args.tls_key)

    state = State({**DEFAULT_CONFIG, "quota": args.quota})
    server = Server((args.host, args.port), state, args.log_requests, tls)
    threading.Thread(target=server.serve_forever, name="serve_forever", daemon=True).start()

    def stop(_signum, _frame):
        # A second signal while shutting down must not interrupt the shutdown.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        sys.stdout.write(f"PORT {server.server_address[1]}\n")
        sys.stdout.flush()
        if args.ignore_stdin:
            while True:
                signal.pause()
        while os.read(sys.stdin.fileno(), 4096):
            pass
    except Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        state.shut_down()
    # No server.shutdown(): it waits up to half a second for serve_forever to
    # notice, and handler threads may be blocked on idle keep-alive
    # connections. Ending the process closes every socket at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
