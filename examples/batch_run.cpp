// batch_run: runs N jobs on the demo job server's /v1 job API as one batch,
// at most C at a time (and at most --rate requests in any --rate-window),
// and prints how the batch ended as one line of JSON: jobpoll::to_json of
// its report, the seed's reconciliation plus how and why the run ended.
//
//   POST   /v1/jobs          {"tool": "batch", "params": {"n": k}, "steps": S, "outcome": ...}
//   GET    /v1/jobs/{job_id} -> pending | running | completed (with result) | failed
//   DELETE /v1/jobs/{job_id} -> cancels it (with --cancel-on-stop)
//
// Everything the batch knows lives in --state-dir:
//   checkpoint.json  every job's state and handle; a run that finds it resumes
//                    from it: completed jobs are kept, jobs that were running
//                    are polled again by their handle (never submitted twice),
//                    pending ones are submitted, and jobs cancelled by a stop
//                    are submitted again (new jobs naming them as parent)
//   audit.ndjson     one line per state change of any job
//   results.ndjson   one line per completed job:
//                    {"entry": k, "job": 7, "handle": "job-7", "result": {...}}
//
// A failed job is submitted again (--resubmits times) as a new job naming its
// parent; --fail-every K makes every K-th entry fail on the server, to show it.
//
// Ctrl-C (or SIGTERM) stops submitting; jobs in flight get --grace to finish,
// then are left running on the server (or cancelled, with --cancel-on-stop)
// and the checkpoint is written. A second signal stops at once. Run the same
// command again to resume.
//
// The options are CLI11's, their values read with the jobpoll tool's grammar
// (tools/cli_values.hpp): counts, and durations ("500ms", "1.5s", "2m", or 0).
//
// Usage: batch_run --server http://127.0.0.1:PORT [--jobs 100] [--rate 20 --rate-window 15s] ...
//        batch_run --help lists every option and the exit codes.

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <sys/ioctl.h>
#include <unistd.h>

#include <asio/any_io_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/interval.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/job_description.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/transport/curl.hpp>

#include "cli_values.hpp"

namespace {

using namespace std::chrono_literals;
using json_status = jobpoll::field_status<jobpoll::json_codec>;
using demo_client = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, json_status>;
using demo_batch = jobpoll::batch_runner<demo_client>;

// The exit codes, as --help lists them.
constexpr int exit_completed = 0;
constexpr int exit_failed = 1;
constexpr int exit_unfinished = 2;
constexpr int exit_error = 3;
constexpr int exit_usage = 64;

constexpr std::string_view footer_text = R"(Durations: a number and a unit (500ms, 2s, 1.5s, 2m, 1h), or 0; at most 1000h.

Exit codes:
  0   the batch is COMPLETED: every entry has a completed job
  1   the batch is FAILED: a job failed (after its resubmissions)
  2   the batch is not finished: it was stopped with jobs left to run, or
      cancelled (--cancel-on-stop); the same command again resumes it
  3   error: a corrupt checkpoint or one of another batch (left untouched),
      a state file that cannot be written
  64  usage error: an unknown option or a bad value

Example (the demo job server: python3 tests/server/job_server.py --port 8080):
  batch_run --server http://127.0.0.1:8080 --jobs 100 --fail-every 10 --rate 20 --rate-window 15s
  # Ctrl-C, then the same command again: it resumes from ./batch-state)";

// --- the command line ------------------------------------------------------------

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
  std::chrono::nanoseconds job_timeout{};
  std::size_t resubmits = 0;
  std::size_t fail_every = 0;
  std::chrono::nanoseconds grace{};
  bool cancel_on_stop = false;
  std::filesystem::path state_dir = "./batch-state";
  std::string name = "batch_run";
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

// --state-dir, --name: CLI11 takes '' as a value.
CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& text) {
        return text.empty() ? std::string("expected a non-empty value, got ''") : std::string();
      },
      "");
}

void define_options(CLI::App& app, settings& s) {
  using cli_values::add_count;
  using cli_values::add_duration;
  app.footer(std::string(footer_text));
  app.get_formatter()->column_width(36);
  app.add_option("--server", s.server, "base URL of the job server, e.g. http://127.0.0.1:8080")
      ->type_name("URL")
      ->transform(base_url())
      ->required();
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
  app.add_option("--state-dir", s.state_dir, "where checkpoint.json, audit.ndjson and results.ndjson are kept")
      ->type_name("DIR")
      ->check(non_empty())
      ->capture_default_str();
  app.add_option("--name", s.name, "the batch's name: a checkpoint of another name is refused")
      ->type_name("NAME")
      ->check(non_empty())
      ->capture_default_str();
}

// --- the job API and the batch ---------------------------------------------------

// The demo server's job API as data. The body's {n} and {outcome} come from
// each entry's parameters (inserted as is: the body is not a URL).
jobpoll::job_description demo_job_api(const std::string& server, std::size_t steps) {
  jobpoll::job_description d;
  d.submit = {"POST", server + "/v1/jobs",
              R"({"tool": "batch", "params": {"n": {n}}, "steps": )" + std::to_string(steps) +
                  R"(, "outcome": "{outcome}"})"};
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
// server, and so does its resubmission (same parameters, same outcome).
std::vector<jobpoll::batch_entry> make_entries(const settings& s) {
  std::vector<jobpoll::batch_entry> entries;
  entries.reserve(s.jobs);
  for (std::size_t k = 0; k < s.jobs; ++k) {
    const bool fails = s.fail_every > 0 && (k + 1) % s.fail_every == 0;
    entries.emplace_back(jobpoll::job_params{{"n", std::to_string(k)}, {"outcome", fails ? "failed" : "completed"}});
  }
  return entries;
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
    timer_.async_wait([this](std::error_code ec) {
      if (ec) return;  // cancelled by `finish`
      if (terminal_ || changed_) draw();
      tick();
    });
  }

  void draw() {
    using jobpoll::batch_job_state;
    changed_ = false;
    const auto& c = counts_;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char line[256];
    std::snprintf(line, sizeof line, "[%6.1fs] %zu completed, %zu failed, %zu running, %zu pending, %zu skipped, %zu cancelled",
                  elapsed, c[batch_job_state::completed], c[batch_job_state::failed], c.in_flight(),
                  c[batch_job_state::pending], c.skipped, c[batch_job_state::cancelled]);
    if (!terminal_) {
      std::fprintf(stderr, "%s\n", line);
      return;
    }
    // Skipped records (resubmitted parents) are neither work left nor done.
    const std::size_t total = c.total() - c.skipped;
    const std::size_t ended = c[batch_job_state::completed] + c[batch_job_state::failed] + c[batch_job_state::cancelled];
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

int exit_code_of(const jobpoll::batch_report& report) {
  const auto& c = report.summary.counts;
  // Jobs left for a resume come first: the batch is not over, whatever failed so far.
  if (c[jobpoll::batch_job_state::pending] + c[jobpoll::batch_job_state::running] > 0) return exit_unfinished;
  switch (report.summary.status) {
    case jobpoll::batch_status::completed: return exit_completed;
    case jobpoll::batch_status::failed: return exit_failed;
    default: return exit_unfinished;
  }
}

// The first signal stops submitting and lets jobs in flight finish within the
// grace period; a second one abandons them at once. Re-arms itself until the
// batch ends and cancels the set.
struct on_signal {
  asio::signal_set* signals;
  demo_batch* batch;
  progress_display* progress;
  std::string after_grace;  // what happens to jobs still in flight then
  bool stopping = false;

  void operator()(const std::error_code& ec, int number) {
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

// Appends one completed job's result to results.ndjson, flushed at once: a
// crash loses no line the checkpoint calls completed (it may repeat a line
// whose job the checkpoint had not recorded yet; a stop never does).
void append_result(std::ofstream& out, const std::filesystem::path& path, const jobpoll::batch_job& job,
                   const nlohmann::json& result) {
  const nlohmann::ordered_json line = {
      {"entry", job.entry}, {"job", job.id}, {"handle", job.handle->id}, {"result", nlohmann::ordered_json(result)}};
  out << line.dump() << '\n';
  out.flush();
  if (!out) throw std::runtime_error("cannot append to " + path.string());
}

// Runs the batch to its end; returns the exit code. Throws for the errors of exit code 3.
int run_batch(const settings& s) {
  namespace fs = std::filesystem;
  fs::create_directories(s.state_dir);
  const fs::path checkpoint = s.state_dir / "checkpoint.json";
  const fs::path results_path = s.state_dir / "results.ndjson";
  const bool resuming = fs::exists(checkpoint);

  asio::io_context ctx;  // one thread runs the whole batch
  jobpoll::curl_transport transport(ctx.get_executor());
  demo_client client(transport, demo_job_api(s.server, s.steps), demo_status());
  std::optional<jobpoll::sliding_window_limiter> limiter;
  progress_display progress(ctx.get_executor(), ::isatty(STDERR_FILENO) == 1);

  jobpoll::batch_options options;
  options.name = s.name;
  options.max_in_flight = s.concurrency;
  options.job.interval = jobpoll::fixed_interval{s.interval};
  options.job.deadline = s.job_timeout;
  if (s.rate) {
    // One limiter for every request of the batch: submits, polls and cancels.
    limiter.emplace(ctx.get_executor(), *s.rate, s.rate_window);
    options.job.limiter = *limiter;
  }
  options.max_resubmits = s.resubmits;
  options.grace_period = s.grace;
  options.when_stopped = s.cancel_on_stop ? jobpoll::on_cancel::cancel_job : jobpoll::on_cancel::keep_job;
  options.checkpoint = checkpoint;
  options.audit_log = s.state_dir / "audit.ndjson";
  options.on_progress = [&progress](const jobpoll::batch_counts& counts, const jobpoll::batch_job&) {
    progress.update(counts);
  };

  std::ofstream results;
  // Resumes from the checkpoint when there is one; refuses (throws) a corrupt
  // one or one of another batch, before anything is sent or written.
  demo_batch batch(ctx.get_executor(), client, make_entries(s), std::move(options),
                   [&](const jobpoll::batch_job& job, jobpoll::job_result<nlohmann::json>& r) {
                     append_result(results, results_path, job, r.value);
                   });
  // From here on a signal stops the batch through the runner (before `run`,
  // `run` then returns at once), so that the checkpoint is always written.
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  signals.async_wait(on_signal{&signals, &batch, &progress,
                               s.cancel_on_stop ? "cancelled on the server" : "left running for a resume"});
  results.open(results_path, std::ios::app);
  if (!results) throw std::runtime_error("cannot open " + results_path.string() + " for appending");
  if (resuming) {
    const jobpoll::batch_counts c = batch.counts();
    std::cerr << "resuming: " << c[jobpoll::batch_job_state::completed] << " completed, "
              << c[jobpoll::batch_job_state::running] << " running, " << c[jobpoll::batch_job_state::pending]
              << " pending";
    // Jobs cancelled by a stop (--cancel-on-stop) run again, each as a new job
    // naming the cancelled one as its parent: otherwise the batch could never complete.
    std::vector<std::size_t> cancelled;
    for (const jobpoll::batch_job& job : batch.jobs())
      if (!job.skipped && job.state == jobpoll::batch_job_state::cancelled) cancelled.push_back(job.id);
    for (const std::size_t id : cancelled) batch.resubmit(id, {batch.jobs()[id - 1].params, {}});
    if (!cancelled.empty()) std::cerr << ", " << cancelled.size() << " cancelled at the stop (submitted again)";
    std::cerr << std::endl;
  }

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
  std::cout << jobpoll::to_json(*report).dump() << std::endl;
  return exit_code_of(*report);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Runs N jobs on the demo job server as one batch: resumable, reconciled, audited.", "batch_run"};
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
  try {
    return run_batch(s);
  } catch (const std::exception& e) {
    std::cerr << "batch_run: " << e.what() << std::endl;
    return exit_error;
  }
}
