#pragma once
// The client side of redis_limiter's decisions, apart from any I/O: what a
// script answer says, what an error reply means, how long to wait before
// asking again, what the local fallback may grant, and the ledger of the
// permits this process holds (what to send when one is released, what to
// hand Redis when it answers again). Plain classes, tested directly.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jobpoll/detail/redis/reply.hpp"
#include "jobpoll/redis_limiter_options.hpp"

namespace jobpoll::detail::redis {

/// Redis answered something the limiter cannot read (a bug, or another
/// program's script under the same name): says what was received.
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What one run of the limiter script answered.
struct script_answer {
  bool granted = false;
  std::string permit;              // granted: the permit id (the asker's ticket)
  std::int64_t not_before_us = 0;  // not granted: ask again at this server time; done: a time (pause's end)
  std::string epoch;               // the state's creation time: another one means the state was lost
  std::int64_t server_now_us = 0;
  bool fresh = false;              // the state was created by this run
};

// Reads the script's reply {status, value, epoch, now, fresh} (status 1:
// granted, value the permit; 0: not before server time `value`; 2: done,
// value a time); throws protocol_error naming what was received.
inline script_answer read_answer(const reply& r) {
  const auto bad = [&](std::string_view why) {
    return protocol_error("unexpected answer from Redis to the limiter script (" + std::string(why) +
                          "): " + describe(r));
  };
  if (r.type != reply::kind::array || r.elements.size() != 5) throw bad("expected an array of 5");
  const reply& status = r.elements[0];
  const reply& value = r.elements[1];
  const reply& epoch = r.elements[2];
  const reply& now = r.elements[3];
  const reply& fresh = r.elements[4];
  if (status.type != reply::kind::integer || status.integer < 0 || status.integer > 2)
    throw bad("status must be 0, 1 or 2");
  if (epoch.type != reply::kind::string || epoch.text.empty()) throw bad("epoch must be a string");
  if (now.type != reply::kind::integer || now.integer <= 0) throw bad("server time must be a positive integer");
  if (fresh.type != reply::kind::integer || (fresh.integer != 0 && fresh.integer != 1))
    throw bad("fresh must be 0 or 1");
  script_answer a;
  a.granted = status.integer == 1;
  a.epoch = epoch.text;
  a.server_now_us = now.integer;
  a.fresh = fresh.integer == 1;
  if (a.granted) {
    if (value.type != reply::kind::string || value.text.empty()) throw bad("a grant must name its permit");
    a.permit = value.text;
  } else if (status.integer == 0) {
    if (value.type != reply::kind::integer || value.integer <= now.integer) throw bad("a wait must end after now");
    a.not_before_us = value.integer;
  } else {
    if (value.type != reply::kind::integer) throw bad("a done op answers a time");
    a.not_before_us = value.integer;
  }
  return a;
}

// What an error reply of Redis means for the limiter.
enum class error_class : unsigned char {
  no_script,  // the script cache lost the script: EVAL it
  transient,  // Redis is loading, busy, out of memory, failing over: as if down
  refused,    // retrying cannot help (budget mismatch, authentication, a wrong type, ...)
};

inline error_class classify_error(std::string_view message) {
  if (message.starts_with("NOSCRIPT")) return error_class::no_script;
  for (std::string_view code : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "OOM"})
    if (message.starts_with(code) && (message.size() == code.size() || message[code.size()] == ' '))
      return error_class::transient;
  return error_class::refused;
}

// How long to wait before the head of the local queue asks again after
// "not before T": T - now on the server's clock, but never longer than a
// third of the ticket timeout, so the process's ticket stays alive.
inline std::chrono::nanoseconds ask_again_in(const script_answer& a, std::chrono::nanoseconds ticket_timeout) {
  const auto wait = std::chrono::microseconds(std::max<std::int64_t>(0, a.not_before_us - a.server_now_us));
  return std::min<std::chrono::nanoseconds>(wait, ticket_timeout / 3);
}

// The budget of the in-process limiter used while Redis is down:
// `fraction` of the shared one, never less than one request per period
// (bucket: a burst of at least one, the rate scaled by stretching `per`).
inline redis_budget fallback_budget(const redis_budget& b, double fraction) {
  if (b.type == redis_budget::kind::sliding_window) {
    const auto n = static_cast<std::size_t>(std::floor(static_cast<double>(b.count) * fraction));
    return redis_budget::sliding_window(std::max<std::size_t>(1, n), b.period);
  }
  const auto burst = static_cast<std::size_t>(std::floor(static_cast<double>(b.burst) * fraction));
  const auto per =
      std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(static_cast<double>(b.period.count()) / fraction)));
  return redis_budget::token_bucket(b.count, per, std::max<std::size_t>(1, burst));
}

// The permits one process holds and the ids it uses in Redis: the current
// ticket ("<process>:<n>"), permits granted by Redis (id = the ticket they
// were granted to) and by the local fallback ("<process>:f<n>", unknown to
// Redis until it answers again). Times are the caller's (a steady clock).
template <class TimePoint>
class permit_ledger {
 public:
  using time_point = TimePoint;
  using duration = typename TimePoint::duration;

  explicit permit_ledger(std::string process) : process_(std::move(process)) {}

  const std::string& process() const noexcept { return process_; }

  // The ticket the head of the local queue asks with: the current one, or a new one.
  const std::string& ticket() {
    if (ticket_.empty()) ticket_ = process_ + ":" + std::to_string(++counter_);
    return ticket_;
  }
  bool has_ticket() const noexcept { return !ticket_.empty(); }
  // The ticket was granted or left: the next ask takes a new one (the back of the line).
  void ticket_done() noexcept { ticket_.clear(); }

  // A permit Redis granted (held there under `id`); its local number.
  std::uint64_t add_granted(std::string id) {
    const std::uint64_t local = ++counter_;
    held_.emplace(local, entry{std::move(id), true});
    return local;
  }

  // A permit the local fallback granted; its local number. Redis learns of
  // it at the next refresh.
  std::uint64_t add_fallback() {
    const std::uint64_t local = ++counter_;
    held_.emplace(local, entry{process_ + ":f" + std::to_string(local), false});
    return local;
  }

  // What releasing the permit `local` at `now` asks of Redis: the id to
  // release there (empty: nothing, Redis never knew it; its release is
  // handed over at the next refresh instead).
  std::string release(std::uint64_t local, time_point now) {
    const auto it = held_.find(local);
    if (it == held_.end()) return {};
    entry e = std::move(it->second);
    held_.erase(it);
    if (e.registered) return e.id;
    unregistered_releases_.push_back({std::move(e.id), now});
    return {};
  }

  // The refresh's entries: "h<id>" for every permit held (holds it again in
  // a state that lost it, registers the fallback's), "r<id>" for every
  // fallback permit released within `horizon` before `now` (counted by
  // Redis at its own now: later than it was, never less).
  std::vector<std::string> refresh_entries(time_point now, duration horizon) {
    while (!unregistered_releases_.empty() && unregistered_releases_.front().second + horizon <= now)
      unregistered_releases_.pop_front();
    std::vector<std::string> entries;
    for (const auto& [local, e] : held_) entries.push_back("h" + e.id);
    for (const auto& [id, at] : unregistered_releases_) entries.push_back("r" + id);
    return entries;
  }

  // The refresh of `entries` (from `refresh_entries`) succeeded: the
  // permits it held are registered, the releases it carried are Redis's now.
  void refreshed(const std::vector<std::string>& entries) {
    std::set<std::string_view> holds;
    std::size_t releases = 0;
    for (const auto& e : entries) {
      if (e.starts_with('h')) {
        holds.insert(std::string_view(e).substr(1));
      } else {
        ++releases;
      }
    }
    for (auto& [local, e] : held_)
      if (holds.contains(e.id)) e.registered = true;
    releases = std::min(releases, unregistered_releases_.size());
    unregistered_releases_.erase(unregistered_releases_.begin(),
                                 unregistered_releases_.begin() + static_cast<std::ptrdiff_t>(releases));
  }

  std::size_t held() const noexcept { return held_.size(); }
  std::size_t unregistered_releases() const noexcept { return unregistered_releases_.size(); }
  bool registered(std::uint64_t local) const {
    const auto it = held_.find(local);
    return it != held_.end() && it->second.registered;
  }

 private:
  struct entry {
    std::string id;
    bool registered;
  };
  std::string process_;
  std::uint64_t counter_ = 0;
  std::string ticket_;
  std::map<std::uint64_t, entry> held_;
  std::deque<std::pair<std::string, time_point>> unregistered_releases_;
};

}  // namespace jobpoll::detail::redis
