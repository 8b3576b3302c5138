// What reading an answer safely costs: json_codec's decode (a depth pre-scan,
// then nlohmann's parse) against nlohmann::json::parse alone, on a typical
// poll answer and on a 1 MB result page; field_status's classification on
// top; and the bounded preview of a large document against dumping it whole
// (what messages did before: a full re-serialisation, unbounded in time and,
// for deep documents, in stack).

#include <string>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>

namespace {

using json = nlohmann::json;

std::string poll_answer() {
  return json{{"job_id", "job-1"}, {"status", "running"}, {"progress", 0.5}, {"eta_seconds", 2}}.dump();
}

// About 1 MB: a page of 10,000 transactions.
std::string result_page() {
  json items = json::array();
  for (int i = 0; i < 10'000; ++i)
    items.push_back({{"id", "tx-" + std::to_string(i)}, {"number", i}, {"type", "Sale"}, {"total", 10.5 + i}});
  return json{{"data", {{"status", "pass"}, {"data", items}, {"total", 10'000}}}}.dump();
}

void parse_baseline(benchmark::State& state, const std::string& body) {
  for (auto _ : state) benchmark::DoNotOptimize(json::parse(body));
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}

void decode(benchmark::State& state, const std::string& body) {
  const jobpoll::json_codec codec;
  for (auto _ : state) benchmark::DoNotOptimize(codec.decode(body));
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}

void decode_and_classify(benchmark::State& state, const std::string& body) {
  const jobpoll::json_codec codec;
  const jobpoll::field_status<jobpoll::json_codec> status(
      "/status", {.succeeded = {"completed"}, .failed = {"failed"}, .pending = {"pending", "running"}});
  for (auto _ : state) benchmark::DoNotOptimize(status(codec.decode(body)));
  state.SetItemsProcessed(state.iterations());
}

void preview_baseline(benchmark::State& state) {
  const json page = json::parse(result_page());
  for (auto _ : state) benchmark::DoNotOptimize(jobpoll::body_preview(page.dump()));
  state.SetItemsProcessed(state.iterations());
}

void preview_bounded(benchmark::State& state) {
  const json page = json::parse(result_page());
  const jobpoll::json_codec codec;
  for (auto _ : state) benchmark::DoNotOptimize(codec.preview(page, 200));
  state.SetItemsProcessed(state.iterations());
}

const std::string small = poll_answer();
const std::string large = result_page();

}  // namespace

BENCHMARK_CAPTURE(parse_baseline, small, small)->Name("decode_poll_answer/baseline");
BENCHMARK_CAPTURE(decode, small, small)->Name("decode_poll_answer/json_codec");
BENCHMARK_CAPTURE(decode_and_classify, small, small)->Name("decode_poll_answer/json_codec+field_status");
BENCHMARK_CAPTURE(parse_baseline, large, large)->Name("decode_1mb_page/baseline");
BENCHMARK_CAPTURE(decode, large, large)->Name("decode_1mb_page/json_codec");
BENCHMARK(preview_baseline)->Name("preview_1mb_document/baseline");
BENCHMARK(preview_bounded)->Name("preview_1mb_document/bounded");
