// Request templates: placeholder expansion, encoding, and the errors that
// name a placeholder without a value.

#include <system_error>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/job_description.hpp>

namespace {

using jobpoll::expand_template;
using jobpoll::template_part;
using testing::HasSubstr;

TEST(ExpandTemplate, PercentEncodesValuesInUrlsOnly) {
  const jobpoll::job_params values{{"site", "MAIN 2/3&x=é"}, {"handle", "a+b"}};
  EXPECT_EQ(expand_template("https://api.test/load?site={site}&h={handle}", values, template_part::url),
            "https://api.test/load?site=MAIN%202%2F3%26x%3D%C3%A9&h=a%2Bb");
  EXPECT_EQ(expand_template(R"({"site":"{site}"})", values, template_part::body), R"({"site":"MAIN 2/3&x=é"})");
  EXPECT_EQ(expand_template("Bearer {handle}", values, template_part::header), "Bearer a+b");
}

TEST(ExpandTemplate, ReservedExpansionInsertsTheValueAsIs) {
  const jobpoll::job_params values{{"handle", "/v1/jobs/7?x=1"}};
  EXPECT_EQ(expand_template("{+handle}", values, template_part::url), "/v1/jobs/7?x=1");
  EXPECT_EQ(expand_template("{handle}", values, template_part::url), "%2Fv1%2Fjobs%2F7%3Fx%3D1");
}

TEST(ExpandTemplate, BracesAroundAnythingButAPlainNameAreText) {
  const jobpoll::job_params values{{"tool", "blast"}};
  EXPECT_EQ(expand_template(R"({"tool":"{tool}","params":{},"n":{ "a": 1 }})", values, template_part::body),
            R"({"tool":"blast","params":{},"n":{ "a": 1 }})");
  EXPECT_EQ(expand_template("{tool", values, template_part::body), "{tool");
  EXPECT_EQ(expand_template("}{tool}{", values, template_part::body), "}blast{");
  EXPECT_EQ(expand_template("{{tool}}", values, template_part::body), "{blast}");
}

TEST(ExpandTemplate, APlaceholderWithoutAValueIsAnErrorNamingItAndTheKnownOnes) {
  const jobpoll::job_params values{{"end", "2"}, {"start", "1"}};
  try {
    expand_template("https://api.test/load?site={site}", values, template_part::url);
    FAIL() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr(R"(URL template "https://api.test/load?site={site}" uses {site}, which has no value (known: end, start))"));
  }
  try {
    expand_template("X-Token: {+token}", {}, template_part::header);
    FAIL() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("header template \"X-Token: {+token}\" uses {+token}, which has no value (known: none)"));
  }
}

}  // namespace
