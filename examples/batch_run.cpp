// batch_run: runs N jobs on the demo job server's /v1 job API as one batch,
// at most C at a time (and at most --rate requests in any --rate-window, or
// a budget shared through Redis with --rate-redis),
// and prints how the batch ended as one line of JSON: jobpoll::to_json of
// its report, the seed's reconciliation plus how and why the run ended.
//
//   POST   /v1/jobs          {"tool": "batch", "params": {"n": k}, "steps": S, "outcome": ...}
//   GET    /v1/jobs/{job_id} -> pending | running | completed (with result) | failed
//   DELETE /v1/jobs/{job_id} -> cancels it (with --cancel-on-stop)
//
// The batch lives in a SQLite store (--store, default ./batch.db) under its
// --name: a row per job record (its state, handle, key and kept result) and
// a history row per change, each change one transaction committed as it
// happens. With --store postgres://... (or postgresql://...) it lives in a
// PostgreSQL database instead, where several batch_run processes, on one
// machine or several, run the same batch at once: each takes the jobs it
// runs under a lease (--lease) it renews, and the jobs of one that dies are
// taken over by the others, polled by their handle. A run that finds its batch there resumes it: completed jobs are
// kept, jobs that were running are polled again by their handle, pending
// ones are submitted, and jobs cancelled by a stop are submitted again (new
// jobs naming them as parent). A job's intent is committed before its
// submit leaves, so even a crash (SIGKILL, power cut) during a submit is
// settled by the next run as --submit-key says: sent again with its key
// (key), looked up by its key (lookup), or marked unknown (none).
//
// A failed job is submitted again (--resubmits times) as a new job naming its
// parent; --fail-every K makes every K-th entry fail on the server, to show it.
//
// Ctrl-C (or SIGTERM) stops submitting; jobs in flight get --grace to finish,
// then are left running on the server (or cancelled, with --cancel-on-stop).
// A second signal stops at once. Run the same command again to resume.
//
// Subcommands read or settle the batch in the store, without the server:
//   status            the reconciliation, counts, owner, failed and unknown jobs (one JSON object)
//   results           one NDJSON line per completed job: {"entry", "job", "handle", "result"}
//   history           every change, as NDJSON audit lines
//   resubmit ID...    failed, cancelled or unknown jobs again, as new jobs
//   skip ID...        jobs never to run (--reason TEXT)
//   adopt ID HANDLE   an unknown job is the server's job HANDLE: the next run polls it
//   release           clears the owner of a runner that died on another host
//                     (PostgreSQL: removes the runners whose lease ran out)
//
// The options are CLI11's, their values read with the jobpoll tool's grammar
// (tools/cli_values.hpp): counts, and durations ("500ms", "1.5s", "2m", or 0).
//
// Usage: batch_run --server http://127.0.0.1:PORT [--jobs 100] [--rate 20 --rate-window 15s | --rate-redis URL] ...
//        batch_run [--store FILE|URI] [--name NAME] status|results|history|resubmit|skip|adopt|release ...
//        batch_run --help lists every option, subcommand and exit code.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <sys/ioctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <jobpoll/asio.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/batch/batch_json.hpp>
#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/interval.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/job_description.hpp>
#include <jobpoll/redis_limiter.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/store/postgres.hpp>
#include <jobpoll/store/sqlite.hpp>
#include <jobpoll/transport/curl.hpp>

#include "cli_values.hpp"

namespace {

using namespace std::chrono_literals;
using json_status = jobpoll::field_status<jobpoll::json_codec>;
using demo_client = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, json_status>;
template <class Store>
using demo_batch = jobpoll::batch_runner<demo_client, Store>;
template <class Store>
constexpr bool is_postgres = std::is_same_v<Store, jobpoll::postgres_store>;
using jobpoll::batch_job_state;

// The exit codes, as --help lists them.
constexpr int exit_completed = 0;
constexpr int exit_failed = 1;
constexpr int exit_unfinished = 2;
constexpr int exit_error = 3;
constexpr int exit_usage = 64;

constexpr std::string_view footer_text = R"(Durations: a number and a unit (500ms, 2s, 1.5s, 2m, 1h), or 0; at most 1000h.

The batch lives in --store (SQLite) under --name: every job, its handle, its
result and a history of every change, each committed as it happens. The same
command again resumes it; a store holding --name with other entries (--jobs,
--fail-every) is refused and left untouched. One runner owns a batch at a time.

--store postgres://USER@HOST:PORT/DB (or postgresql://..., any URI libpq
reads) keeps the batch in PostgreSQL (schema "jobpoll") instead, and several
batch_run processes, here or on other machines, may run it at once with the
same command: each takes jobs nobody holds, under a lease of --lease that it
renews every third of it. A runner that dies (kill -9, a lost machine) holds
its jobs until its lease runs out; then the others take them over, poll the
running ones by their handle and settle cut submits by --submit-key. A runner
whose lease ran out is refused any change (fenced) and stops (exit 3).
`status` lists the registered runners; `release` removes those whose lease ran out.

After a crash (kill -9, power cut) during a submit, the next run settles the
jobs whose submit was under way as --submit-key says:
  key     (default) every submit carries the header Idempotency-Key: <job key>;
          the job is sent again with the same key and the server answers with
          the job it already has: every entry runs exactly once.
  lookup  every submit carries "client_ref": "<job key>" in its body; the job
          is looked up (GET /v1/jobs?client_ref=<job key>) and polled if found,
          submitted again if not: once, unless the lost submit reaches the
          server only after the lookup.
  none    neither: the job becomes UNKNOWN (the server may or may not have
          it), never failed and never sent again by itself. The run exits 2,
          `batch_run status` lists it; settle it with `batch_run resubmit ID`
          (a new job: it may run twice), `skip ID` or `adopt ID HANDLE`.

Exit codes (of a run, and of `status` for the batch as stored):
  0   the batch is COMPLETED: every entry has a completed job
  1   the batch is FAILED: a job failed (after its resubmissions)
  2   the batch is not finished: jobs are left to run (a stop; the same
      command again resumes it), cancelled (--cancel-on-stop), or unknown
      (resubmit, skip or adopt each)
  3   error: the store holds --name with other entries, another runner owns
      the batch, the store cannot be read or written, no such store, batch
      or job, an action refused (e.g. resubmitting a completed job)
  64  usage error: an unknown option or a bad value
Other subcommands exit 0 once done.

Example (the demo job server: python3 tests/server/job_server.py --port 8080):
  batch_run --server http://127.0.0.1:8080 --jobs 100 --fail-every 10 --rate 20 --rate-window 15s
  # Ctrl-C, then the same command again: it resumes from ./batch.db
  batch_run status; batch_run results > results.ndjson)";

// --- the command line ------------------------------------------------------------

enum class submit_key { key, lookup, none };

// What the command line says: each option writes straight into its member;
// the defaults are the options' (see define_options).
struct settings {
  std::string server;  // without a trailing '/'
  std::size_t jobs = 0;
  std::size_t steps = 0;
  std::chrono::nanoseconds interval{};
  std::size_t concurrency = 0;
  std::optional<std::size_t> rate;  // requests in any rate window; none: no limit
  std::chrono::nanoseconds rate_window{};
  std::string rate_redis_url;  // a budget shared through Redis instead; "" for none
  std::optional<jobpoll::redis_limiter_options> rate_redis;
  std::chrono::nanoseconds job_timeout{};
  std::size_t resubmits = 0;
  std::size_t fail_every = 0;
  std::chrono::nanoseconds grace{};
  bool cancel_on_stop = false;
  std::string submit_key_name = "key";
  std::filesystem::path store = "./batch.db";
  std::string name = "batch_run";
  std::chrono::nanoseconds lease{};

  // The subcommands' arguments.
  std::vector<std::size_t> ids;  // resubmit, skip
  std::size_t adopt_id = 0;
  std::string reason;
  std::string handle;

  // --store names a PostgreSQL database (a URI), not a SQLite file.
  bool on_postgres() const {
    const std::string text = store.string();
    return text.starts_with("postgres://") || text.starts_with("postgresql://");
  }
  // --store as messages show it: a URI without its password.
  std::string store_shown() const {
    std::string text = store.string();
    if (!on_postgres()) return text;
    const std::size_t authority = text.find("://") + 3;
    const std::size_t at = text.find('@', authority);
    const std::size_t colon = text.find(':', authority);
    if (at != std::string::npos && colon < at && text.find('/', authority) > at) text.erase(colon, at - colon);
    return text;
  }

  submit_key key_mode() const {
    return submit_key_name == "lookup" ? submit_key::lookup : submit_key_name == "none" ? submit_key::none
                                                                                         : submit_key::key;
  }
};

// A count above this is a typo here.
constexpr std::size_t most = 1'000'000;

// --server: an http:// or https:// URL, kept without its trailing '/' (the
// job API's paths are appended to it).
CLI::Validator base_url() {
  return CLI::Validator(
      [](std::string& url) {
        auto checked = cli_values::read_http_url(url);
        if (auto* refused = std::get_if<cli_values::refusal>(&checked)) return refused->message;
        while (url.ends_with('/')) url.pop_back();
        return std::string();
      },
      "");
}

// --store, --name, HANDLE: CLI11 takes '' as a value.
CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& text) {
        return text.empty() ? std::string("expected a non-empty value, got ''") : std::string();
      },
      "");
}

// Job ids, as positionals: whole numbers from 1.
CLI::Option* add_ids(CLI::App& app, std::vector<std::size_t>& ids, const std::string& help) {
  return cli_values::add_read_list(
             app, "ID", help, [](std::string_view text) { return cli_values::read_count(text, 1); },
             [&ids](std::size_t id) { ids.push_back(id); })
      ->type_name("ID")
      ->required();
}

// The options of a run on the main command; --store and --name there too,
// and the subcommands, which take those two (and ignore the run's options:
// `batch_run <the run's command line> status` works).
void define_options(CLI::App& app, settings& s) {
  using cli_values::add_count;
  using cli_values::add_duration;
  app.footer(std::string(footer_text));
  app.get_formatter()->column_width(36);
  // Options of this command given after a subcommand's name are this command's.
  app.fallthrough();
  app.require_subcommand(0, 1);
  app.add_option("--server", s.server, "base URL of the job server, e.g. http://127.0.0.1:8080 (needed by a run only)")
      ->type_name("URL")
      ->transform(base_url());
  add_count(app, "--jobs", s.jobs, "entries of the batch: entry k submits params {\"n\": k}", 1, most)
      ->default_val("100");
  add_count(app, "--steps", s.steps, "polls each demo job answers pending/running before it ends", 0, most)
      ->type_name("S")
      ->default_val("3");
  add_duration(app, "--interval", s.interval, "wait between two polls of a job")->default_val("200ms");
  add_count(app, "--concurrency", s.concurrency, "jobs submitting or being polled at once", 1, most)
      ->type_name("C")
      ->default_val("8");
  CLI::Option* rate =
      add_count(app, "--rate", s.rate, "at most N requests of the whole batch in any --rate-window", 1, most);
  add_duration(app, "--rate-window", s.rate_window, "the window of --rate", cli_values::zero_duration::refused)
      ->default_val("1s")
      ->needs(rate);
  app.add_option("--rate-redis", s.rate_redis_url,
                 "a budget the whole batch shares through Redis with every process naming the same key (other "
                 "batch_run runners of a PostgreSQL batch included), e.g. redis://127.0.0.1:6379/api?rate=20/15s")
      ->type_name("URL")
      ->excludes(rate);
  add_duration(app, "--job-timeout", s.job_timeout, "deadline of each job, submit to result (then it is cancelled)")
      ->default_val("5m");
  add_count(app, "--resubmits", s.resubmits, "resubmissions of a failed job (each a new job naming its parent)", 0,
            most)
      ->type_name("K")
      ->default_val("1");
  add_count(app, "--fail-every", s.fail_every,
            "every K-th entry (k = K-1, 2K-1, ...) asks the server for a failing job; 0: none", 0, most)
      ->type_name("K")
      ->default_val("0");
  add_duration(app, "--grace", s.grace, "after Ctrl-C/SIGTERM, how long jobs in flight may still finish")
      ->default_val("2s");
  app.add_flag("--cancel-on-stop", s.cancel_on_stop,
               "cancel the jobs still in flight on the server when stopping, and submit them again on resume "
               "(default: leave them running and poll them again on resume)");
  app.add_option("--submit-key", s.submit_key_name,
                 "how a submit cut short by a crash is settled: key (Idempotency-Key header), lookup (client_ref, "
                 "looked up), none (the job becomes unknown); see below")
      ->type_name("key|lookup|none")
      ->check(cli_values::one_of({"key", "lookup", "none"}))
      ->capture_default_str();
  app.add_option("--store", s.store,
                 "the SQLite file the batch lives in (created by the first run), or a postgres:// URI: the "
                 "PostgreSQL database several runners share")
      ->type_name("FILE|URI")
      ->check(non_empty())
      ->capture_default_str();
  app.add_option("--name", s.name, "the batch's name in the store")
      ->type_name("NAME")
      ->check(non_empty())
      ->capture_default_str();
  add_duration(app, "--lease", s.lease,
               "with a PostgreSQL store: how long this runner's jobs stay its own without a renewal (renewed "
               "every third of it); a runner that dies hands them over this long after",
               cli_values::zero_duration::refused)
      ->default_val("30s");

  const auto subcommand = [&app](const std::string& name, const std::string& help) {
    CLI::App* sub = app.add_subcommand(name, help);
    sub->footer("--store FILE and --name NAME (before or after the subcommand) name the batch; no server is needed.");
    return sub;
  };
  subcommand("status",
             "print the batch's reconciliation, counts per state, owner, failed and unknown jobs as one JSON object "
             "(reads without owning; exits as the batch: 0, 1 or 2)");
  subcommand("results",
             "print one NDJSON line per completed job, in entry order: {\"entry\", \"job\", \"handle\", \"result\"}");
  subcommand("history", "print every change of every job, oldest first, as NDJSON audit lines");
  CLI::App* resubmit = subcommand(
      "resubmit", "submit failed, cancelled or unknown jobs again, each as a new job naming it (the next run runs it)");
  add_ids(*resubmit, s.ids, "the jobs (ids as `status` lists them)");
  CLI::App* skip = subcommand("skip", "skip jobs: never submitted, left out of the reconciliation, kept in the record");
  add_ids(*skip, s.ids, "the jobs");
  skip->add_option("--reason", s.reason, "why, kept with each job")->type_name("TEXT");
  CLI::App* adopt = subcommand(
      "adopt", "take the server's job HANDLE as unknown job ID's (found on the server by hand): the next run polls it");
  cli_values::add_count(*adopt, "ID", s.adopt_id, "the unknown job", 1)->type_name("ID")->required();
  adopt->add_option("HANDLE", s.handle, "the server's id of the job, e.g. job-17")->check(non_empty())->required();
  subcommand("release",
             "clear the batch's owner: for a runner that died on another host (one on this host is taken over "
             "by the next run); with PostgreSQL, remove the runners whose lease ran out");
}

// --- the job API and the batch ---------------------------------------------------

// The demo server's job API as data. The body's {n} and {outcome} come from
// each entry's parameters (inserted as is: the body is not a URL); the
// runner gives every submit its record's key as {job_key}.
jobpoll::job_description demo_job_api(const std::string& server, std::size_t steps, submit_key key) {
  jobpoll::job_description d;
  std::string body = R"({"tool": "batch", "params": {"n": {n}}, "steps": )" + std::to_string(steps) +
                     R"(, "outcome": "{outcome}")";
  if (key == submit_key::lookup) body += R"(, "client_ref": "{job_key}")";
  body += "}";
  d.submit = {"POST", server + "/v1/jobs", std::move(body)};
  if (key == submit_key::key) {
    d.submit.headers.add("Idempotency-Key", "{job_key}");
    d.idempotent_submit = true;
  }
  if (key == submit_key::lookup)
    d.lookup = jobpoll::job_lookup{{"GET", server + "/v1/jobs?client_ref={job_key}"}, "/jobs/0/job_id"};
  d.handle = jobpoll::handle_source::body("/job_id");
  d.poll = {"GET", server + "/v1/jobs/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  d.cancel = jobpoll::request_template{"DELETE", server + "/v1/jobs/{handle}"};
  return d;
}

// "cancelled" counts as failed: a job someone else cancelled on the server
// must end its poll, not be an unknown status.
json_status demo_status() {
  return json_status("/status",
                     {.succeeded = {"completed"}, .failed = {"failed", "cancelled"}, .pending = {"pending", "running"}})
      .progress_at("/progress")
      .failure_detail_at("/error");
}

// Entry k is job {"n": k}; with --fail-every K, every K-th entry fails on the
// server, and so does its resubmission (same parameters, same outcome). Made
// one at a time, as the store asks for them.
jobpoll::batch_entry_source entry_source(const settings& s) {
  return [fail_every = s.fail_every](std::size_t k) {
    const bool fails = fail_every > 0 && (k + 1) % fail_every == 0;
    return jobpoll::batch_entry(
        jobpoll::job_params{{"n", std::to_string(k)}, {"outcome", fails ? "failed" : "completed"}});
  };
}

// Every record of the batch in `state` (not skipped), a page at a time.
template <class Store, class F>
void for_each_in(const Store& store, batch_job_state state, F f) {
  for (std::size_t after = 0;;) {
    const std::vector<jobpoll::batch_job> page = store.jobs_in(state, after, 256);
    if (page.empty()) return;
    after = page.back().id;
    for (const jobpoll::batch_job& job : page) f(job);
  }
}

// --- what the user sees ----------------------------------------------------------

// Counts per state on stderr, redrawn in place on a terminal. Anywhere else
// (a pipe, a log file) a plain line, at most one per 500 ms and only after a
// change, so that logs stay readable. `finish` prints the last counts.
class progress_display {
 public:
  progress_display(asio::any_io_executor executor, bool terminal)
      : timer_(std::move(executor)), terminal_(terminal), start_(std::chrono::steady_clock::now()) {}

  void update(const jobpoll::batch_counts& counts) {
    counts_ = counts;
    changed_ = true;
  }

  void start() { tick(); }

  // A message on a line of its own (the bar is redrawn below it).
  void note(const std::string& message) {
    std::fprintf(stderr, "%s%s\n", terminal_ ? "\r\x1b[K" : "", message.c_str());
    if (terminal_) draw();
  }

  void finish() {
    timer_.cancel();
    draw();
    if (terminal_) std::fputc('\n', stderr);
  }

 private:
  void tick() {
    // On a terminal the elapsed time moves even when the counts do not.
    timer_.expires_after(terminal_ ? 100ms : 500ms);
    timer_.async_wait([this](jobpoll::error_code ec) {
      if (ec) return;  // cancelled by `finish`
      if (terminal_ || changed_) draw();
      tick();
    });
  }

  void draw() {
    changed_ = false;
    const auto& c = counts_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char line[256];
    std::snprintf(line, sizeof line,
                  "[%6.1fs] %zu completed, %zu failed, %zu running, %zu pending, %zu skipped, %zu cancelled, "
                  "%zu unknown",
                  elapsed, c[batch_job_state::completed], c[batch_job_state::failed], c.in_flight(),
                  c[batch_job_state::pending], c.skipped, c[batch_job_state::cancelled], c[batch_job_state::unknown]);
    if (!terminal_) {
      std::fprintf(stderr, "%s\n", line);
      return;
    }
    // Skipped records (resubmitted parents) are neither work left nor done.
    const std::size_t total = c.total() - c.skipped;
    const std::size_t ended = c[batch_job_state::completed] + c[batch_job_state::failed] +
                              c[batch_job_state::cancelled] + c[batch_job_state::unknown];
    constexpr std::size_t bar_width = 24;
    const std::size_t filled = total == 0 ? bar_width : ended * bar_width / total;
    std::string text = "[" + std::string(filled, '#') + std::string(bar_width - filled, '-') + "] " + line;
    // A line wider than the terminal would wrap, and "\r" would then redraw only its last part.
    winsize size{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 && text.size() >= size.ws_col)
      text.resize(size.ws_col - 1u);
    std::fprintf(stderr, "\r%s\x1b[K", text.c_str());
    std::fflush(stderr);
  }

  asio::steady_timer timer_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  jobpoll::batch_counts counts_;
  bool changed_ = false;
};

// The exit code of a batch as its records stand.
int exit_code_of(const jobpoll::batch_summary& summary) {
  const auto& c = summary.counts;
  // Jobs left for a resume or a decision come first: the batch is not over, whatever failed so far.
  if (c[batch_job_state::pending] + c[batch_job_state::submitting] + c[batch_job_state::running] +
          c[batch_job_state::unknown] >
      0)
    return exit_unfinished;
  switch (summary.status) {
    case jobpoll::batch_status::completed: return exit_completed;
    case jobpoll::batch_status::failed: return exit_failed;
    default: return exit_unfinished;
  }
}

// The first signal stops submitting and lets jobs in flight finish within the
// grace period; a second one abandons them at once. Re-arms itself until the
// batch ends and cancels the set.
template <class Batch>
struct on_signal {
  asio::signal_set* signals;
  Batch* batch;
  progress_display* progress;
  std::string after_grace;  // what happens to jobs still in flight then
  bool stopping = false;

  void operator()(const jobpoll::error_code& ec, int number) {
    if (ec) return;
    const std::string name = number == SIGINT ? "SIGINT" : "SIGTERM";
    if (!stopping) {
      stopping = true;
      progress->note("batch_run: " + name + " received: no new jobs; jobs in flight may finish within the grace "
                     "period, then are " + after_grace + " (a second signal: at once)");
      batch->request_stop(name + " received");
    } else {
      progress->note("batch_run: " + name + " received again: stopping at once; jobs in flight are " + after_grace);
      batch->stop_now(name + " received again");
    }
    signals->async_wait(*this);
  }
};

std::string quoted(const std::string& text) { return nlohmann::json(text).dump(); }

// "batch "NAME" in STORE".
std::string batch_named(const settings& s) { return "batch " + quoted(s.name) + " in " + s.store_shown(); }

// What to do about unknown jobs, on stderr after a run or an action.
template <class Store>
void settle_unknown_hint(const Store& store, const settings& s, std::size_t unknown) {
  if (unknown == 0) return;
  std::string ids;
  std::size_t listed = 0;
  for (const jobpoll::batch_job& job : store.jobs_in(batch_job_state::unknown, 0, 10)) {
    ids += (listed++ == 0 ? "" : ", ") + std::to_string(job.id);
  }
  if (unknown > listed) ids += ", ...";
  std::cerr << "batch_run: " << unknown << (unknown == 1 ? " job is" : " jobs are") << " unknown (job "
            << ids << "): the run ended during "
            << (unknown == 1 ? "its submit" : "their submits")
            << " and, without --submit-key key or lookup, the server may or may not have "
            << (unknown == 1 ? "it" : "them") << ". Settle each with `batch_run resubmit ID` (a new job), "
            << "`batch_run skip ID` or `batch_run adopt ID HANDLE` (the server's job), then run again; "
            << "`batch_run --store " << s.store_shown() << " --name " << s.name << " status` lists them."
            << std::endl;
}

// The store a run uses (created if missing): --store's SQLite file or PostgreSQL database.
std::unique_ptr<jobpoll::sqlite_store> open_for_run(const settings& s, std::type_identity<jobpoll::sqlite_store>) {
  return std::make_unique<jobpoll::sqlite_store>(s.store, s.name);
}
std::unique_ptr<jobpoll::postgres_store> open_for_run(const settings& s, std::type_identity<jobpoll::postgres_store>) {
  jobpoll::postgres_store_options options;
  options.lease = std::chrono::ceil<std::chrono::milliseconds>(s.lease);
  return std::make_unique<jobpoll::postgres_store>(s.store.string(), s.name, std::move(options));
}

// Runs the batch to its end; returns the exit code. Throws for the errors of exit code 3.
template <class Store>
int run_batch(const settings& s) {
  asio::io_context ctx;  // one thread runs the whole batch (a PostgreSQL store's calls run on its own worker)
  jobpoll::curl_transport transport(ctx.get_executor());
  demo_client client(transport, demo_job_api(s.server, s.steps, s.key_mode()), demo_status());
  std::optional<jobpoll::sliding_window_limiter> limiter;
  std::optional<jobpoll::redis_limiter> shared_limiter;
  progress_display progress(ctx.get_executor(), ::isatty(STDERR_FILENO) == 1);

  // Creates the batch, or checks that the store holds these entries under
  // this name (refused, and left untouched, otherwise) before anything is sent.
  const std::unique_ptr<Store> opened = open_for_run(s, std::type_identity<Store>{});
  Store& store = *opened;
  const bool resuming = store.exists();
  store.create(s.jobs, entry_source(s));

  jobpoll::batch_options options;
  options.max_in_flight = s.concurrency;
  options.job.interval = jobpoll::fixed_interval{s.interval};
  options.job.deadline = s.job_timeout;
  if (s.rate) {
    // One limiter for every request of the batch: submits, lookups, polls and cancels.
    limiter.emplace(ctx.get_executor(), *s.rate, s.rate_window);
    options.job.limiter = *limiter;
  } else if (s.rate_redis) {
    // The same, with the budget in Redis: every runner naming the key shares it.
    jobpoll::redis_limiter_options shared = *s.rate_redis;
    shared.on_event = [](const jobpoll::redis_limiter_event& e) {
      using kind = jobpoll::redis_limiter_event::kind;
      if (e.what == kind::down) std::cerr << "batch_run: rate limit: Redis down (" << e.detail << "), waiting" << std::endl;
      if (e.what == kind::refused) std::cerr << "batch_run: rate limit: Redis refused: " << e.detail << std::endl;
    };
    shared_limiter.emplace(ctx.get_executor(), std::move(shared));
    options.job.limiter = *shared_limiter;
  }
  options.max_resubmits = s.resubmits;
  options.grace_period = s.grace;
  options.when_stopped = s.cancel_on_stop ? jobpoll::on_cancel::cancel_job : jobpoll::on_cancel::keep_job;
  options.on_progress = [&progress](const jobpoll::batch_counts& counts, const jobpoll::batch_job&) {
    progress.update(counts);
  };

  // Owns the batch until it is destroyed: refused (throws) while another
  // runner does (on PostgreSQL: registered beside the others). The store
  // keeps each completed job's result as JSON text.
  demo_batch<Store> batch(
      ctx.get_executor(), client, store, std::move(options),
      [](const jobpoll::batch_job&, jobpoll::job_result<nlohmann::json>& r) { return r.value.dump(); });
  std::size_t other_runners = 0;  // live runners besides this one (PostgreSQL)
  if constexpr (is_postgres<Store>) {
    for (const auto& r : store.runners()) other_runners += r.live && r.id != store.runner_id() ? 1 : 0;
    std::cerr << "batch_run: runner " << store.runner_id() << " on " << store.origin() << ", with " << other_runners
              << " other live " << (other_runners == 1 ? "runner" : "runners") << std::endl;
  } else if (const auto& dead = store.taken_over()) {
    std::cerr << "batch_run: took the batch over from pid " << dead->pid << " on host " << dead->host
              << ", which is gone" << std::endl;
  }
  // From here on a signal stops the batch through the runner (before `run`,
  // `run` then returns at once).
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  signals.async_wait(on_signal<demo_batch<Store>>{
      &signals, &batch, &progress, s.cancel_on_stop ? "cancelled on the server" : "left running for a resume"});
  if (resuming) {
    const jobpoll::batch_counts c = batch.counts();
    if (other_runners > 0) {
      // Their jobs in flight are theirs, not a crash's to settle.
      std::cerr << "joining: " << c[batch_job_state::completed] << " completed, " << c.in_flight()
                << " submitting or running, " << c[batch_job_state::pending] << " pending";
    } else {
      std::cerr << "resuming: " << c[batch_job_state::completed] << " completed, " << c[batch_job_state::running]
                << " running, " << c[batch_job_state::pending] << " pending";
      if (const std::size_t doubtful = c[batch_job_state::submitting]; doubtful > 0)
        std::cerr << ", " << doubtful << " with a submit to settle (--submit-key " << s.submit_key_name << ")";
    }
    if (const std::size_t unknown = c[batch_job_state::unknown]; unknown > 0)
      std::cerr << ", " << unknown << " unknown";
    // Jobs cancelled by a stop (--cancel-on-stop) run again, each as a new job
    // naming the cancelled one as its parent: otherwise the batch could never
    // complete. On PostgreSQL only by a runner that starts alone: two doing
    // it at once could each make a new job of the same one.
    std::vector<std::size_t> cancelled;
    if (other_runners == 0)
      for_each_in(store, batch_job_state::cancelled,
                  [&](const jobpoll::batch_job& job) { cancelled.push_back(job.id); });
    for (const std::size_t id : cancelled) batch.resubmit(id, {store.job(id)->params, {}});
    if (!cancelled.empty()) std::cerr << ", " << cancelled.size() << " cancelled at the stop (submitted again)";
    std::cerr << std::endl;
  }
  progress.update(batch.counts());

  std::optional<jobpoll::batch_report> report;
  std::exception_ptr failure;
  progress.start();
  asio::co_spawn(ctx, batch.run(), [&](std::exception_ptr e, jobpoll::batch_report r) {
    signals.cancel();
    progress.finish();
    if (e) {
      failure = e;
    } else {
      report = std::move(r);
    }
  });
  ctx.run();
  if (failure) std::rethrow_exception(failure);
  // PostgreSQL keeps a log of reconciliations (the seed's recon log): this run's is added.
  if constexpr (is_postgres<Store>) store.record_reconciliation();
  std::cout << jobpoll::to_json(*report).dump() << std::endl;
  settle_unknown_hint(store, s, report->summary.counts[batch_job_state::unknown]);
  return exit_code_of(report->summary);
}

// --- the subcommands -------------------------------------------------------------

// The store at --store, which must exist and hold --name (it is never created here).
std::unique_ptr<jobpoll::sqlite_store> open_existing(const settings& s) {
  jobpoll::error_code ec;
  if (!std::filesystem::exists(s.store, ec))
    throw std::runtime_error("no batch store at " + s.store.string() + " (--store): a run creates it");
  auto store = std::make_unique<jobpoll::sqlite_store>(s.store, s.name,
                                                       jobpoll::sqlite_store_options{.create_if_missing = false});
  if (!store->exists())
    throw std::runtime_error(s.store.string() + " holds no batch " + quoted(s.name) + " (--name)");
  return store;
}
std::unique_ptr<jobpoll::postgres_store> open_existing_postgres(const settings& s) {
  jobpoll::postgres_store_options options;
  options.lease = std::chrono::ceil<std::chrono::milliseconds>(s.lease);
  options.create_if_missing = false;
  auto store = std::make_unique<jobpoll::postgres_store>(s.store.string(), s.name, std::move(options));
  if (!store->exists()) throw std::runtime_error(store->origin() + " holds no batch " + quoted(s.name) + " (--name)");
  return store;
}

// `f(store)` on the existing store --store names, SQLite or PostgreSQL.
template <class F>
int with_existing_store(const settings& s, F f) {
  if (s.on_postgres()) return f(*open_existing_postgres(s));
  return f(*open_existing(s));
}

std::string utc(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm parts{};
  ::gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::string this_host() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return {};
  return name;
}

// `status`: one JSON object; exits as the batch.
template <class Store>
int show_status(const Store& store, const settings& s) {
  const jobpoll::batch_summary summary = store.summary();
  nlohmann::ordered_json out = {{"batch", s.name}, {"store", s.store_shown()}};
  const nlohmann::ordered_json reconciled = jobpoll::to_json(summary);  // held: items() would dangle on a temporary
  for (const auto& [name, value] : reconciled.items()) out[name] = value;
  nlohmann::ordered_json counts = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < jobpoll::batch_job_state_count; ++i) {
    const auto state = static_cast<batch_job_state>(i);
    counts[std::string(jobpoll::to_string(state))] = summary.counts[state];
  }
  counts["skipped"] = summary.counts.skipped;
  out["counts"] = std::move(counts);
  if constexpr (is_postgres<Store>) {
    // Every registered runner: a live one holds the jobs it runs; one whose lease ran out holds them until taken over.
    nlohmann::ordered_json runners = nlohmann::ordered_json::array();
    for (const auto& r : store.runners())
      runners.push_back({{"id", r.id}, {"host", r.host}, {"pid", r.pid}, {"started", utc(r.started)},
                         {"lease_until", utc(r.lease_until)}, {"live", r.live}, {"held", r.held}});
    out["runners"] = std::move(runners);
  } else {
    out["owner"] = nullptr;
    if (const auto owner = store.owner())
      out["owner"] = {{"pid", owner->pid}, {"host", owner->host}, {"since", utc(owner->since)}};
  }
  const auto listed = [&](batch_job_state state) {
    nlohmann::ordered_json jobs = nlohmann::ordered_json::array();
    for_each_in(store, state, [&](const jobpoll::batch_job& job) {
      jobs.push_back({{"id", job.id}, {"entry", job.entry}, {"attempt", job.attempt}, {"key", job.key},
                      {"error", job.error}});
    });
    return jobs;
  };
  out["failed"] = listed(batch_job_state::failed);
  out["unknown"] = listed(batch_job_state::unknown);
  std::cout << out.dump() << std::endl;
  return exit_code_of(summary);
}

// `results`: one line per completed record that is not skipped, in entry
// order. The entries' own records come in entry order (ids 1..N); the few
// resubmissions that completed are held and merged in.
template <class Store>
int show_results(const Store& store) {
  const auto line = [](const jobpoll::batch_job& job) {
    nlohmann::ordered_json result = nlohmann::ordered_json::parse(job.result, nullptr, false);
    if (result.is_discarded()) result = job.result;  // not JSON: as text
    return nlohmann::ordered_json{{"entry", job.entry},
                                  {"job", job.id},
                                  {"handle", job.handle ? nlohmann::ordered_json(job.handle->id) : nullptr},
                                  {"result", std::move(result)}}
        .dump();
  };
  const auto done = [](const jobpoll::batch_job& job) {
    return job.state == batch_job_state::completed && !job.skipped;
  };
  std::multimap<std::size_t, std::string> resubmissions;  // by entry
  store.for_each_job([&](const jobpoll::batch_job& job) {
    if (job.parent && done(job)) resubmissions.emplace(job.entry, line(job));
  });
  const auto flush_before = [&](std::size_t entry) {
    for (auto it = resubmissions.begin(); it != resubmissions.end() && it->first < entry;) {
      std::cout << it->second << '\n';
      it = resubmissions.erase(it);
    }
  };
  store.for_each_job([&](const jobpoll::batch_job& job) {
    if (job.parent || !done(job)) return;
    flush_before(job.entry);
    std::cout << line(job) << '\n';
  });
  flush_before(static_cast<std::size_t>(-1));
  std::cout << std::flush;
  return std::cout ? exit_completed : exit_error;
}

// `history`: the store's history as audit lines.
template <class Store>
int show_history(const Store& store) {
  store.export_history(std::cout);
  std::cout << std::flush;
  return std::cout ? exit_completed : exit_error;
}

// `release` on PostgreSQL: removes the registrations whose lease ran out
// (their jobs are free at once); live runners are left alone.
int release_expired(jobpoll::postgres_store& store, const settings& s) {
  const auto released = store.release_expired();
  if (released.empty()) {
    std::cout << batch_named(s) << " has no runner whose lease ran out" << std::endl;
    return exit_completed;
  }
  for (const auto& r : released)
    std::cout << "released runner " << r.id << " (pid " << r.pid << " on host " << r.host << ", lease ran out at "
              << utc(r.lease_until) << ", " << r.held << (r.held == 1 ? " job" : " jobs") << " held) from "
              << batch_named(s) << std::endl;
  return exit_completed;
}

// `release`: clears an owner that is not a live process on this host.
int release_owner(jobpoll::sqlite_store& store, const settings& s) {
  const auto owner = store.owner();
  if (!owner) {
    std::cout << batch_named(s) << " has no owner" << std::endl;
    return exit_completed;
  }
  const bool alive = owner->pid > 0 && (::kill(static_cast<pid_t>(owner->pid), 0) == 0 || errno == EPERM);
  if (owner->host == this_host() && alive)
    throw std::runtime_error(batch_named(s) + " is owned by pid " + std::to_string(owner->pid) +
                             " on this host, which is running: stop it first (release is for a runner that died on "
                             "another host)");
  store.release_owner();
  std::cout << "released " << batch_named(s) << " from pid " << owner->pid << " on host " << owner->host
            << " (owner since " << utc(owner->since) << ")" << std::endl;
  return exit_completed;
}

// The ids once each, in the order given.
std::vector<std::size_t> unique_ids(const std::vector<std::size_t>& ids) {
  std::vector<std::size_t> out;
  std::set<std::size_t> seen;
  for (const std::size_t id : ids)
    if (seen.insert(id).second) out.push_back(id);
  return out;
}

// `resubmit`, `skip`, `adopt`: a runner owns the batch for the change (refused
// while another does, before anything is read). Every job is checked before
// any is changed.
template <class Store>
int act(Store& store, const std::string& action, const settings& s) {
  // The runner needs a client, which sends nothing here. (On PostgreSQL it
  // registers beside the live runners, and a job one of them holds is
  // refused: errc::lease_lost.)
  asio::io_context ctx;
  jobpoll::curl_transport transport(ctx.get_executor());
  demo_client client(transport, demo_job_api(s.server, s.steps, s.key_mode()), demo_status());
  demo_batch<Store> batch(ctx.get_executor(), client, store, jobpoll::batch_options{});

  const std::vector<std::size_t> ids = action == "adopt" ? std::vector<std::size_t>{s.adopt_id} : unique_ids(s.ids);
  std::vector<jobpoll::batch_job> jobs;
  for (const std::size_t id : ids) {
    std::optional<jobpoll::batch_job> job = store.job(id);
    if (!job) throw std::runtime_error(batch_named(s) + " has no job " + std::to_string(id));
    const std::string what = "job " + std::to_string(id) + " (entry " + std::to_string(job->entry) + ") is " +
                             std::string(jobpoll::to_string(job->state));
    if (action != "skip" && job->skipped)
      throw std::runtime_error(what + " and skipped (" + job->skip_reason + "): it cannot be " +
                               (action == "resubmit" ? "resubmitted" : "adopted"));
    if (action == "resubmit" && job->state != batch_job_state::failed && job->state != batch_job_state::cancelled &&
        job->state != batch_job_state::unknown)
      throw std::runtime_error(what + ": only a failed, cancelled or unknown job can be resubmitted");
    if (action == "adopt" && job->state != batch_job_state::unknown && job->state != batch_job_state::submitting)
      throw std::runtime_error(what + ": only an unknown job (or one left submitting) can be adopted");
    jobs.push_back(std::move(*job));
  }

  for (const jobpoll::batch_job& job : jobs) {
    const std::string named = "job " + std::to_string(job.id) + " (entry " + std::to_string(job.entry) + ")";
    if (action == "resubmit") {
      const std::size_t child = batch.resubmit(job.id, {job.params, {}});
      std::cout << "resubmitted " << named << " as job " << child << std::endl;
    } else if (action == "skip") {
      if (job.skipped) {
        std::cout << named << " was skipped already (" << job.skip_reason << ")" << std::endl;
        continue;
      }
      batch.skip(job.id, s.reason.empty() ? "skipped with batch_run skip" : s.reason);
      std::cout << "skipped " << named << std::endl;
    } else {
      batch.adopt(job.id, s.handle);
      std::cout << "adopted " << quoted(s.handle) << " as " << named << ": the next run polls it" << std::endl;
    }
  }
  return exit_completed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Runs N jobs on the demo job server as one batch kept in a SQLite store (or a PostgreSQL database "
               "several runners share): resumable after a stop or a crash, each job submitted once, reconciled, "
               "audited.",
               "batch_run"};
  settings s;
  define_options(app, s);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "batch_run: " << e.what() << "\nRun with --help for more information." << std::endl;
    return exit_usage;
  }
  const std::vector<CLI::App*> chosen = app.get_subcommands();
  const std::string command = chosen.empty() ? std::string() : chosen.front()->get_name();
  if (command.empty() && s.server.empty()) {
    std::cerr << "batch_run: --server is required\nRun with --help for more information." << std::endl;
    return exit_usage;
  }
  if (!s.rate_redis_url.empty()) {
    try {
      s.rate_redis = jobpoll::parse_redis_limit_url(s.rate_redis_url);
    } catch (const std::invalid_argument& e) {
      std::cerr << "batch_run: --rate-redis: " << e.what() << "\nRun with --help for more information." << std::endl;
      return exit_usage;
    }
  }
  try {
    if (command.empty())
      return s.on_postgres() ? run_batch<jobpoll::postgres_store>(s) : run_batch<jobpoll::sqlite_store>(s);
    return with_existing_store(s, [&](auto& store) {
      using store_type = std::remove_cvref_t<decltype(store)>;
      if (command == "status") return show_status(store, s);
      if (command == "results") return show_results(store);
      if (command == "history") return show_history(store);
      if (command == "release") {
        if constexpr (is_postgres<store_type>) return release_expired(store, s);
        else return release_owner(store, s);
      }
      return act(store, command, s);
    });
  } catch (const std::exception& e) {
    std::cerr << "batch_run: " << e.what() << std::endl;
    return exit_error;
  }
}
