#pragma once
// The one Lua script behind redis_limiter, and the argument lists that call
// it. Every decision about the shared budget is taken inside Redis, in one
// atomic script run, on the server's clock (TIME): no client clock, and no
// moment where two processes see the same free slot.
//
// The accounting is limiter_budget.hpp's, across processes: a grant *holds*
// a slot (a permit id in `held`, with an expiry its process keeps pushing
// back); the release removes the hold and counts the request at the
// server's time of the release (a sliding window keeps the release times in
// `releases`; the bucket moves its GCRA time). While held, a slot counts as
// if counted now. A hold whose process stopped refreshing it is reclaimed at
// its expiry and counted then.
//
// Processes take turns: a process whose local queue has waiters holds one
// ticket in `queue` (ordered by a sequence number), and a grant always goes
// to the oldest ticket. The process asking may grant to other processes'
// tickets first (`granted`, picked up at their next ask), so a slow or
// far-away process still gets its turn; a ticket not refreshed within the
// ticket timeout is dropped with any grant it did not pick up (nothing was
// sent for it, so nothing is counted).
//
// A state created from nothing (first use, or lost with a restart or flush:
// Redis cannot tell) holds back one window (sliding window) or starts with
// an empty bucket, unless told otherwise: the server may have counted a
// whole budget just before.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "jobpoll/redis_limiter_options.hpp"

namespace jobpoll::detail::redis {

// KEYS: 1 state (hash: epoch, budget, seq, pause, aw/af), 2 releases (zset
// id -> release time), 3 held (zset permit id -> expiry), 4 queue (zset
// ticket -> sequence), 5 tickets (zset ticket -> expiry), 6 granted (hash
// ticket -> 1). ARGV: 1 op, 2 budget signature, 3 hold timeout (us), 4
// ticket timeout (us), 5 cold start ("hold" or "full"), 6 idle expiry of the
// keys (ms), 7... the op's arguments. Times are microseconds of TIME.
// Reply: {status, value, epoch, server now, 1 if the state is new}: status
// 1 = granted, value the permit id; 0 = not granted, ask again at server
// time `value`; 2 = done (the other ops), value a time (the pause's end).
inline constexpr std::string_view limiter_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state, rel, held, queue, tickets, granted = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local op, sig = ARGV[1], ARGV[2]
local hold_us, ticket_us = tonumber(ARGV[3]), tonumber(ARGV[4])
local function int(x) return string.format('%d', x) end
local kind, n, per, burst = string.match(sig, '^(%a+):(%d+):(%d+):?(%d*)$')
if not kind then return redis.error_reply('jobpoll: malformed budget ' .. sig) end
n, per, burst = tonumber(n), tonumber(per), tonumber(burst) or 0
local sw = kind == 'sw'
-- Exact division of integers below 2^53.
local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q, r = q - 1, r + b elseif r >= b then q, r = q + 1, r - b end
  return q, r
end
-- GCRA on exact times: whole microseconds w plus f/n of one.
local iw, ifr, tw, tf = 0, 0, 0, 0
if not sw then
  iw, ifr = divmod(per, n)
  tw, tf = divmod((burst - 1) * per, n)
end
local function add(w, f, dw, df)
  w, f = w + dw, f + df
  if f >= n then w, f = w + 1, f - n end
  return w, f
end

local epoch = redis.call('HGET', state, 'epoch')
local fresh = 0
if not epoch then
  fresh = 1
  epoch = int(now)
  redis.call('HSET', state, 'epoch', epoch, 'budget', sig, 'seq', '0', 'pause', '0')
  if ARGV[5] == 'hold' then
    if sw then
      redis.call('HSET', state, 'pause', int(now + per))
    else
      local w, f = add(now, 0, iw, ifr)
      redis.call('HSET', state, 'aw', int(w), 'af', int(f))
    end
  end
else
  local had = redis.call('HGET', state, 'budget')
  if had ~= sig then
    return redis.error_reply('jobpoll budget mismatch: ' .. state .. ' holds ' .. tostring(had) ..
                             ', this limiter has ' .. sig .. ' (every user of a key needs the same budget)')
  end
end

-- A request answered at `at` counts from then on.
local function count(id, at)
  if sw then
    redis.call('ZADD', rel, int(at), id)
    return
  end
  local fw, ff = at - tw, -tf
  if ff < 0 then fw, ff = fw - 1, ff + n end
  local aw = tonumber(redis.call('HGET', state, 'aw'))
  if aw then
    local af = tonumber(redis.call('HGET', state, 'af'))
    if aw > fw or (aw == fw and af > ff) then fw, ff = aw, af end
  end
  fw, ff = add(fw, ff, iw, ifr)
  redis.call('HSET', state, 'aw', int(fw), 'af', int(ff))
end

-- Tickets of processes gone: their grants never picked up held nothing real.
for _, tk in ipairs(redis.call('ZRANGEBYSCORE', tickets, '-inf', int(now))) do
  redis.call('ZREM', tickets, tk)
  redis.call('ZREM', queue, tk)
  if redis.call('HDEL', granted, tk) == 1 then redis.call('ZREM', held, tk) end
end
-- Holds not refreshed: counted as answered at their expiry.
local expired = redis.call('ZRANGEBYSCORE', held, '-inf', int(now), 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZREM', held, expired[i])
  if redis.call('HDEL', granted, expired[i]) == 0 then count(expired[i], tonumber(expired[i + 1])) end
end
if sw then redis.call('ZREMRANGEBYSCORE', rel, '-inf', int(now - per)) end

-- The earliest time >= now at which one more request fits.
local function earliest()
  local h = redis.call('ZCARD', held)
  local at = math.max(now, tonumber(redis.call('HGET', state, 'pause')) or 0)
  if sw then
    -- All held: a slot frees only a window after a release still to come.
    if h >= n then return math.max(at, now + per) end
    local k = redis.call('ZCARD', rel) + h - n
    if k >= 0 then
      local e = redis.call('ZRANGE', rel, k, k, 'WITHSCORES')
      at = math.max(at, tonumber(e[2]) + per)
    end
    return at
  end
  if h >= burst then return math.max(at, now + iw + (ifr > 0 and 1 or 0)) end
  local aw = tonumber(redis.call('HGET', state, 'aw'))
  if aw then
    local q, r = divmod(h * ifr, n)
    local w, f = add(aw, tonumber(redis.call('HGET', state, 'af')), h * iw + q, r)
    if f > 0 then w = w + 1 end
    at = math.max(at, w)
  end
  return at
end

local function touch()
  for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
end

local status, value = 1, ''
if op == 'acquire' then
  local tk = ARGV[7]
  if redis.call('HDEL', granted, tk) == 1 then
    -- granted at another process's ask: picked up now
    redis.call('ZREM', tickets, tk)
    redis.call('ZADD', held, int(now + hold_us), tk)
    value = tk
  else
    if not redis.call('ZSCORE', queue, tk) then
      redis.call('ZADD', queue, redis.call('HINCRBY', state, 'seq', 1), tk)
    end
    redis.call('ZADD', tickets, int(now + ticket_us), tk)
    while value == '' do
      local at = earliest()
      if at > now then
        status, value = 0, at
      else
        local first = redis.call('ZRANGE', queue, 0, 0)[1]
        redis.call('ZREM', queue, first)
        redis.call('ZADD', held, int(now + hold_us), first)
        if first == tk then
          redis.call('ZREM', tickets, tk)
          value = tk
        else
          redis.call('HSET', granted, first, '1')
        end
      end
    end
  end
elseif op == 'release' then
  redis.call('ZREM', held, ARGV[7])
  if ARGV[8] ~= 'unused' then count(ARGV[7], now) end
  status, value = 2, now
elseif op == 'pause' then
  local until_us = now + tonumber(ARGV[7])
  if until_us > (tonumber(redis.call('HGET', state, 'pause')) or 0) then
    redis.call('HSET', state, 'pause', int(until_us))
  end
  status, value = 2, tonumber(redis.call('HGET', state, 'pause'))
elseif op == 'refresh' then
  for i = 7, #ARGV do
    local id = string.sub(ARGV[i], 2)
    if string.sub(ARGV[i], 1, 1) == 'h' then
      redis.call('ZADD', held, int(now + hold_us), id)
    else
      count(id, now)
    end
  end
  status, value = 2, now
elseif op == 'leave' then
  local tk = ARGV[7]
  redis.call('ZREM', queue, tk)
  redis.call('ZREM', tickets, tk)
  if redis.call('HDEL', granted, tk) == 1 then redis.call('ZREM', held, tk) end
  status, value = 2, now
else
  return redis.error_reply('jobpoll: unknown limiter op ' .. tostring(op))
end
touch()
return {status, value, epoch, now, fresh}
)lua";

// The six keys of one limit: `<prefix>{<key>}:<part>` (one hash slot).
inline std::vector<std::string> limiter_keys(const redis_limiter_options& o) {
  std::vector<std::string> keys;
  for (const char* part : {"state", "releases", "held", "queue", "tickets", "granted"})
    keys.push_back(o.key_prefix + "{" + o.key + "}:" + part);
  return keys;
}

inline std::int64_t whole_us(std::chrono::nanoseconds d) {
  return std::chrono::ceil<std::chrono::microseconds>(d).count();
}

// How long the keys live without use: a day, or ten times what the budget
// and the holds remember. Expiry is a cold start, which holds back.
inline std::int64_t idle_expiry_ms(const redis_limiter_options& o) {
  const auto ms = [](std::chrono::nanoseconds d) { return std::chrono::ceil<std::chrono::milliseconds>(d).count(); };
  return std::max<std::int64_t>({86'400'000, 10 * ms(o.budget.horizon()), 10 * ms(o.hold_timeout)});
}

// The arguments of EVALSHA (or EVAL) running `op` with `op_args`: the
// command name and script (or its SHA-1) are the caller's.
inline std::vector<std::string> script_arguments(const redis_limiter_options& o, std::string_view op,
                                                 const std::vector<std::string>& op_args) {
  std::vector<std::string> args{"6"};
  for (auto& k : limiter_keys(o)) args.push_back(std::move(k));
  args.emplace_back(op);
  args.push_back(o.budget.signature());
  args.push_back(std::to_string(whole_us(o.hold_timeout)));
  args.push_back(std::to_string(whole_us(o.ticket_timeout)));
  args.emplace_back(o.cold_start == redis_cold_start::hold_back ? "hold" : "full");
  args.push_back(std::to_string(idle_expiry_ms(o)));
  args.insert(args.end(), op_args.begin(), op_args.end());
  return args;
}

}  // namespace jobpoll::detail::redis
