// job_client's job keys, idempotent submits and lookups (rule 9), on the
// scripted transport and the manual clock: the {job_key} a submit sends and
// keeps on every retry, which failures an idempotent submit retries (and
// that a plain one still does not), and find() by key: found, not found,
// retried, refused.

#include <chrono>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/testing/manual_clock.hpp>
#include <jobpoll/transport/scripted.hpp>

#include "job_client_fixture.hpp"
#include "job_outcome.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using jobpoll::testing::manual_clock;
using testing::HasSubstr;
using transport_type = jobpoll::basic_scripted_transport<manual_clock>;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<transport_type, jobpoll::json_codec, status_type>;
using options = jobpoll::basic_poll_options<manual_clock>;

const std::string jobs = "http://api.test/v1/jobs";
const std::string lookup_url = "http://api.test/v1/jobs?client_ref=";

// The job API of seed 004, its submit carrying the key as a header, and a
// lookup by client reference.
jobpoll::job_description keyed_api(bool idempotent) {
  jobpoll::job_description d;
  d.submit = {"POST", jobs, R"({"tool":"{tool}"})", {{"Idempotency-Key", "{job_key}"}}};
  d.handle = jobpoll::handle_source::body("/id");
  d.poll = {"GET", "/v1/jobs/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  d.idempotent_submit = idempotent;
  d.lookup = jobpoll::job_lookup{{"GET", "/v1/jobs?client_ref={job_key}"}, "/jobs/0/id"};
  return d;
}

status_type job_status() {
  return status_type("/status", {.succeeded = {"completed"}, .failed = {"failed"}, .pending = {"pending", "running"}});
}

// How an operation ended: its value or its job_error (neither: it did not end).
template <class T>
struct ending {
  ending() = default;
  ending(T v) : value(std::move(v)) {}
  ending(jobpoll::job_error e) : error(std::move(e)) {}

  std::optional<T> value;
  std::optional<jobpoll::job_error> error;
};

class JobKeyTest : public job_client_fixture<ending> {
 protected:
  // The Idempotency-Key of every submit the server received, in order.
  std::vector<std::string> keys_sent() const {
    std::vector<std::string> keys;
    for (const auto& r : transport.requests())
      if (r.method == "POST") keys.emplace_back(r.headers.find("Idempotency-Key").value_or("(none)"));
    return keys;
  }
};

bool is_key(const std::string& key) { return std::regex_match(key, std::regex("[0-9a-f]{32}")); }

// --- the key ------------------------------------------------------------------------------

TEST_F(JobKeyTest, AGeneratedKeyIs32HexDigitsTheSameOnEveryRetryAndInTheHandle) {
  transport.on("POST", jobs).reply(503, "busy").reply(429, "slow down").reply(201, R"({"id":"job-1"})");
  client_type client(transport, keyed_api(false), job_status());
  const auto submitted = finish(client.submit({{"tool", "t"}}, exact()));
  ASSERT_TRUE(submitted.value);
  const auto keys = keys_sent();
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_TRUE(is_key(keys[0])) << keys[0];
  EXPECT_EQ(keys[1], keys[0]);
  EXPECT_EQ(keys[2], keys[0]);
  EXPECT_EQ(submitted.value->id, "job-1");
  EXPECT_EQ(submitted.value->params, (jobpoll::job_params{{"job_key", keys[0]}, {"tool", "t"}}));
  EXPECT_EQ(transport.requests()[0].body, R"({"tool":"t"})");
}

TEST_F(JobKeyTest, EachSubmitGetsANewKey) {
  transport.on("POST", jobs).reply(201, R"({"id":"job-1"})").repeat();
  client_type client(transport, keyed_api(false), job_status());
  std::set<std::string> keys;
  for (int i = 0; i < 20; ++i) {
    const auto submitted = finish(client.submit({{"tool", "t"}}, exact()));
    ASSERT_TRUE(submitted.value);
    keys.insert(submitted.value->params.at("job_key"));
  }
  EXPECT_EQ(keys.size(), 20u);
  for (const auto& key : keys) EXPECT_TRUE(is_key(key)) << key;
  EXPECT_TRUE(is_key(jobpoll::new_job_key()));
}

TEST_F(JobKeyTest, TheCallersKeyIsUsedAsIsInHeadersBodiesAndUrls) {
  transport.on("POST", jobs).reply(201, R"({"id":"job-1"})");
  transport.on("PUT", jobs + "/order%2017").reply(201, R"({"id":"job-2"})");
  jobpoll::job_description d = keyed_api(false);
  d.submit.body = R"({"client_ref":"{job_key}"})";
  client_type client(transport, d, job_status());
  const auto submitted = finish(client.submit({{"job_key", "order 17"}}, exact()));
  ASSERT_TRUE(submitted.value);
  EXPECT_EQ(submitted.value->params, (jobpoll::job_params{{"job_key", "order 17"}}));
  ASSERT_EQ(transport.requests().size(), 1u);
  EXPECT_EQ(transport.requests()[0].headers.find("Idempotency-Key"), "order 17");
  EXPECT_EQ(transport.requests()[0].body, R"({"client_ref":"order 17"})");

  d.submit = {"PUT", jobs + "/{job_key}"};  // percent-encoded in a URL, as any value
  client_type by_url(transport, d, job_status());
  const auto put = finish(by_url.submit({{"job_key", "order 17"}}, exact()));
  ASSERT_TRUE(put.value);
  EXPECT_EQ(put.value->id, "job-2");
}

TEST_F(JobKeyTest, NoKeyIsMadeForASubmitThatDoesNotUseOne) {
  transport.on("POST", jobs).reply(201, R"({"id":"job-1"})");
  jobpoll::job_description d = keyed_api(false);
  d.submit.headers = {};
  d.lookup.reset();
  client_type client(transport, d, job_status());
  EXPECT_FALSE(client.submit_is_idempotent());
  EXPECT_FALSE(client.can_find());
  const auto submitted = finish(client.submit({{"tool", "t"}}, exact()));
  ASSERT_TRUE(submitted.value);
  EXPECT_EQ(submitted.value->params, (jobpoll::job_params{{"tool", "t"}}));
  EXPECT_EQ(keys_sent(), std::vector<std::string>{"(none)"});
}

TEST_F(JobKeyTest, TheKeyInAFormValueOrAPlusPlaceholderCounts) {
  jobpoll::job_description d = keyed_api(true);
  d.submit.headers = {};
  d.submit.body = {};
  d.submit.form = {{"ref", "{+job_key}"}};
  EXPECT_TRUE(client_type(transport, d, job_status()).submit_is_idempotent());
  d.submit.form = {{"{job_key}", "x"}};  // a form name is not expanded
  EXPECT_FALSE(client_type(transport, d, job_status()).submit_is_idempotent());
  d.submit.form = {};
  d.submit.body = R"({"ref":"{ job_key}"})";  // not a placeholder: left as is
  EXPECT_FALSE(client_type(transport, d, job_status()).submit_is_idempotent());
}

// --- idempotent submits ------------------------------------------------------------------

TEST_F(JobKeyTest, AnIdempotentSubmitIsRetriedAfterAResetOrALostAnswerWithTheSameKey) {
  transport.on("POST", jobs)
      .fail(asio::error::connection_reset)
      .fail(asio::error::eof)
      .reply(201, R"({"id":"job-1"})");
  client_type client(transport, keyed_api(true), job_status());
  EXPECT_TRUE(client.submit_is_idempotent());
  const auto submitted = finish(client.submit({{"tool", "t"}}, exact()));
  ASSERT_TRUE(submitted.value) << submitted.error->what();
  EXPECT_EQ(submitted.value->id, "job-1");
  const auto keys = keys_sent();
  ASSERT_EQ(keys.size(), 3u);  // exactly the three attempts, one key
  EXPECT_EQ(keys, std::vector<std::string>(3, submitted.value->params.at("job_key")));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 2s);  // two backoffs
}

// The first answer comes after the attempt timeout: the server created the
// job, the client did not hear it; the second submit, same key, gets it.
TEST_F(JobKeyTest, AnIdempotentSubmitIsRetriedAfterATimeoutWithTheSameKey) {
  transport.on("POST", jobs).after(5s).reply(201, R"({"id":"job-1"})").reply(200, R"({"id":"job-1"})");
  client_type client(transport, keyed_api(true), job_status());
  options o = exact();
  o.attempt_timeout = 2s;
  const auto submitted = finish(client.submit({{"job_key", "k-1"}, {"tool", "t"}}, o));
  ASSERT_TRUE(submitted.value) << submitted.error->what();
  EXPECT_EQ(submitted.value->id, "job-1");
  EXPECT_EQ(keys_sent(), (std::vector<std::string>{"k-1", "k-1"}));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 3s);  // 2 s timeout, 1 s backoff
}

TEST_F(JobKeyTest, AnIdempotentSubmitStopsWhenTheRetryBudgetRunsOutAndNamesTheKey) {
  transport.on("POST", jobs).fail(asio::error::connection_reset).repeat();
  client_type client(transport, keyed_api(true), job_status());
  options o = exact();
  o.max_retries = 2;
  const auto submitted = finish(client.submit({{"job_key", "k-2"}, {"tool", "t"}}, o));
  ASSERT_TRUE(submitted.error);
  EXPECT_EQ(submitted.error->code(), jobpoll::errc::retries_exhausted);
  EXPECT_EQ(submitted.error->phase(), jobpoll::job_phase::submit);
  EXPECT_FALSE(submitted.error->handle());
  EXPECT_THAT(submitted.error->what(), HasSubstr("submitting job with key \"k-2\": "));
  EXPECT_EQ(keys_sent(), std::vector<std::string>(3, "k-2"));
}

TEST_F(JobKeyTest, AnIdempotentSubmitIsNotRetriedAfterAPermanentAnswer) {
  transport.on("POST", jobs).reply(400, R"({"error":"bad tool"})");
  client_type client(transport, keyed_api(true), job_status());
  const auto submitted = finish(client.submit({{"job_key", "k-3"}, {"tool", "t"}}, exact()));
  ASSERT_TRUE(submitted.error);
  EXPECT_EQ(submitted.error->code(), jobpoll::errc::http_error);
  EXPECT_EQ(transport.count("POST", jobs), 1u);
}

TEST_F(JobKeyTest, APlainSubmitIsStillNotRetriedAfterAResetOrATimeout) {
  transport.on("POST", jobs).fail(asio::error::connection_reset).hang();
  client_type client(transport, keyed_api(false), job_status());
  EXPECT_FALSE(client.submit_is_idempotent());
  const auto reset = finish(client.submit({{"job_key", "k-4"}, {"tool", "t"}}, exact()));
  ASSERT_TRUE(reset.error);
  EXPECT_EQ(reset.error->code(), asio::error::connection_reset);
  EXPECT_THAT(reset.error->what(), HasSubstr("not retried: the server may have created the job"));
  EXPECT_THAT(reset.error->what(), HasSubstr("with key \"k-4\""));

  options o = exact();
  o.attempt_timeout = 2s;
  const auto slow = finish(client.submit({{"job_key", "k-5"}, {"tool", "t"}}, o));
  ASSERT_TRUE(slow.error);
  EXPECT_EQ(slow.error->code(), asio::error::timed_out);
  EXPECT_THAT(slow.error->what(), HasSubstr("not retried: the server may have created the job"));
  EXPECT_EQ(keys_sent(), (std::vector<std::string>{"k-4", "k-5"}));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 2s);
}

TEST_F(JobKeyTest, AnIdempotentSubmitWithoutAKeyIsRefusedBeforeAnyRequest) {
  jobpoll::job_description d = keyed_api(true);
  d.submit.headers = {};
  client_type client(transport, d, job_status());
  EXPECT_FALSE(client.submit_is_idempotent());
  const auto submitted = finish(client.submit({{"tool", "t"}}, exact()));
  ASSERT_TRUE(submitted.error);
  EXPECT_EQ(submitted.error->code(), jobpoll::errc::invalid_argument);
  EXPECT_EQ(submitted.error->phase(), jobpoll::job_phase::submit);
  EXPECT_FALSE(submitted.error->handle());
  EXPECT_THAT(submitted.error->what(), HasSubstr("submitting job: the description says the submit is idempotent"));
  EXPECT_THAT(submitted.error->what(), HasSubstr("does not use {job_key}"));
  // run() submits first: refused the same way.
  std::optional<job_outcome> ran;
  asio::co_spawn(ctx, client.run({{"tool", "t"}}, exact()), store_outcome(ran));
  manual_clock::run(ctx);
  ASSERT_TRUE(ran);
  EXPECT_EQ(failure(*ran).code(), jobpoll::errc::invalid_argument);
  EXPECT_TRUE(transport.requests().empty());
}

// --- find ------------------------------------------------------------------------------------

TEST_F(JobKeyTest, FindReturnsTheJobAKeyedSubmitCreated) {
  transport.on("GET", lookup_url + "k%201").reply(200, R"({"jobs":[{"id":"job-7","state":"running"}]})");
  client_type client(transport, keyed_api(true), job_status());
  EXPECT_TRUE(client.can_find());
  options o = exact();
  o.deadline = 30s;
  const auto found = finish(client.find({{"job_key", "k 1"}, {"tool", "t"}}, o));
  ASSERT_TRUE(found.value) << found.error->what();
  ASSERT_TRUE(found.value->has_value());
  const jobpoll::job_handle& handle = **found.value;
  EXPECT_EQ(handle.id, "job-7");
  EXPECT_EQ(handle.params, (jobpoll::job_params{{"job_key", "k 1"}, {"tool", "t"}}));
  EXPECT_EQ(handle.remaining, 30s);
  EXPECT_EQ(handle.progress.attempts, 0u);
  EXPECT_EQ(transport.requests().size(), 1u);
}

TEST_F(JobKeyTest, FindReadsAnIntegerHandleAsText) {
  transport.on("GET", lookup_url + "k").reply(200, R"({"jobs":[{"id":42}]})");
  client_type client(transport, keyed_api(true), job_status());
  const auto found = finish(client.find({{"job_key", "k"}}, exact()));
  ASSERT_TRUE(found.value && found.value->has_value());
  EXPECT_EQ((*found.value)->id, "42");
  EXPECT_EQ((*found.value)->remaining, 300s);  // the default deadline, none of it spent
}

TEST_F(JobKeyTest, FindSaysNotFoundForNothingNullOrA404) {
  transport.on("GET", lookup_url + "k")
      .reply(200, R"({"jobs":[]})")
      .reply(200, R"({"jobs":[{"id":null}]})")
      .reply(200, "{}")
      .reply(404, R"({"error":"no such client_ref"})");
  client_type client(transport, keyed_api(true), job_status());
  for (int i = 0; i < 4; ++i) {
    const auto found = finish(client.find({{"job_key", "k"}}, exact()));
    ASSERT_TRUE(found.value) << i << ": " << found.error->what();
    EXPECT_FALSE(found.value->has_value()) << i;
  }
  EXPECT_EQ(transport.requests().size(), 4u);
}

TEST_F(JobKeyTest, FindRetriesTransientFailuresThenFinds) {
  transport.on("GET", lookup_url + "k")
      .reply(503, "maintenance", {{"Retry-After", "3"}})
      .fail(asio::error::connection_reset)
      .reply(200, R"({"jobs":[{"id":"job-7"}]})");
  client_type client(transport, keyed_api(true), job_status());
  const auto found = finish(client.find({{"job_key", "k"}}, exact()));
  ASSERT_TRUE(found.value && found.value->has_value());
  EXPECT_EQ((*found.value)->id, "job-7");
  EXPECT_EQ(transport.count("GET", lookup_url + "k"), 3u);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 4s);  // Retry-After 3 s, then a 1 s backoff
}

TEST_F(JobKeyTest, FindEndsAtAPermanentAnswerWithPhaseLookup) {
  transport.on("GET", lookup_url + "k").reply(400, R"({"error":"bad client_ref"})");
  client_type client(transport, keyed_api(true), job_status());
  const auto found = finish(client.find({{"job_key", "k"}}, exact()));
  ASSERT_TRUE(found.error);
  const jobpoll::job_error& e = *found.error;
  EXPECT_EQ(e.code(), jobpoll::errc::http_error);
  EXPECT_EQ(e.phase(), jobpoll::job_phase::lookup);
  EXPECT_EQ(to_string(e.phase()), "lookup");
  EXPECT_FALSE(e.handle());
  ASSERT_TRUE(e.last_response());
  EXPECT_EQ(e.last_response()->status, 400);
  EXPECT_THAT(e.what(), HasSubstr("looking up job with key \"k\": "));
  EXPECT_THAT(e.what(), HasSubstr("bad client_ref"));
  EXPECT_EQ(transport.requests().size(), 1u);
}

TEST_F(JobKeyTest, FindRefusesAnythingButAHandleOrNullAtThePointer) {
  transport.on("GET", lookup_url + "k")
      .reply(200, R"({"jobs":[{"id":""}]})")
      .reply(200, R"({"jobs":[{"id":true}]})")
      .reply(200, R"({"jobs":[{"id":1.5}]})")
      .reply(200, R"({"jobs":[{"id":{"n":1}}]})")
      .reply(200, "<html>");
  client_type client(transport, keyed_api(true), job_status());
  for (int i = 0; i < 5; ++i) {
    const auto found = finish(client.find({{"job_key", "k"}}, exact()));
    ASSERT_TRUE(found.error) << i;
    EXPECT_EQ(found.error->code(), jobpoll::errc::decode_error) << i;
    EXPECT_EQ(found.error->phase(), jobpoll::job_phase::lookup);
    const std::string expected = i < 4 ? "expected a job handle (a non-empty string or an integer) or null at "
                                         "/jobs/0/id in the lookup answer: HTTP 200"
                                       : "undecodable lookup answer (not JSON";
    EXPECT_THAT(found.error->what(), HasSubstr(expected)) << i;
  }
  EXPECT_EQ(transport.requests().size(), 5u);
}

TEST_F(JobKeyTest, FindIsRefusedWithoutALookupOrAKey) {
  jobpoll::job_description d = keyed_api(true);
  d.lookup.reset();
  client_type without(transport, d, job_status());
  const auto no_lookup = finish(without.find({{"job_key", "k"}}, exact()));
  ASSERT_TRUE(no_lookup.error);
  EXPECT_EQ(no_lookup.error->code(), jobpoll::errc::invalid_argument);
  EXPECT_EQ(no_lookup.error->phase(), jobpoll::job_phase::lookup);
  EXPECT_THAT(no_lookup.error->what(), HasSubstr("looking up job: the job description has no lookup request"));

  client_type client(transport, keyed_api(true), job_status());
  const auto no_key = finish(client.find({{"tool", "t"}}, exact()));
  ASSERT_TRUE(no_key.error);
  EXPECT_EQ(no_key.error->code(), jobpoll::errc::invalid_argument);
  EXPECT_THAT(no_key.error->what(), HasSubstr("the params have no \"job_key\""));

  d.lookup = jobpoll::job_lookup{{"GET", "/v1/jobs?client_ref={job_key}"}, "jobs/0/id"};
  client_type bad_pointer(transport, d, job_status());
  const auto malformed = finish(bad_pointer.find({{"job_key", "k"}}, exact()));
  ASSERT_TRUE(malformed.error);
  EXPECT_EQ(malformed.error->code(), jobpoll::errc::invalid_argument);
  EXPECT_THAT(malformed.error->what(), HasSubstr("\"jobs/0/id\" must be empty or start with '/'"));

  options o = exact();
  o.deadline = -1s;
  const auto bad_options = finish(client.find({{"job_key", "k"}}, o));
  ASSERT_TRUE(bad_options.error);
  EXPECT_EQ(bad_options.error->code(), jobpoll::errc::invalid_argument);
  EXPECT_EQ(bad_options.error->phase(), jobpoll::job_phase::lookup);
  EXPECT_TRUE(transport.requests().empty());
}

// Rule 9 end to end: the submit's answer is lost, the job is looked up by
// its key and polled to its end, and the server saw one submit.
TEST_F(JobKeyTest, ASubmitWhoseAnswerWasLostIsFoundByItsKeyAndPolled) {
  transport.on("POST", jobs).fail(asio::error::connection_reset);
  transport.on("GET", lookup_url + "*").reply(200, R"({"jobs":[{"id":"job-9"}]})");
  transport.on("GET", jobs + "/job-9").reply(200, R"({"status":"completed","result":"done"})");
  client_type client(transport, keyed_api(false), job_status());
  const std::string key = jobpoll::new_job_key();
  const auto submitted = finish(client.submit({{"job_key", key}, {"tool", "t"}}, exact()));
  ASSERT_TRUE(submitted.error);
  const auto found = finish(client.find({{"job_key", key}, {"tool", "t"}}, exact()));
  ASSERT_TRUE(found.value && found.value->has_value());
  const auto waited = finish(client.wait(**found.value, exact()));
  ASSERT_TRUE(waited.value);
  EXPECT_EQ(waited.value->value, "done");
  EXPECT_EQ(transport.count("POST", jobs), 1u);
  EXPECT_EQ(transport.count("GET", lookup_url + key), 1u);
}

}  // namespace
