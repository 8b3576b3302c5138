// The loopback job server and its fixture, checked over real HTTP: every
// later integration test takes their behaviour as ground truth.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "loopback_server.hpp"

namespace {

using jobpoll::http_response;
using jobpoll::test::curl_failure;
using jobpoll::test::loopback_server;
using nlohmann::json;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

json body_of(const http_response& r) { return json::parse(r.body); }

/// GET `url` with a plain libcurl handle (no fixture involved): CURLE_OK or
/// why no response came.
CURLcode fetch(const std::string& url) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  std::string sink;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &jobpoll::test::detail::append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &sink);
  return curl_easy_perform(curl.get());
}

std::string header(const http_response& r, std::string_view name) {
  auto value = r.headers.find(name);
  return value ? std::string(*value) : "<none>";
}

class LoopbackServerTest : public ::testing::Test {
 protected:
  http_response get(std::string_view path) const { return server.request("GET", path); }

  /// POST /v1/jobs with `spec`; the new job's id.
  std::string submit(const json& spec) const {
    http_response r = server.request("POST", "/v1/jobs", spec.dump());
    EXPECT_EQ(r.status, 202) << jobpoll::describe(r);
    return body_of(r).at("job_id").get<std::string>();
  }

  /// POST /transaction/load-job; the job's hash.
  std::string load_job() const {
    http_response r = server.request("POST", "/transaction/load-job?startDate=1591040159&endDate=1591126559&site=MAIN");
    EXPECT_EQ(r.status, 200) << jobpoll::describe(r);
    return body_of(r).at("data").at("hash").get<std::string>();
  }

  /// What a failed request's libcurl code was (CURLE_OK if it got a response).
  CURLcode failure_of(std::string_view path) const {
    try {
      http_response r = get(path);
      ADD_FAILURE() << "expected no response, got " << jobpoll::describe(r);
      return CURLE_OK;
    } catch (const curl_failure& e) {
      return e.code();
    }
  }

  /// Returns once the server has logged `count` non-control requests (a
  /// request being served concurrently has arrived); 30 s failure guard.
  void await_logged(std::size_t count) const {
    const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (server.log().size() < count)
      ASSERT_LT(std::chrono::steady_clock::now(), guard) << "the server never logged request " << count;
  }

  /// Transactions [from, to) as get-job-data lists them.
  static json transactions(int from, int to) {
    json items = json::array();
    for (int i = from; i < to; ++i)
      items.push_back({{"id", "tx-" + std::to_string(i)}, {"number", i}, {"type", "Sale"}, {"total", 10.5 + i}});
    return items;
  }

  /// A get-job-data answer.
  static json job_data(const std::string& hash, const char* status, json items, int offset, int limit, int total) {
    return {{"data",
             {{"hash", hash}, {"status", status}, {"data", std::move(items)}, {"offset", offset}, {"limit", limit},
              {"total", total}}}};
  }

  /// One entry of /_control/jobs; a v1 job's also names its Idempotency-Key,
  /// client_ref and params (null: none).
  static json job_entry(const std::string& id, const char* kind, int polls, bool cancelled, const char* status,
                        const json& params = nullptr, const json& idempotency_key = nullptr,
                        const json& client_ref = nullptr) {
    json entry = {{"id", id},       {"kind", kind},           {"submits", 1},
                  {"polls", polls}, {"cancelled", cancelled}, {"status", status}};
    if (std::string_view(kind) == "v1")
      entry.update({{"idempotency_key", idempotency_key}, {"client_ref", client_ref}, {"params", params}});
    return entry;
  }

  /// POST /v1/jobs with `spec` and the header Idempotency-Key: `key`.
  http_response submit_with_key(const json& spec, const std::string& key) const {
    return server.request("POST", "/v1/jobs", spec.dump(), {{"Idempotency-Key", key}});
  }

  /// Every POST /v1/jobs so far, as the server recorded it.
  json submissions() const { return server.control("GET", "/_control/submissions"); }

  /// One entry of /_control/submissions.
  static json submission(const json& key, const json& client_ref, const json& params, const json& job_id,
                         bool replayed, const json& status) {
    return {{"key", key},           {"client_ref", client_ref}, {"params", params}, {"job_id", job_id},
            {"replayed", replayed}, {"status", status},         {"scripted", false}};
  }

  loopback_server server;
};

// --- the fixture --------------------------------------------------------------

TEST_F(LoopbackServerTest, UrlsNameTheLoopbackPort) {
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(server.base_url(), "http://127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(server.url("/v1/jobs?x=1"), server.base_url() + "/v1/jobs?x=1");
}

TEST(LoopbackServerFixture, DestructorLeavesNoProcessBehind) {
  pid_t pid = -1;
  {
    loopback_server server;
    pid = server.pid();
    ASSERT_GT(pid, 0);
    EXPECT_EQ(::kill(pid, 0), 0);
  }
  errno = 0;
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(LoopbackServerFixture, AServerThatCannotStartThrowsWithTheCommandAndItsExit) {
  try {
    loopback_server server({"--quota", "bogus"});
    FAIL() << "started with --quota bogus on port " << server.port();
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(JOBPOLL_TEST_SERVER " --port 0 --quota bogus"));
    EXPECT_THAT(e.what(), HasSubstr("exited before printing \"PORT <n>\", exit status 2"));
  }
}

TEST_F(LoopbackServerTest, ControlThrowsWithStatusAndBodyOnANon2xxAnswer) {
  try {
    server.configure({{"outcome", "maybe"}});
    FAIL() << "an invalid outcome was accepted";
  } catch (const std::runtime_error& e) {
    // The body is previewed with its backslashes doubled.
    EXPECT_STREQ(e.what(), R"(POST /_control/config answered HTTP 400, body: )"
                           R"({"error": "\\"outcome\\" must be \\"pass\\" or \\"fail\\", got \\"maybe\\""})");
  }
}

TEST_F(LoopbackServerTest, ConnectionsAreKeptAliveAndEveryAnswerHasAContentLength) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  const std::string target = server.url("/v1/jobs/job-1");
  const std::string unknown = R"({"error": "unknown job job-1"})";
  std::string sink;
  curl_easy_setopt(curl.get(), CURLOPT_URL, target.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &jobpoll::test::detail::append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &sink);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(curl_easy_perform(curl.get()), CURLE_OK);
    long connects = -1;
    curl_off_t length = -1;
    curl_easy_getinfo(curl.get(), CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(curl.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    EXPECT_EQ(connects, i == 0 ? 1 : 0) << "request " << i;
    EXPECT_EQ(length, static_cast<curl_off_t>(unknown.size())) << "request " << i;
  }
  EXPECT_EQ(sink, unknown + unknown);
}

// --- the job API --------------------------------------------------------------

TEST_F(LoopbackServerTest, SubmitAnswers202PendingWithLocationAndIdsInOrder) {
  http_response r = server.request("POST", "/v1/jobs", R"({"tool": "render"})");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(body_of(r), json({{"job_id", "job-1"}, {"status", "pending"}}));
  EXPECT_EQ(header(r, "Location"), "/v1/jobs/job-1");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(submit(json::object()), "job-2");
  EXPECT_EQ(server.jobs()["v1_jobs"], 2);
}

TEST_F(LoopbackServerTest, AJobReportsItsStepsThenCompletesWithItsResult) {
  const std::string id = submit({{"tool", "render"}, {"params", {{"page", 3}}}, {"steps", 3}, {"eta_seconds", 12.5}});
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)),
            json({{"job_id", id}, {"status", "pending"}, {"progress", 0.25}, {"eta_seconds", 12.5}}));
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)),
            json({{"job_id", id}, {"status", "running"}, {"progress", 0.5}, {"eta_seconds", 12.5}}));
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)),
            json({{"job_id", id}, {"status", "running"}, {"progress", 0.75}, {"eta_seconds", 12.5}}));
  const json done = {{"job_id", id},
                     {"status", "completed"},
                     {"progress", 1.0},
                     {"result", {{"tool", "render"}, {"params", {{"page", 3}}}}}};
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), done);
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), done);  // terminal answers repeat
  EXPECT_EQ(server.jobs()["jobs"][0], job_entry(id, "v1", 5, false, "completed", {{"page", 3}}));
}

TEST_F(LoopbackServerTest, AJobTakesTwoStepsByDefaultAndReturnsAGivenResult) {
  const std::string id = submit({{"result", {1, 2}}});
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), json({{"job_id", id}, {"status", "pending"}, {"progress", 0.333}}));
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), json({{"job_id", id}, {"status", "running"}, {"progress", 0.667}}));
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)),
            json({{"job_id", id}, {"status", "completed"}, {"progress", 1.0}, {"result", {1, 2}}}));
}

TEST_F(LoopbackServerTest, AFailedJobReportsItsError) {
  const std::string id = submit({{"steps", 1}, {"outcome", "failed"}, {"error", "disk full"}});
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), json({{"job_id", id}, {"status", "pending"}, {"progress", 0.5}}));
  const json failed = {{"job_id", id}, {"status", "failed"}, {"error", "disk full"}, {"progress", 0.5}};
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), failed);
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), failed);

  const std::string at_once = submit({{"steps", 0}, {"outcome", "failed"}});
  EXPECT_EQ(body_of(get("/v1/jobs/" + at_once)),
            json({{"job_id", at_once}, {"status", "failed"}, {"error", "job failed"}, {"progress", 0.0}}));
}

TEST_F(LoopbackServerTest, DeleteCancelsAJob) {
  const std::string id = submit(json::object());
  EXPECT_EQ(body_of(get("/v1/jobs/" + id))["status"], "pending");
  http_response r = server.request("DELETE", "/v1/jobs/" + id);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r), json({{"job_id", id}, {"status", "cancelled"}}));
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), json({{"job_id", id}, {"status", "cancelled"}}));
  EXPECT_EQ(server.jobs()["jobs"][0], job_entry(id, "v1", 2, true, "cancelled"));
}

TEST_F(LoopbackServerTest, AnUnknownJobIs404) {
  for (const char* method : {"GET", "DELETE"}) {
    http_response r = server.request(method, "/v1/jobs/job-9");
    EXPECT_EQ(r.status, 404) << method;
    EXPECT_EQ(body_of(r), json({{"error", "unknown job job-9"}})) << method;
  }
  http_response r = get("/v1/jobs/job-9/result");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(body_of(r), json({{"error", "unknown job job-9"}}));
}

TEST_F(LoopbackServerTest, ThePagedResultIs409UntilCompletedThenPages) {
  const std::string id = submit({{"steps", 1}, {"items", 25}});
  const std::string result = "/v1/jobs/" + id + "/result";
  http_response early = get(result);
  EXPECT_EQ(early.status, 409);
  EXPECT_EQ(body_of(early), json({{"error", "job not completed"}}));
  EXPECT_EQ(body_of(get("/v1/jobs/" + id))["status"], "pending");
  EXPECT_EQ(get(result).status, 409);
  EXPECT_EQ(body_of(get("/v1/jobs/" + id))["status"], "completed");

  auto items = [](int from, int to) {
    json out = json::array();
    for (int n = from; n < to; ++n) out.push_back({{"n", n}});
    return out;
  };
  http_response first = get(result);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(body_of(first), json({{"items", items(0, 10)}, {"offset", 0}, {"limit", 10}, {"total", 25}}));
  EXPECT_EQ(body_of(get(result + "?offset=20&limit=10")),
            json({{"items", items(20, 25)}, {"offset", 20}, {"limit", 10}, {"total", 25}}));
  EXPECT_EQ(body_of(get(result + "?offset=30&limit=5")),
            json({{"items", json::array()}, {"offset", 30}, {"limit", 5}, {"total", 25}}));
  http_response bad = get(result + "?limit=-1");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(body_of(bad), json({{"error", "limit must be a non-negative integer, got '-1'"}}));
}

TEST_F(LoopbackServerTest, AMalformedJobIs400AndCreatesNothing) {
  http_response r = server.request("POST", "/v1/jobs", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(body_of(r)["error"].get<std::string>(), HasSubstr("malformed JSON body"));
  EXPECT_THAT(body_of(r)["error"].get<std::string>(), HasSubstr("{not json"));
  r = server.request("POST", "/v1/jobs", R"({"steps": "x"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r), json({{"error", R"("steps" must be an integer >= 0, got "x")"}}));
  EXPECT_EQ(server.jobs(), json({{"jobs", json::array()}, {"load_jobs", 0}, {"v1_jobs", 0}}));
}

// --- exactly-once submission: Idempotency-Key, client_ref ------------------------

TEST_F(LoopbackServerTest, ASecondPostWithTheSameIdempotencyKeyReplaysTheJobAndCreatesNothing) {
  const json spec = {{"params", {{"n", 1}}}, {"client_ref", "entry-1"}};
  http_response first = submit_with_key(spec, "batch-1-entry-1");
  EXPECT_EQ(first.status, 202) << jobpoll::describe(first);
  EXPECT_EQ(body_of(first), json({{"job_id", "job-1"}, {"status", "pending"}}));
  EXPECT_EQ(header(first, "Idempotent-Replayed"), "<none>");
  EXPECT_EQ(body_of(get("/v1/jobs/job-1"))["status"], "pending");
  EXPECT_EQ(body_of(get("/v1/jobs/job-1"))["status"], "running");

  // The same job, with its current status, and no poll consumed.
  http_response again = submit_with_key(spec, "batch-1-entry-1");
  EXPECT_EQ(again.status, 202) << jobpoll::describe(again);
  EXPECT_EQ(body_of(again), json({{"job_id", "job-1"}, {"status", "running"}}));
  EXPECT_EQ(header(again, "Location"), "/v1/jobs/job-1");
  EXPECT_EQ(header(again, "Idempotent-Replayed"), "true");
  // Another key (a resubmission of the entry) is another job.
  EXPECT_EQ(body_of(submit_with_key(spec, "batch-1-entry-1-retry"))["job_id"], "job-2");

  const json jobs = server.jobs();
  EXPECT_EQ(jobs["v1_jobs"], 2);
  EXPECT_EQ(jobs["jobs"][0], job_entry("job-1", "v1", 2, false, "running", {{"n", 1}}, "batch-1-entry-1", "entry-1"));
  EXPECT_EQ(jobs["jobs"][1],
            job_entry("job-2", "v1", 0, false, "pending", {{"n", 1}}, "batch-1-entry-1-retry", "entry-1"));
  EXPECT_EQ(submissions(), json::array({submission("batch-1-entry-1", "entry-1", {{"n", 1}}, "job-1", false, 202),
                                        submission("batch-1-entry-1", "entry-1", {{"n", 1}}, "job-1", true, 202),
                                        submission("batch-1-entry-1-retry", "entry-1", {{"n", 1}}, "job-2", false,
                                                   202)}));

  // Reset forgets the keys and the submissions.
  server.reset();
  EXPECT_EQ(submissions(), json::array());
  http_response fresh = submit_with_key(spec, "batch-1-entry-1");
  EXPECT_EQ(body_of(fresh), json({{"job_id", "job-1"}, {"status", "pending"}}));
  EXPECT_EQ(header(fresh, "Idempotent-Replayed"), "<none>");
}

TEST_F(LoopbackServerTest, WithIdempotencyOffEveryPostCreatesAJob) {
  EXPECT_EQ(server.configure({{"idempotency", false}}).at("idempotency"), false);
  for (const char* id : {"job-1", "job-2"}) {
    http_response r = submit_with_key({{"params", {{"n", 1}}}}, "same-key");
    EXPECT_EQ(body_of(r), json({{"job_id", id}, {"status", "pending"}})) << id;
    EXPECT_EQ(header(r, "Idempotent-Replayed"), "<none>") << id;
  }
  // Ignored altogether: an invalid key is no error either.
  EXPECT_EQ(submit_with_key(json::object(), std::string(300, 'k')).status, 202);
  const json jobs = server.jobs();
  EXPECT_EQ(jobs["v1_jobs"], 3);
  EXPECT_EQ(jobs["jobs"][1], job_entry("job-2", "v1", 0, false, "pending", {{"n", 1}}));  // no key honoured
  EXPECT_EQ(submissions()[1], submission("same-key", nullptr, {{"n", 1}}, "job-2", false, 202));  // as received
  EXPECT_EQ(server.configure({{"idempotency", true}}).at("idempotency"), true);
}

TEST_F(LoopbackServerTest, ABadIdempotencyKeyIs400SayingWhatCameAndCreatesNothing) {
  http_response r = submit_with_key(json::object(), std::string(256, 'k'));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r), json({{"error", "Idempotency-Key must be 1 to 255 printable ASCII characters (0x20-0x7E), "
                                        "got \"" + std::string(256, 'k') + "\" (256 characters)"}}));
  r = submit_with_key(json::object(), "tab\there");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r), json({{"error", "Idempotency-Key must be 1 to 255 printable ASCII characters (0x20-0x7E), "
                                        "got \"tab\\there\" (8 characters)"}}));
  r = server.request("POST", "/v1/jobs", "{}", {{"Idempotency-Key", "a"}, {"Idempotency-Key", "b"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r), json({{"error", R"(expected one Idempotency-Key header, got 2: ["a", "b"])"}}));
  EXPECT_EQ(submit_with_key("not an object", std::string(255, 'k')).status, 400);  // a good key, a bad body
  EXPECT_EQ(server.jobs()["v1_jobs"], 0);
  // A key whose POST was refused was not remembered.
  EXPECT_EQ(header(submit_with_key(json::object(), std::string(255, 'k')), "Idempotent-Replayed"), "<none>");
  const json log = submissions();
  ASSERT_EQ(log.size(), 5u) << log.dump();
  EXPECT_EQ(log[2], submission("a, b", nullptr, nullptr, nullptr, false, 400));
}

TEST_F(LoopbackServerTest, ClientRefFindsItsJobsInCreationOrderUnlessLookupIsOff) {
  submit({{"client_ref", "entry-7"}});
  submit({{"client_ref", "entry-8"}});
  submit({{"client_ref", "entry-7"}});
  EXPECT_EQ(body_of(get("/v1/jobs/job-1"))["status"], "pending");
  http_response found = get("/v1/jobs?client_ref=entry-7");
  EXPECT_EQ(found.status, 200);
  EXPECT_EQ(body_of(found), json({{"jobs", {{{"job_id", "job-1"}, {"status", "pending"}},
                                            {{"job_id", "job-3"}, {"status", "pending"}}}}}));
  EXPECT_EQ(body_of(get("/v1/jobs?client_ref=entry-9")), json({{"jobs", json::array()}}));
  EXPECT_EQ(server.jobs()["jobs"][0]["polls"], 1);  // a lookup is no poll

  http_response bad = get("/v1/jobs");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(body_of(bad),
            json({{"error", "GET /v1/jobs needs a client_ref query parameter (GET /v1/jobs?client_ref=R), "
                            "got query ''"}}));
  bad = server.request("POST", "/v1/jobs", R"({"client_ref": 7})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(body_of(bad), json({{"error", R"("client_ref" must be a string, got 7)"}}));

  server.configure({{"lookup", false}});
  http_response off = get("/v1/jobs?client_ref=entry-7");
  EXPECT_EQ(off.status, 404);
  EXPECT_EQ(body_of(off), json({{"error", R"(no route for GET /v1/jobs (the server's "lookup" is off))"}}));
}

// --- the load-job / get-job-data contract ---------------------------------------

TEST_F(LoopbackServerTest, LoadJobAnswersADeterministic32HexDigitHash) {
  const std::string first = load_job();
  EXPECT_THAT(first, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(first, "f74c0c5b2bd492d73f3b43ac03141454");       // md5("load-job-1")
  EXPECT_EQ(load_job(), "d44908b4469160f7ae27a80410c9f690");  // md5("load-job-2")
  http_response by_get = get("/transaction/load-job?site=MAIN");
  EXPECT_EQ(by_get.status, 200);
  EXPECT_EQ(body_of(by_get), json({{"data", {{"hash", "78286c6487aad583dceabc63e66ff441"}}}}));
  EXPECT_EQ(server.jobs()["load_jobs"], 3);
}

TEST_F(LoopbackServerTest, GetJobDataIsWorkingThenPassesWithTheFirstPage) {
  const std::string hash = load_job();
  const json working = job_data(hash, "working", json::array(), 0, 10, 0);
  EXPECT_EQ(body_of(get("/transaction/get-job-data?hash=" + hash)), working);
  EXPECT_EQ(body_of(get("/transaction/get-job-data?hash=" + hash)), working);
  http_response done = get("/transaction/get-job-data?hash=" + hash);
  EXPECT_EQ(done.status, 200);
  EXPECT_EQ(body_of(done), job_data(hash, "pass", transactions(0, 10), 0, 10, 22));
  EXPECT_EQ(server.jobs()["jobs"][0], job_entry(hash, "load-job", 3, false, "pass"));
}

TEST_F(LoopbackServerTest, GetJobDataPagesWithOffsetAndLimit) {
  EXPECT_EQ(server.configure({{"working_polls", 0}, {"page_limit", 4}, {"total", 7}}),
            json({{"working_polls", 0}, {"outcome", "pass"}, {"total", 7}, {"page_limit", 4}, {"quota", nullptr}}));
  const std::string hash = load_job();
  const std::string data = "/transaction/get-job-data?hash=" + hash;
  EXPECT_EQ(body_of(get(data)), job_data(hash, "pass", transactions(0, 4), 0, 4, 7));
  EXPECT_EQ(body_of(get(data + "&offset=4")), job_data(hash, "pass", transactions(4, 7), 4, 4, 7));
  EXPECT_EQ(body_of(get(data + "&offset=2&limit=2")), job_data(hash, "pass", transactions(2, 4), 2, 2, 7));
}

TEST_F(LoopbackServerTest, AJobKeepsTheConfigItWasSubmittedWith) {
  server.configure({{"working_polls", 1}});
  const std::string hash = load_job();
  server.configure({{"working_polls", 5}, {"outcome", "fail"}});
  EXPECT_EQ(body_of(get("/transaction/get-job-data?hash=" + hash))["data"]["status"], "working");
  EXPECT_EQ(body_of(get("/transaction/get-job-data?hash=" + hash))["data"]["status"], "pass");
}

TEST_F(LoopbackServerTest, AFailingLoadJobAnswersFailWithAMessage) {
  server.configure({{"working_polls", 1}, {"outcome", "fail"}});
  const std::string hash = load_job();
  EXPECT_EQ(body_of(get("/transaction/get-job-data?hash=" + hash))["data"]["status"], "working");
  json failed = job_data(hash, "fail", json::array(), 0, 10, 0);
  failed["data"]["message"] = "report failed";
  EXPECT_EQ(body_of(get("/transaction/get-job-data?hash=" + hash)), failed);
  EXPECT_EQ(body_of(get("/transaction/get-job-data?hash=" + hash)), failed);
}

TEST_F(LoopbackServerTest, AnUnknownHashIs404) {
  http_response r = get("/transaction/get-job-data?hash=00000000000000000000000000000000");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(body_of(r), json({{"error", "unknown hash"}}));
  r = get("/transaction/get-job-data");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r), json({{"error", "get-job-data needs a hash query parameter, got none"}}));
}

// --- quota --------------------------------------------------------------------

TEST_F(LoopbackServerTest, BeyondTheQuotaRequestsGet429WithRetryAfter) {
  // A long window: every request below falls inside it however slow the machine.
  server.configure({{"quota", {{"limit", 3}, {"window_s", 3600}}}});
  const std::string hash = load_job();
  const std::string data = "/transaction/get-job-data?hash=" + hash;
  EXPECT_EQ(get(data).status, 200);
  EXPECT_EQ(server.jobs()["load_jobs"], 1);  // control requests do not count
  EXPECT_EQ(get("/no/such/path").status, 404);  // every non-control request counts
  http_response rejected = get(data);
  EXPECT_EQ(rejected.status, 429);
  EXPECT_EQ(body_of(rejected), json({{"error", "quota exceeded"}}));
  const int retry_after = std::stoi(header(rejected, "Retry-After"));
  EXPECT_GE(retry_after, 3600 - 60);  // whole seconds until the first request leaves the window
  EXPECT_LE(retry_after, 3600);
  EXPECT_EQ(server.jobs()["jobs"][0]["polls"], 1);  // a rejected poll does not advance the job
  EXPECT_EQ(server.log()[3]["status"], 429);

  server.configure({{"quota", nullptr}});
  EXPECT_EQ(get(data).status, 200);
}

TEST(LoopbackServerQuota, TheQuotaOptionLimitsFromTheStart) {
  loopback_server server({"--quota", "2/3600"});
  EXPECT_EQ(server.configure(json::object())["quota"], json({{"limit", 2}, {"window_s", 3600.0}}));
  EXPECT_EQ(server.request("GET", "/v1/jobs/job-1").status, 404);
  EXPECT_EQ(server.request("GET", "/v1/jobs/job-1").status, 404);
  EXPECT_EQ(server.request("GET", "/v1/jobs/job-1").status, 429);
}

// --- scripted replies ---------------------------------------------------------

TEST_F(LoopbackServerTest, AScriptedStatusSendsExactlyItsHeadersAndBodyAndDoesNotAdvanceTheJob) {
  const std::string id = submit(json::object());
  server.script("GET", "/v1/jobs/" + id,
                json::array({{{"status", 503},
                              {"headers", {{"Retry-After", "1"}, {"X-Test", "a"}}},
                              {"body", "<html>busy</html>"}}}));
  http_response r = get("/v1/jobs/" + id);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "<html>busy</html>");
  EXPECT_EQ(header(r, "Retry-After"), "1");
  EXPECT_EQ(header(r, "X-Test"), "a");
  EXPECT_EQ(header(r, "Content-Length"), "17");
  EXPECT_EQ(header(r, "Content-Type"), "<none>");
  // The queue is empty: normal behaviour, from the job's first poll.
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), json({{"job_id", id}, {"status", "pending"}, {"progress", 0.333}}));
}

TEST_F(LoopbackServerTest, AScriptedJsonReplyIsEncodedWithAJsonContentType) {
  server.script("GET", "/v1/jobs/job-1",
                json::array({{{"status", 200}, {"json", {{"status", "completed"}, {"result", "fake"}}}}}));
  http_response r = get("/v1/jobs/job-1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(body_of(r), json({{"status", "completed"}, {"result", "fake"}}));
  EXPECT_EQ(get("/v1/jobs/job-1").status, 404);
}

TEST_F(LoopbackServerTest, ScriptedRepliesAreConsumedInOrderAndTheFirstMatchingEntryWins) {
  server.script("GET", "/v1/jobs/*", json::array({{{"status", 500}}, {{"status", 502}}}));
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 504}}}));
  EXPECT_EQ(server.request("POST", "/v1/jobs", "{}").status, 202);  // another method: not scripted
  EXPECT_EQ(get("/v1/jobs/job-1?verbose=1").status, 500);            // the query is not part of the path
  EXPECT_EQ(get("/v1/jobs/job-1/result").status, 502);               // prefix match
  EXPECT_EQ(get("/v1/jobs/job-1").status, 504);
  EXPECT_EQ(get("/v1/jobs/job-1").status, 200);
  EXPECT_EQ(server.jobs()["jobs"][0]["polls"], 1);
}

TEST_F(LoopbackServerTest, ADelayedReplyIsAnsweredAfterTheDelay) {
  const std::string id = submit(json::object());
  server.script("GET", "/v1/jobs/" + id,
                json::array({{{"delay_ms", 50}, {"status", 200}, {"body", "late"}}, {{"delay_ms", 50}}}));
  http_response scripted = get("/v1/jobs/" + id);
  EXPECT_EQ(scripted.status, 200);
  EXPECT_EQ(scripted.body, "late");
  // A delay without a status answers normally, and that advances the job.
  EXPECT_EQ(body_of(get("/v1/jobs/" + id)), json({{"job_id", id}, {"status", "pending"}, {"progress", 0.333}}));
  EXPECT_EQ(server.log()[2]["scripted"], true);
}

TEST_F(LoopbackServerTest, ALongDelayDoesNotBlockOtherRequestsAndResetCutsItShort) {
  server.script("GET", "/slow", json::array({{{"delay_ms", 600000}, {"status", 200}}}));
  auto slow = std::async(std::launch::async, fetch, server.url("/slow"));
  await_logged(1);
  EXPECT_EQ(get("/v1/jobs/job-1").status, 404);  // answered while /slow sleeps
  server.reset();
  EXPECT_EQ(slow.get(), CURLE_GOT_NOTHING);  // the connection is closed without an answer
}

TEST(LoopbackServerFixture, StoppingTheServerCutsALongDelayShort) {
  std::future<CURLcode> slow;
  {
    loopback_server server;
    server.script("GET", "/slow", json::array({{{"delay_ms", 600000}, {"status", 200}}}));
    slow = std::async(std::launch::async, fetch, server.url("/slow"));
    const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (server.log().empty()) ASSERT_LT(std::chrono::steady_clock::now(), guard);
  }
  EXPECT_THAT(slow.get(), AnyOf(CURLE_GOT_NOTHING, CURLE_RECV_ERROR));
}

TEST_F(LoopbackServerTest, AScriptedResetBreaksTheConnectionInTheMiddleOfTheResponse) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"action", "reset"}}}));
  const CURLcode code = failure_of("/v1/jobs/job-1");
  // Headers announce 1000 bytes, 10 arrive, then an RST: on Linux the RST
  // reaches recv() as ECONNRESET (CURLE_RECV_ERROR); other stacks may report
  // it as a short body or, had the headers been lost, as nothing at all.
  EXPECT_THAT(code, AnyOf(CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING)) << curl_easy_strerror(code);
  RecordProperty("reset_curl_code", static_cast<int>(code));
  json entry = server.log()[0];
  EXPECT_EQ(entry["status"], nullptr);
  EXPECT_EQ(entry["scripted"], true);
  EXPECT_EQ(get("/v1/jobs/job-1").status, 404);  // the server goes on serving
}

TEST_F(LoopbackServerTest, AScriptedCloseAnswersNothing) {
  server.script("POST", "/v1/jobs", json::array({{{"action", "close"}}}));
  try {
    http_response r = server.request("POST", "/v1/jobs", "{}");
    ADD_FAILURE() << "expected no response, got " << jobpoll::describe(r);
  } catch (const curl_failure& e) {
    EXPECT_EQ(e.code(), CURLE_GOT_NOTHING) << e.what();
  }
  EXPECT_EQ(server.jobs()["v1_jobs"], 0);
  EXPECT_EQ(server.log()[0]["status"], nullptr);
}

TEST_F(LoopbackServerTest, AMalformedScriptIsRejectedWithWhatWasWrong) {
  http_response r = server.request("POST", "/_control/script",
                                   R"({"method": "GET", "path": "/x", "responses": [{"action": "explode"}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r), json({{"error", R"(scripted action must be "reset" or "close", got "explode")"}}));
  r = server.request("POST", "/_control/script", R"({"method": "GET", "path": "/x", "responses": []})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_of(r), json({{"error", R"(a script needs "responses" (a non-empty list), got [])"}}));
  EXPECT_EQ(get("/x").status, 404);
}

TEST_F(LoopbackServerTest, LatencyDelaysArrivalOrAnswerWithinItsBoundsAndABadOneIsRejected) {
  http_response bad = server.request("POST", "/_control/config", R"({"latency_ms": [200, 100]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(body_of(bad), json({{"error", R"("latency_ms" must be [low, high] with 0 <= low <= high <= 10000, or null, got [200, 100])"}}));
  EXPECT_EQ(server.configure({{"latency_ms", {50, 50}}}).at("latency_ms"), json({50, 50}));
  // Each exchange takes the 50 ms the server sleeps, at least (sleeps only
  // ever last longer), split around the arrival.
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(get("/v1/jobs/none").status, 404);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server.log().size(), 3u);
  EXPECT_TRUE(server.configure({{"latency_ms", nullptr}}).at("latency_ms").is_null());
}

// --- log, reset, robustness ---------------------------------------------------

TEST_F(LoopbackServerTest, TheLogRecordsEveryNonControlRequestInArrivalOrder) {
  server.request("POST", "/v1/jobs", R"({"tool": "t"})", {{"X-Trace", "t1"}});
  get("/v1/jobs/job-1?verbose=1");
  server.script("DELETE", "/v1/jobs/job-1", json::array({{{"status", 503}}}));
  server.request("DELETE", "/v1/jobs/job-1");
  server.jobs();
  server.request("POST", "/transaction/load-job?site=MAIN");
  const json log = server.log();
  ASSERT_EQ(log.size(), 4u) << log.dump();
  EXPECT_EQ(log[0]["method"], "POST");
  EXPECT_EQ(log[0]["path"], "/v1/jobs");
  EXPECT_EQ(log[0]["query"], "");
  EXPECT_EQ(log[0]["headers"]["X-Trace"], "t1");
  EXPECT_EQ(log[0]["headers"]["Content-Type"], "application/json");
  EXPECT_EQ(log[0]["body"], R"({"tool": "t"})");
  EXPECT_EQ(log[0]["status"], 202);
  EXPECT_EQ(log[0]["scripted"], false);
  EXPECT_EQ(log[1]["method"], "GET");
  EXPECT_EQ(log[1]["path"], "/v1/jobs/job-1");
  EXPECT_EQ(log[1]["query"], "verbose=1");
  EXPECT_EQ(log[1]["body"], "");
  EXPECT_EQ(log[1]["status"], 200);
  EXPECT_EQ(log[1]["scripted"], false);
  EXPECT_EQ(log[2]["method"], "DELETE");
  EXPECT_EQ(log[2]["status"], 503);
  EXPECT_EQ(log[2]["scripted"], true);
  EXPECT_EQ(log[3]["path"], "/transaction/load-job");
  EXPECT_EQ(log[3]["query"], "site=MAIN");
  EXPECT_EQ(log[3]["headers"]["Content-Length"], "0");  // a POST without a body still says so
  EXPECT_EQ(log[3]["body"], "");
  EXPECT_EQ(log[3]["status"], 200);
}

TEST_F(LoopbackServerTest, ResetClearsJobsScriptsLogAndConfig) {
  submit(json::object());
  load_job();
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 500}}}));
  server.configure({{"working_polls", 0}, {"outcome", "fail"}, {"quota", {{"limit", 100}, {"window_s", 1}}}});
  server.reset();
  EXPECT_EQ(server.jobs(), json({{"jobs", json::array()}, {"load_jobs", 0}, {"v1_jobs", 0}}));
  EXPECT_EQ(server.log(), json::array());
  EXPECT_EQ(server.configure(json::object()),
            json({{"working_polls", 2}, {"outcome", "pass"}, {"total", 22}, {"page_limit", 10}, {"quota", nullptr}}));
  EXPECT_EQ(submit(json::object()), "job-1");
  EXPECT_EQ(get("/v1/jobs/job-1").status, 200);  // the script is gone
  EXPECT_EQ(load_job(), "f74c0c5b2bd492d73f3b43ac03141454");
}

TEST_F(LoopbackServerTest, AClientThatDisconnectsMidRequestDoesNotDisturbTheServer) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(server.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  const std::string partial = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), static_cast<ssize_t>(partial.size()));
  ::close(fd);
  EXPECT_EQ(submit(json::object()), "job-1");
  EXPECT_EQ(server.jobs()["v1_jobs"], 1);
}

}  // namespace
