// The field matcher comes first and alone: it is generic over codecs and must
// pull in neither a JSON library nor Asio.
#include "jobpoll/field_status.hpp"

#if defined(ASIO_VERSION)
#error "field_status must not include Asio"
#endif
#if defined(NLOHMANN_JSON_VERSION_MAJOR)
#error "field_status must not include nlohmann::json"
#endif

#include <gtest/gtest.h>

#include "policy_helpers.hpp"

#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "jobpoll/codec/json.hpp"
#include "jobpoll/status_policy.hpp"

namespace {

using namespace jobpoll_test;

using namespace std::chrono_literals;
using jobpoll::job_state;
using jobpoll::json_codec;
using jobpoll::poll_status;
using json = nlohmann::json;
using json_field_status = jobpoll::field_status<json_codec>;

static_assert(jobpoll::status_policy<json_field_status, json>);
static_assert(std::is_copy_constructible_v<json_field_status>);

const json_codec codec{};

/// The contract of the seed's reporting API: GET /transaction/get-job-data
/// answers {"data": {"status": "working" | "pass" | "fail", ...}}.
json_field_status seed_policy() { return json_field_status("/data/status", {{"pass"}, {"fail"}, {"working"}}); }

/// The contract of the seed's job API: GET /jobs/{id} answers
/// {"status": "pending" | "running" | "completed" | "failed" | "cancelled",
///  "progress": 0.0 to 1.0, "error": "...", ...}, here with an ETA field.
json_field_status job_api_policy() {
  return json_field_status("/status", {.succeeded = {"completed"},
                                       .failed = {"failed", "cancelled"},
                                       .pending = {"pending", "running"}})
      .progress_at("/progress")
      .hint_at("/eta_seconds")
      .failure_detail_at("/error");
}

// Bodies of the seed's reporting API (get-job-data), as its OpenAPI spec shows them.
constexpr std::string_view seed_working_body = R"({
    "data": {
        "hash": "1aabac6d068eef6a7bad3fdf50a05cc8",
        "status": "working",
        "data": [],
        "offset": 0,
        "limit": 10,
        "total": 0
    }
})";

constexpr std::string_view seed_pass_body = R"({
    "data": {
        "hash": "1aabac6d068eef6a7bad3fdf50a05cc8",
        "status": "pass",
        "data": [
            {
                "id": "...",
                "number": 123,
                "type": "Sale",
                "completeDate": "...",
                "locationCode": "MAIN",
                "salesDeviceName": "POS-1",
                "total": 15.99,
                "tenders": [],
                "items": [],
                "discount": [],
                "isRecurringPayment": false,
                "isRecurringRedemption": false,
                "isRecurringSale": false,
                "isPrepaidRedemption": false,
                "isPrepaidSale": false,
                "customerId": "1:234",
                "isRecurringPlanSale": false,
                "isRecurringPlanRedemption": false,
                "transactionStatus": "Completed"
            }
        ],
        "offset": 0,
        "limit": 100,
        "total": 22
    }
})";

// The spec documents no body for "fail": the same shape with that status.
constexpr std::string_view seed_fail_body =
    R"({"data":{"hash":"1aabac6d068eef6a7bad3fdf50a05cc8","status":"fail","data":[],"offset":0,"limit":10,"total":0}})";

poll_status classify(const json_field_status& policy, std::string_view body) { return policy(codec.decode(body)); }

// --- the seed's reporting API ----------------------------------------------------

TEST(FieldStatusSeedTest, WorkingIsPendingWithoutProgress) {
  const poll_status status = classify(seed_policy(), seed_working_body);
  EXPECT_EQ(status.state, job_state::pending);
  EXPECT_EQ(status.error, jobpoll::error_code{});
  EXPECT_EQ(status.detail, "status \"working\"");
  EXPECT_EQ(status.progress, std::nullopt);
  EXPECT_EQ(status.retry_after, std::nullopt);
}

TEST(FieldStatusSeedTest, PassSucceeds) {
  const poll_status status = classify(seed_policy(), seed_pass_body);
  EXPECT_EQ(status.state, job_state::succeeded);
  EXPECT_EQ(status.error, jobpoll::error_code{});
  EXPECT_EQ(status.detail, "status \"pass\"");
  EXPECT_EQ(status.progress, 1.0);
}

TEST(FieldStatusSeedTest, FailFails) {
  const poll_status status = classify(seed_policy(), seed_fail_body);
  EXPECT_EQ(status.state, job_state::failed);
  EXPECT_EQ(status.error, jobpoll::errc::job_failed);
  EXPECT_EQ(status.detail, "status \"fail\"");
}

TEST(FieldStatusSeedTest, AnUnknownValueIsAPermanentErrorNamingTheExpectedOnes) {
  const poll_status status = classify(seed_policy(), R"({"data":{"status":"pas"}})");
  EXPECT_EQ(status.state, job_state::permanent_error);
  EXPECT_EQ(status.error, jobpoll::errc::unknown_status);
  EXPECT_EQ(status.detail, "unknown status \"pas\" at /data/status (expected one of: pass | fail | working)");
}

TEST(FieldStatusSeedTest, MatchingIsExactAndCaseSensitive) {
  for (const std::string_view value : {"PASS", "Pass", " pass", "pass ", ""}) {
    const poll_status status = seed_policy()(json{{"data", {{"status", value}}}});
    EXPECT_EQ(status.state, job_state::permanent_error) << value;
    EXPECT_EQ(status.error, jobpoll::errc::unknown_status) << value;
  }
}

TEST(FieldStatusSeedTest, AMissingStatusIsADecodeErrorShowingTheBody) {
  const poll_status status = classify(seed_policy(), R"({"data":{"hash":"1aab"}})");
  EXPECT_EQ(status.state, job_state::permanent_error);
  EXPECT_EQ(status.error, jobpoll::errc::decode_error);
  EXPECT_EQ(status.detail, R"(no status at /data/status in {"data":{"hash":"1aab"}})");

  // A body that is not even an object: the pointer finds nothing either.
  const poll_status array = classify(seed_policy(), "[1,2]");
  EXPECT_EQ(array.error, jobpoll::errc::decode_error);
  EXPECT_EQ(array.detail, "no status at /data/status in [1,2]");
}

TEST(FieldStatusSeedTest, AMissingStatusInALongBodyShowsItsStart) {
  const json body = {{"data", {{"items", std::string(300, 'x')}}}};
  const poll_status status = seed_policy()(body);
  EXPECT_EQ(status.error, jobpoll::errc::decode_error);
  EXPECT_EQ(status.detail, "no status at /data/status in " + codec.preview(body, 200));
  EXPECT_TRUE(status.detail.starts_with(R"(no status at /data/status in {"data":{"items":"xxx)")) << status.detail;
  EXPECT_TRUE(status.detail.ends_with("xxx...")) << status.detail;
}

// The preview of the body is bounded however large or deep the answer is: a
// million elements, or 512 levels (the decode limit), cost a short line.
TEST(FieldStatusSeedTest, APreviewOfAHugeOrDeepBodyIsBounded) {
  json wide = json::array();
  for (int i = 0; i < 1'000'000; ++i) wide.push_back(i);
  const poll_status huge = seed_policy()(json{{"data", wide}});
  EXPECT_EQ(huge.error, jobpoll::errc::decode_error);
  EXPECT_LT(huge.detail.size(), 300u) << huge.detail;

  const std::string deep_text = std::string(512, '[') + std::string(512, ']');
  const poll_status deep = seed_policy()(codec.decode(deep_text));
  EXPECT_EQ(deep.error, jobpoll::errc::decode_error);
  EXPECT_LT(deep.detail.size(), 300u) << deep.detail;
  EXPECT_TRUE(deep.detail.starts_with("no status at /data/status in [[[[")) << deep.detail;
}

TEST(FieldStatusSeedTest, ANullArrayOrObjectStatusIsADecodeError) {
  EXPECT_EQ(classify(seed_policy(), R"({"data":{"status":null}})").detail,
            R"(status at /data/status is not a string, number or boolean: null in {"data":{"status":null}})");
  const poll_status object = classify(seed_policy(), R"({"data":{"status":{"state":"pass"}}})");
  EXPECT_EQ(object.state, job_state::permanent_error);
  EXPECT_EQ(object.error, jobpoll::errc::decode_error);
  EXPECT_EQ(object.detail, R"(status at /data/status is not a string, number or boolean: {"state":"pass"} in )"
                           R"({"data":{"status":{"state":"pass"}}})");
}

TEST(FieldStatusSeedTest, NumberAndBooleanStatusesMatchTheirSpelling) {
  const json_field_status policy("/state", {{"2", "true"}, {"3"}, {"1"}});
  EXPECT_EQ(policy(json{{"state", 1}}).state, job_state::pending);
  EXPECT_EQ(policy(json{{"state", 2}}).state, job_state::succeeded);
  EXPECT_EQ(policy(json{{"state", 2}}).detail, "status \"2\"");
  EXPECT_EQ(policy(json{{"state", true}}).state, job_state::succeeded);
  EXPECT_EQ(policy(json{{"state", 3}}).state, job_state::failed);
  EXPECT_EQ(policy(json{{"state", 2.0}}).detail, "unknown status \"2.0\" at /state (expected one of: 2 | true | 3 | 1)");
}

TEST(FieldStatusSeedTest, TheEmptyPointerReadsTheWholeBody) {
  const json_field_status policy("", {{"done"}, {}, {"busy"}});
  EXPECT_EQ(policy(json("done")).state, job_state::succeeded);
  EXPECT_EQ(policy(json("busy")).state, job_state::pending);
  EXPECT_EQ(policy(json("gone")).detail,
            "unknown status \"gone\" at \"\" (the whole body) (expected one of: done | busy)");
}

// --- the seed's job API -----------------------------------------------------------

TEST(FieldStatusJobApiTest, RunningReportsProgressAndTheEtaAsAHint) {
  const poll_status status =
      classify(job_api_policy(), R"({"job_id":"j-1","tool":"export","status":"running","progress":0.4,)"
                                 R"("eta_seconds":12,"result":null,"error":null})");
  EXPECT_EQ(status.state, job_state::pending);
  EXPECT_EQ(status.detail, "status \"running\"");
  EXPECT_EQ(status.progress, 0.4);
  EXPECT_EQ(status.retry_after, 12s);
}

TEST(FieldStatusJobApiTest, PendingWithoutProgressOrEta) {
  const poll_status status = classify(job_api_policy(), R"({"job_id":"j-1","status":"pending","progress":null})");
  EXPECT_EQ(status.state, job_state::pending);
  EXPECT_EQ(status.detail, "status \"pending\"");
  EXPECT_EQ(status.progress, std::nullopt);
  EXPECT_EQ(status.retry_after, std::nullopt);
}

TEST(FieldStatusJobApiTest, CompletedSucceedsWithoutAHint) {
  const poll_status status =
      classify(job_api_policy(), R"({"status":"completed","progress":1.0,"eta_seconds":0,"result":{"rows":22}})");
  EXPECT_EQ(status.state, job_state::succeeded);
  EXPECT_EQ(status.detail, "status \"completed\"");
  EXPECT_EQ(status.progress, 1.0);
  EXPECT_EQ(status.retry_after, std::nullopt);
}

TEST(FieldStatusJobApiTest, FailedAndCancelledFailWithTheErrorText) {
  const poll_status failed = classify(
      job_api_policy(), R"({"status":"failed","progress":0.4,"eta_seconds":3,"error":"tool crashed: exit 2"})");
  EXPECT_EQ(failed.state, job_state::failed);
  EXPECT_EQ(failed.error, jobpoll::errc::job_failed);
  EXPECT_EQ(failed.detail, "status \"failed\": tool crashed: exit 2");
  EXPECT_EQ(failed.progress, std::nullopt);
  EXPECT_EQ(failed.retry_after, std::nullopt);

  const poll_status cancelled = classify(job_api_policy(), R"({"status":"cancelled"})");
  EXPECT_EQ(cancelled.state, job_state::failed);
  EXPECT_EQ(cancelled.detail, "status \"cancelled\"");
}

TEST(FieldStatusJobApiTest, AFailureDetailThatIsNotAScalarIsShownEncoded) {
  EXPECT_EQ(classify(job_api_policy(), R"({"status":"failed","error":{"code":7,"message":"disk full"}})").detail,
            R"(status "failed": {"code":7,"message":"disk full"})");
  EXPECT_EQ(classify(job_api_policy(), R"({"status":"failed","error":null})").detail, "status \"failed\": null");
  EXPECT_EQ(classify(job_api_policy(), R"({"status":"failed","error":42})").detail, "status \"failed\": 42");
  EXPECT_EQ(classify(job_api_policy(), R"({"status":"failed","error":"line 1\nline 2"})").detail,
            "status \"failed\": line 1\\x0aline 2");
}

TEST(FieldStatusJobApiTest, AnUnknownValueListsEveryExpectedOne) {
  const poll_status status = classify(job_api_policy(), R"({"status":"queued"})");
  EXPECT_EQ(status.state, job_state::permanent_error);
  EXPECT_EQ(status.error, jobpoll::errc::unknown_status);
  EXPECT_EQ(status.detail,
            "unknown status \"queued\" at /status (expected one of: completed | failed | cancelled | pending | running)");
}

TEST(FieldStatusJobApiTest, AnUnknownValueCanBeTakenAsPending) {
  const json_field_status policy = job_api_policy().on_unknown(jobpoll::unknown_is::pending);
  const poll_status status = classify(policy, R"({"status":"queued","progress":0.1,"eta_seconds":30})");
  EXPECT_EQ(status.state, job_state::pending);
  EXPECT_EQ(status.error, jobpoll::error_code{});
  EXPECT_EQ(status.detail,
            "unknown status \"queued\" at /status, taken as pending (expected one of: completed | failed | cancelled "
            "| pending | running)");
  EXPECT_EQ(status.progress, 0.1);
  EXPECT_EQ(status.retry_after, 30s);
  // Known values keep their meaning; a missing status is still an error.
  EXPECT_EQ(classify(policy, R"({"status":"completed"})").state, job_state::succeeded);
  EXPECT_EQ(classify(policy, R"({"state":"completed"})").error, jobpoll::errc::decode_error);
  // And back to the default.
  json_field_status strict = policy;
  strict.on_unknown(jobpoll::unknown_is::error);
  EXPECT_EQ(classify(strict, R"({"status":"queued"})").error, jobpoll::errc::unknown_status);
}

// --- progress -----------------------------------------------------------------------

TEST(FieldStatusProgressTest, APercentageIsScaledAndClamped) {
  const json_field_status policy =
      json_field_status("/status", {{"done"}, {}, {"running"}}).progress_at("/job/percent", 100);
  const auto progress = [&](json percent) {
    return policy(json{{"status", "running"}, {"job", {{"percent", std::move(percent)}}}}).progress;
  };
  EXPECT_EQ(progress(0), 0.0);
  EXPECT_EQ(progress(25), 0.25);
  EXPECT_EQ(progress(62.5), 0.625);
  EXPECT_EQ(progress(100), 1.0);
  EXPECT_EQ(progress(130), 1.0);
  EXPECT_EQ(progress(-5), 0.0);
  EXPECT_EQ(progress("40"), std::nullopt);  // a numeric string is not a number
  EXPECT_EQ(progress(nullptr), std::nullopt);
  EXPECT_EQ(policy(json{{"status", "running"}}).progress, std::nullopt);
}

TEST(FieldStatusProgressTest, AFractionIsClampedToZeroToOne) {
  const json_field_status policy = json_field_status("/status", {{"done"}, {}, {"running"}}).progress_at("/p");
  EXPECT_EQ(policy(json{{"status", "running"}, {"p", 0.75}}).progress, 0.75);
  EXPECT_EQ(policy(json{{"status", "running"}, {"p", 1.5}}).progress, 1.0);
  EXPECT_EQ(policy(json{{"status", "running"}, {"p", -0.1}}).progress, 0.0);
  // Only pending answers report it: succeeded is always 1, failed has none.
  EXPECT_EQ(policy(json{{"status", "done"}, {"p", 0.5}}).progress, 1.0);
}

// --- hint -------------------------------------------------------------------------------

TEST(FieldStatusHintTest, AFractionalNumberOfUnitsIsAnExactWait) {
  const json_field_status seconds = json_field_status("/status", {{"done"}, {}, {"running"}}).hint_at("/eta");
  EXPECT_EQ(seconds(json{{"status", "running"}, {"eta", 2.5}}).retry_after, 2500ms);
  EXPECT_EQ(seconds(json{{"status", "running"}, {"eta", 0}}).retry_after, 0ns);
  EXPECT_EQ(seconds(json{{"status", "running"}, {"eta", 7}}).retry_after, 7s);

  const json_field_status millis =
      json_field_status("/status", {{"done"}, {}, {"running"}}).hint_at("/retry_ms", std::chrono::milliseconds{1});
  EXPECT_EQ(millis(json{{"status", "running"}, {"retry_ms", 1500}}).retry_after, 1500ms);
  EXPECT_EQ(millis(json{{"status", "running"}, {"retry_ms", 0.25}}).retry_after, 250us);
}

TEST(FieldStatusHintTest, NegativeNonNumberAndMissingValuesAreIgnored) {
  const json_field_status policy = json_field_status("/status", {{"done"}, {"failed"}, {"running"}}).hint_at("/eta");
  for (const json& eta : {json(-1), json(-0.5), json("5"), json(nullptr), json(true), json::array({5})}) {
    EXPECT_EQ(policy(json{{"status", "running"}, {"eta", eta}}).retry_after, std::nullopt) << eta;
  }
  EXPECT_EQ(policy(json{{"status", "running"}}).retry_after, std::nullopt);
}

TEST(FieldStatusHintTest, AHugeWaitSaturates) {
  const json_field_status policy = json_field_status("/status", {{"done"}, {}, {"running"}}).hint_at("/eta");
  EXPECT_EQ(policy(json{{"status", "running"}, {"eta", 1e300}}).retry_after, std::chrono::nanoseconds::max());
  EXPECT_EQ(policy(json{{"status", "running"}, {"eta", 9223372037}}).retry_after, std::chrono::nanoseconds::max());
}

TEST(FieldStatusHintTest, OnlyPendingAnswersCarryIt) {
  const json_field_status policy = json_field_status("/status", {{"done"}, {"failed"}, {"running"}}).hint_at("/eta");
  EXPECT_EQ(policy(json{{"status", "done"}, {"eta", 5}}).retry_after, std::nullopt);
  EXPECT_EQ(policy(json{{"status", "failed"}, {"eta", 5}}).retry_after, std::nullopt);
  EXPECT_EQ(policy(json{{"status", "other"}, {"eta", 5}}).retry_after, std::nullopt);
}

// --- constructor and configuration checks -----------------------------------------------

TEST(FieldStatusValidationTest, AMalformedStatusPointerIsRejected) {
  EXPECT_EQ(invalid_argument_message([] { json_field_status("data/status", {{"pass"}, {}, {}}); }),
            "jobpoll::field_status: status pointer must be empty or start with '/', got \"data/status\"");
  EXPECT_EQ(invalid_argument_message([] { json_field_status("/data~2status", {{"pass"}, {}, {}}); }),
            "jobpoll::field_status: status pointer must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/'), got "
            "\"/data~2status\"");
  EXPECT_EQ(invalid_argument_message([] { json_field_status("/data~", {{"pass"}, {}, {}}); }),
            "jobpoll::field_status: status pointer must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/'), got "
            "\"/data~\"");
}

TEST(FieldStatusValidationTest, ThereMustBeASucceededValue) {
  EXPECT_EQ(invalid_argument_message([] { json_field_status("/status", {}); }),
            "jobpoll::field_status: succeeded must list at least one status value, got none");
  EXPECT_EQ(invalid_argument_message([] { json_field_status("/status", {{}, {"failed"}, {"running"}}); }),
            "jobpoll::field_status: succeeded must list at least one status value, got none");
}

TEST(FieldStatusValidationTest, AValueMayBeInOneListOnly) {
  EXPECT_EQ(invalid_argument_message([] { json_field_status("/status", {{"done"}, {"failed", "done"}, {}}); }),
            "jobpoll::field_status: a status value must be in one list only, got \"done\" in both succeeded and failed");
  EXPECT_EQ(invalid_argument_message([] { json_field_status("/status", {{"done"}, {}, {"running", "done"}}); }),
            "jobpoll::field_status: a status value must be in one list only, got \"done\" in both succeeded and "
            "pending");
  EXPECT_EQ(invalid_argument_message([] { json_field_status("/status", {{"done"}, {"x", "stuck"}, {"stuck"}}); }),
            "jobpoll::field_status: a status value must be in one list only, got \"stuck\" in both failed and "
            "pending");
  // Repeating a value in the same list is harmless.
  EXPECT_EQ(json_field_status("/status", {{"done", "done"}, {}, {}})(json{{"status", "done"}}).state,
            job_state::succeeded);
}

TEST(FieldStatusValidationTest, ConfigurationPointersAndNumbersAreChecked) {
  EXPECT_EQ(invalid_argument_message([] { seed_policy().progress_at("progress"); }),
            "jobpoll::field_status: progress pointer must be empty or start with '/', got \"progress\"");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().hint_at("/eta~"); }),
            "jobpoll::field_status: hint pointer must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/'), got "
            "\"/eta~\"");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().failure_detail_at("error"); }),
            "jobpoll::field_status: failure detail pointer must be empty or start with '/', got \"error\"");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().progress_at("/p", 0); }),
            "jobpoll::field_status: progress scale must be finite and > 0, got 0");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().progress_at("/p", -100); }),
            "jobpoll::field_status: progress scale must be finite and > 0, got -100");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().progress_at("/p", std::numeric_limits<double>::infinity()); }),
            "jobpoll::field_status: progress scale must be finite and > 0, got inf");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().hint_at("/eta", 0ns); }),
            "jobpoll::field_status: hint unit must be > 0ns, got 0ns");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().hint_at("/eta", -1s); }),
            "jobpoll::field_status: hint unit must be > 0ns, got -1000000000ns");
}

TEST(FieldStatusValidationTest, ConfigurationChainsOnNamedPolicies) {
  json_field_status policy = seed_policy();
  policy.progress_at("/data/done", 100).hint_at("/data/eta").failure_detail_at("/data/error");
  const poll_status working =
      policy(json{{"data", {{"status", "working"}, {"done", 50}, {"eta", 1.5}, {"error", nullptr}}}});
  EXPECT_EQ(working.progress, 0.5);
  EXPECT_EQ(working.retry_after, 1500ms);
  EXPECT_EQ(policy(json{{"data", {{"status", "fail"}, {"error", "quota"}}}}).detail, "status \"fail\": quota");
}

// --- rules ----------------------------------------------------------------------------

using jobpoll::field_condition;
using jobpoll::field_rule;
using jobpoll::rule_outcome;

/// Google's long-running operations as rules only.
json_field_status lro_rules() {
  return json_field_status::from_rules({
                                           {.when = {field_condition::equals("/done", {"true"}),
                                                     field_condition::present("/error")},
                                            .then = rule_outcome::failed,
                                            .detail = "/error/message"},
                                           {.when = {field_condition::equals("/done", {"true"})},
                                            .then = rule_outcome::succeeded},
                                           {.when = {field_condition::equals("/done", {"false"})},
                                            .then = rule_outcome::pending},
                                       })
      .progress_at("/metadata/progressPercent", 100);
}

/// The same API as a status list on /done plus one rule.
json_field_status lro_lists() {
  return json_field_status("/done", {.succeeded = {"true"}, .failed = {}, .pending = {"false"}})
      .failed_if_present("/error")
      .failure_detail_at("/error/message")
      .progress_at("/metadata/progressPercent", 100);
}

constexpr std::string_view lro_running =
    R"({"name":"operations/7","done":false,"metadata":{"@type":"type.googleapis.com/x.Metadata","progressPercent":40}})";
constexpr std::string_view lro_succeeded =
    R"({"name":"operations/7","done":true,"metadata":{"progressPercent":100},"response":{"rows":22}})";
constexpr std::string_view lro_failed =
    R"({"name":"operations/7","done":true,"metadata":{"progressPercent":60},)"
    R"("error":{"code":7,"message":"Permission denied on resource","details":[]}})";

TEST(FieldStatusRuleTest, LongRunningOperationsAsRulesOnly) {
  const poll_status running = classify(lro_rules(), lro_running);
  EXPECT_EQ(running.state, job_state::pending);
  EXPECT_EQ(running.detail, "/done \"false\"");
  EXPECT_EQ(running.progress, 0.4);

  const poll_status succeeded = classify(lro_rules(), lro_succeeded);
  EXPECT_EQ(succeeded.state, job_state::succeeded);
  EXPECT_EQ(succeeded.detail, "/done \"true\"");

  const poll_status failed = classify(lro_rules(), lro_failed);
  EXPECT_EQ(failed.state, job_state::failed);
  EXPECT_EQ(failed.error, jobpoll::errc::job_failed);
  EXPECT_EQ(failed.detail, "/done \"true\" and /error present: Permission denied on resource");
}

TEST(FieldStatusRuleTest, LongRunningOperationsAsListsAndOneRule) {
  const poll_status running = classify(lro_lists(), lro_running);
  EXPECT_EQ(running.state, job_state::pending);
  EXPECT_EQ(running.detail, "status \"false\"");
  EXPECT_EQ(running.progress, 0.4);
  EXPECT_EQ(classify(lro_lists(), lro_succeeded).state, job_state::succeeded);
  const poll_status failed = classify(lro_lists(), lro_failed);
  EXPECT_EQ(failed.state, job_state::failed);
  // A failed rule without a detail pointer of its own shows the failure detail.
  EXPECT_EQ(failed.detail, "/error present: Permission denied on resource");
}

TEST(FieldStatusRuleTest, ANullCountsAsAbsent) {
  EXPECT_EQ(classify(lro_rules(), R"({"done":true,"error":null,"response":{}})").state, job_state::succeeded);
  const json_field_status policy = json_field_status::from_rules(
      {{.when = {field_condition::absent("/error"), field_condition::present("/result")},
        .then = rule_outcome::succeeded}});
  EXPECT_EQ(policy(json{{"error", nullptr}, {"result", json::array()}}).state, job_state::succeeded);
  // An empty object or array, a false or a 0 is a value, not an absence.
  for (const json& value : {json::object(), json::array(), json(false), json(0), json("")}) {
    EXPECT_EQ(policy(json{{"error", value}, {"result", 1}}).error, jobpoll::errc::unknown_status) << value;
  }
}

TEST(FieldStatusRuleTest, EqualsMatchesAnyListedTextExactly) {
  const json_field_status policy = json_field_status::from_rules(
      {{.when = {field_condition::equals("/state", {"DONE", "2", "true"})}, .then = rule_outcome::succeeded},
       {.when = {field_condition::equals("/state", {"BUSY"})}, .then = rule_outcome::pending}});
  EXPECT_EQ(policy(json{{"state", "DONE"}}).detail, R"(/state "DONE" | "2" | "true")");
  EXPECT_EQ(policy(json{{"state", 2}}).state, job_state::succeeded);
  EXPECT_EQ(policy(json{{"state", true}}).state, job_state::succeeded);
  EXPECT_EQ(policy(json{{"state", "BUSY"}}).state, job_state::pending);
  for (const json& value : {json("done"), json(2.0), json("true "), json(nullptr), json::array({"DONE"})}) {
    EXPECT_EQ(policy(json{{"state", value}}).error, jobpoll::errc::unknown_status) << value;
  }
}

TEST(FieldStatusRuleTest, TheFirstMatchingRuleDecides) {
  json_field_status policy("/status", {{"done"}, {"failed"}, {"running"}});
  policy.succeeded_if_present("/output").failed_if_present("/error");
  // Both rules hold: the first added wins, before the status list.
  const poll_status both = policy(json{{"status", "failed"}, {"output", "x"}, {"error", "y"}});
  EXPECT_EQ(both.state, job_state::succeeded);
  EXPECT_EQ(both.detail, "/output present");
  EXPECT_EQ(policy(json{{"status", "done"}, {"error", "y"}}).detail, "/error present");

  json_field_status reversed("/status", {{"done"}, {"failed"}, {"running"}});
  reversed.failed_if_present("/error").succeeded_if_present("/output");
  EXPECT_EQ(reversed(json{{"status", "failed"}, {"output", "x"}, {"error", "y"}}).detail, "/error present");
}

TEST(FieldStatusRuleTest, RulesComeBeforeTheListsAndTheUnknownRuleStays) {
  const json_field_status policy = json_field_status("/status", {{"done"}, {"failed"}, {"running"}})
                                       .rule({.when = {field_condition::equals("/status", {"queued"}),
                                                       field_condition::absent("/worker")},
                                              .then = rule_outcome::pending,
                                              .detail = "/position"})
                                       .progress_at("/p")
                                       .hint_at("/eta");
  const poll_status queued = policy(json{{"status", "queued"}, {"position", 3}, {"p", 0.1}, {"eta", 4}});
  EXPECT_EQ(queued.state, job_state::pending);
  EXPECT_EQ(queued.detail, R"(/status "queued" and /worker absent: 3)");
  EXPECT_EQ(queued.progress, 0.1);
  EXPECT_EQ(queued.retry_after, 4s);
  // The rule does not hold: the lists decide, and "queued" is in none.
  const poll_status assigned = policy(json{{"status", "queued"}, {"worker", "w-1"}});
  EXPECT_EQ(assigned.state, job_state::permanent_error);
  EXPECT_EQ(assigned.error, jobpoll::errc::unknown_status);
  EXPECT_EQ(assigned.detail, "unknown status \"queued\" at /status (expected one of: done | failed | running)");
  EXPECT_EQ(policy(json{{"status", "running"}}).detail, "status \"running\"");
}

TEST(FieldStatusRuleTest, ARuleMayDecideABodyWithoutAStatus) {
  const json_field_status policy = json_field_status("/status", {{"done"}, {}, {"running"}}).failed_if_present("/fault");
  EXPECT_EQ(policy(json{{"fault", "disk full"}}).state, job_state::failed);
  EXPECT_EQ(policy(json{{"fault", "disk full"}}).detail, "/fault present");
  EXPECT_EQ(policy(json{{"other", 1}}).error, jobpoll::errc::decode_error);
}

TEST(FieldStatusRuleTest, ADetailPointerAddsItsTextOrItsEncoding) {
  const auto policy_with = [](rule_outcome outcome) {
    return json_field_status::from_rules(
        {{.when = {field_condition::present("/x")}, .then = outcome, .detail = "/why"},
         {.when = {field_condition::present("/ok")}, .then = rule_outcome::succeeded}});
  };
  EXPECT_EQ(policy_with(rule_outcome::succeeded)(json{{"x", 1}, {"why", "cached"}}).detail, "/x present: cached");
  EXPECT_EQ(policy_with(rule_outcome::pending)(json{{"x", 1}, {"why", 3}}).detail, "/x present: 3");
  EXPECT_EQ(policy_with(rule_outcome::failed)(json{{"x", 1}, {"why", {{"code", 7}}}}).detail,
            R"(/x present: {"code":7})");
  EXPECT_EQ(policy_with(rule_outcome::failed)(json{{"x", 1}}).detail, "/x present");
}

TEST(FieldStatusRuleTest, AnAnswerNoRuleMatchesInARulesOnlyPolicyIsUnknown) {
  const poll_status status = classify(lro_rules(), R"({"name":"operations/7"})");
  EXPECT_EQ(status.state, job_state::permanent_error);
  EXPECT_EQ(status.error, jobpoll::errc::unknown_status);
  EXPECT_EQ(status.detail,
            R"(no rule matched {"name":"operations/7"} (rules: /done "true" and /error present -> failed; )"
            R"(/done "true" -> succeeded; /done "false" -> pending))");

  const json_field_status lenient = lro_rules().on_unknown(jobpoll::unknown_is::pending);
  const poll_status pending = classify(lenient, R"({"name":"operations/7","metadata":{"progressPercent":5}})");
  EXPECT_EQ(pending.state, job_state::pending);
  EXPECT_EQ(pending.progress, 0.05);
  EXPECT_EQ(pending.detail,
            R"(no rule matched, taken as pending (rules: /done "true" and /error present -> failed; )"
            R"(/done "true" -> succeeded; /done "false" -> pending))");
}

TEST(FieldStatusRuleTest, RulesAreValidated) {
  EXPECT_EQ(invalid_argument_message([] { seed_policy().failed_if_present("error"); }),
            "jobpoll::field_status: failed_if_present pointer must be empty or start with '/', got \"error\"");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().succeeded_if_present("/a~"); }),
            "jobpoll::field_status: succeeded_if_present pointer must follow every '~' with 0 or 1 (~0 is '~', ~1 is "
            "'/'), got \"/a~\"");
  EXPECT_EQ(invalid_argument_message([] {
              seed_policy().failed_if_present("/error").rule(
                  {.when = {field_condition::present("/a"), field_condition::absent("b")}, .then = rule_outcome::failed});
            }),
            "jobpoll::field_status: rule 2 condition 2 pointer must be empty or start with '/', got \"b\"");
  EXPECT_EQ(invalid_argument_message([] {
              seed_policy().rule({.when = {field_condition::present("/a")}, .then = rule_outcome::failed, .detail = "x"});
            }),
            "jobpoll::field_status: rule 1 detail pointer must be empty or start with '/', got \"x\"");
  EXPECT_EQ(invalid_argument_message([] { seed_policy().rule({.when = {}, .then = rule_outcome::failed}); }),
            "jobpoll::field_status: rule 1 must have a condition, got none");
  EXPECT_EQ(invalid_argument_message([] {
              seed_policy().rule({.when = {field_condition::equals("/s", {})}, .then = rule_outcome::pending});
            }),
            "jobpoll::field_status: rule 1 condition 1 must list a value to equal, got none at /s");
}

TEST(FieldStatusRuleTest, ARulesOnlyPolicyNeedsARuleThatSucceeds) {
  EXPECT_EQ(invalid_argument_message([] { json_field_status::from_rules({}); }),
            "jobpoll::field_status: a policy of rules only needs a rule that ends in succeeded, got 0 rules");
  EXPECT_EQ(invalid_argument_message([] {
              json_field_status::from_rules({{.when = {field_condition::present("/error")}, .then = rule_outcome::failed},
                                             {.when = {field_condition::absent("/error")}, .then = rule_outcome::pending}});
            }),
            "jobpoll::field_status: a policy of rules only needs a rule that ends in succeeded, got 2 rules");
  // The rules are checked first, with their numbers.
  EXPECT_EQ(invalid_argument_message([] {
              json_field_status::from_rules({{.when = {field_condition::present("e")}, .then = rule_outcome::succeeded}});
            }),
            "jobpoll::field_status: rule 1 condition 1 pointer must be empty or start with '/', got \"e\"");
}

TEST(FieldStatusRuleTest, APolicyWithRulesIsACopyableValue) {
  const json_field_status original = lro_rules();
  json_field_status copy = original;
  copy.failed_if_present("/name");  // after the others: only a body that none of them matches
  EXPECT_EQ(classify(original, R"({"name":"operations/7"})").error, jobpoll::errc::unknown_status);
  EXPECT_EQ(classify(copy, R"({"name":"operations/7"})").state, job_state::failed);
  EXPECT_EQ(classify(copy, lro_running).state, job_state::pending);
}

}  // namespace
