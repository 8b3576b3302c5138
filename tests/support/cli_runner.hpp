#pragma once
// The `jobpoll` command-line tool run as a child process against the
// loopback job server, and what the tests read back: the requests the
// server logged ("METHOD /path?query"), their arrival times, the presets
// shipped in examples/presets, and a text result as the tool prints it.

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "loopback_server.hpp"

#ifndef JOBPOLL_TEST_CLI
#error "cli_runner.hpp needs JOBPOLL_TEST_CLI, the path of the built jobpoll tool (tests/CMakeLists.txt sets it)"
#endif

namespace jobpoll_test {

/// The tool's command line: its path, then `args`.
inline std::vector<std::string> cli_command(std::vector<std::string> args) {
  args.insert(args.begin(), JOBPOLL_TEST_CLI);
  return args;
}

/// Runs the tool with `args` to its end.
inline child_result run_cli(std::vector<std::string> args) { return run_child(cli_command(std::move(args))); }

/// `args` followed by `more`.
inline std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

/// "METHOD /path?query" of every request in the server's `log`, in arrival order.
inline std::vector<std::string> request_lines(const nlohmann::json& log) {
  std::vector<std::string> lines;
  for (const auto& entry : log) {
    std::string line = entry.at("method").get<std::string>() + " " + entry.at("path").get<std::string>();
    if (const auto& query = entry.at("query").get_ref<const std::string&>(); !query.empty()) line += "?" + query;
    lines.push_back(std::move(line));
  }
  return lines;
}

/// How many of `lines` are `line`.
inline long count_of(const std::vector<std::string>& lines, const std::string& line) {
  return static_cast<long>(std::count(lines.begin(), lines.end(), line));
}

/// The server-side arrival time (seconds, the server's monotonic clock) of
/// the first request of `log` that is "METHOD /path" (`line`); throws
/// std::runtime_error when there is none.
inline double arrival_of(const nlohmann::json& log, const std::string& line) {
  for (const auto& entry : log)
    if (entry.at("method").get<std::string>() + " " + entry.at("path").get<std::string>() == line)
      return entry.at("arrived").get<double>();
  throw std::runtime_error("the server logged no " + line + "; its log: " + log.dump());
}

/// The directory of the job-description presets, examples/presets of the
/// source tree (found from the server script's path, tests/server/job_server.py).
inline std::filesystem::path presets_dir() {
  return std::filesystem::path(JOBPOLL_TEST_SERVER).parent_path().parent_path().parent_path() / "examples" /
         "presets";
}

/// A text result as the tool printed it on stdout: the string itself when
/// stdout is one line of JSON holding a string, else stdout as it is.
inline std::string text_result(const std::string& out) {
  try {
    const auto value = nlohmann::json::parse(out);
    if (value.is_string()) return value.get<std::string>();
  } catch (const nlohmann::json::exception&) {
    // not one JSON text: printed as is
  }
  return out;
}

/// Waits until the server has logged at least `polls` requests that are
/// `poll_line` ("GET /path") and the tool has printed "poll <polls>:" on
/// stderr (so the signal that follows lands while it is polling), then
/// sends `signal` and runs the tool to its end.
inline child_result signal_after_polls(child_process& cli, const jobpoll::test::loopback_server& server,
                                       const std::string& poll_line, int signal, long polls = 1) {
  const std::string printed = "poll " + std::to_string(polls) + ":";
  cli.wait_until(
      [&] {
        return count_of(request_lines(server.log()), poll_line) >= polls &&
               cli.err().find(printed) != std::string::npos;
      },
      "poll " + std::to_string(polls) + " (" + poll_line + ")");
  cli.send(signal);
  return cli.finish();
}

}  // namespace jobpoll_test
