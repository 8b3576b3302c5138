#include "jobpoll/retry_after.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace {

using namespace std::chrono;

constexpr sys_seconds at(year_month_day date, seconds time_of_day = 0s) { return sys_days{date} + time_of_day; }

/// 1994-11-06 08:49:37 UTC, the date in RFC 9110's examples.
constexpr sys_seconds rfc_example = at(1994y / November / 6, 8h + 49min + 37s);

std::optional<seconds> retry_after(std::string_view value, system_clock::time_point now) {
  return jobpoll::parse_retry_after(value, now);
}

// --- delay-seconds ------------------------------------------------------------

TEST(RetryAfterSecondsTest, ParsesDelaySeconds) {
  const system_clock::time_point now = rfc_example;
  EXPECT_EQ(retry_after("120", now), 120s);
  EXPECT_EQ(retry_after("0", now), 0s);
  EXPECT_EQ(retry_after("007", now), 7s);
}

TEST(RetryAfterSecondsTest, IgnoresSurroundingSpacesAndTabs) {
  const system_clock::time_point now = rfc_example;
  EXPECT_EQ(retry_after("  120", now), 120s);
  EXPECT_EQ(retry_after("120 \t", now), 120s);
  EXPECT_EQ(retry_after("\t 5 \t", now), 5s);
}

TEST(RetryAfterSecondsTest, SaturatesHugeValuesAtWhatNanosecondsCanHold) {
  const system_clock::time_point now = rfc_example;
  static_assert(jobpoll::max_retry_after == 9'223'372'036s);
  EXPECT_EQ(retry_after("9223372036", now), jobpoll::max_retry_after);
  EXPECT_EQ(retry_after("9223372035", now), 9'223'372'035s);
  EXPECT_EQ(retry_after("9223372037", now), jobpoll::max_retry_after);
  EXPECT_EQ(retry_after("99999999999999999999999999999999999999", now), jobpoll::max_retry_after);
  // The saturated value converts to nanoseconds without overflow.
  EXPECT_EQ(duration_cast<nanoseconds>(jobpoll::max_retry_after).count(), 9'223'372'036'000'000'000);
}

TEST(RetryAfterSecondsTest, RejectsAnythingButDigits) {
  const system_clock::time_point now = rfc_example;
  for (const std::string_view value :
       {"", " ", "\t", "-1", "+1", "1.5", "1e3", "12 3", "0x10", "120s", "abc", "١٢", "1\n", "\n1", "\v1"}) {
    EXPECT_EQ(retry_after(value, now), std::nullopt) << '"' << value << '"';
  }
}

// --- HTTP-dates -------------------------------------------------------------------

TEST(RetryAfterHttpDateTest, ParsesAllThreeFormsToTheSameInstant) {
  const system_clock::time_point now = rfc_example;
  for (const std::string_view value :
       {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        "Sun Nov 06 08:49:37 1994"}) {
    EXPECT_EQ(jobpoll::parse_http_date(value, now), system_clock::time_point{rfc_example}) << value;
  }
}

TEST(RetryAfterHttpDateTest, ParsesEveryMonthAndTwoDigitAsctimeDays) {
  const std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (unsigned m = 1; m <= 12; ++m) {
    const std::string name{months[m - 1]};
    const system_clock::time_point expected = at(2023y / month{m} / 15, 23h + 59min + 59s);
    EXPECT_EQ(jobpoll::parse_http_date("Mon, 15 " + name + " 2023 23:59:59 GMT"), expected) << name;
    EXPECT_EQ(jobpoll::parse_http_date("Mon " + name + " 15 23:59:59 2023"), expected) << name;
  }
}

TEST(RetryAfterHttpDateTest, AcceptsLeapDaysAndLeapSeconds) {
  EXPECT_EQ(jobpoll::parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            system_clock::time_point{at(2024y / February / 29)});
  // 23:59:60 (RFC 5322 time-of-day) is taken as the next day's first second.
  EXPECT_EQ(jobpoll::parse_http_date("Sun, 31 Dec 1995 23:59:60 GMT"),
            system_clock::time_point{at(1996y / January / 1)});
}

TEST(RetryAfterHttpDateTest, DayNameIsCheckedForSpellingNotAgainstTheDate) {
  EXPECT_EQ(jobpoll::parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT"), system_clock::time_point{rfc_example});
  EXPECT_EQ(jobpoll::parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT"), std::nullopt);
}

TEST(RetryAfterHttpDateTest, TwoDigitYearsAreAtMostFiftyYearsAhead) {
  const system_clock::time_point mid_2024 = at(2024y / June / 1);
  EXPECT_EQ(jobpoll::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", mid_2024),
            system_clock::time_point{rfc_example});
  EXPECT_EQ(jobpoll::parse_http_date("Monday, 15-May-23 00:00:00 GMT", mid_2024),
            system_clock::time_point{at(2023y / May / 15)});
  // 2074-01-01 is less than 50 years after mid-2024; 2074-12-01 is more, so it is 1974.
  EXPECT_EQ(jobpoll::parse_http_date("Monday, 01-Jan-74 00:00:00 GMT", mid_2024),
            system_clock::time_point{at(2074y / January / 1)});
  EXPECT_EQ(jobpoll::parse_http_date("Sunday, 01-Dec-74 00:00:00 GMT", mid_2024),
            system_clock::time_point{at(1974y / December / 1)});
  // Late in a century, small two-digit years belong to the next one.
  EXPECT_EQ(jobpoll::parse_http_date("Monday, 10-Mar-10 00:00:00 GMT", at(2090y / January / 1)),
            system_clock::time_point{at(2110y / March / 10)});
}

TEST(RetryAfterHttpDateTest, TwoDigitLeapDayIsValidatedInTheResolvedCentury) {
  EXPECT_EQ(jobpoll::parse_http_date("Tuesday, 29-Feb-00 00:00:00 GMT", at(2024y / June / 1)),
            system_clock::time_point{at(2000y / February / 29)});
  // Seen from 1930, "00" is 1900, which had no Feb 29.
  EXPECT_EQ(jobpoll::parse_http_date("Thursday, 29-Feb-00 00:00:00 GMT", at(1930y / June / 1)), std::nullopt);
}

TEST(RetryAfterHttpDateTest, RejectsMalformedAndImpossibleDates) {
  for (const std::string_view value : {
           "",
           "Sun, 06 Nov 1994 08:49:37",         // no zone
           "Sun, 06 Nov 1994 08:49:37 UTC",     // zone must be GMT
           "Sun, 06 Nov 1994 08:49:37 gmt",     // case-sensitive
           "sun, 06 Nov 1994 08:49:37 GMT",     // case-sensitive day name
           "Sun, 06 nov 1994 08:49:37 GMT",     // case-sensitive month
           "Sun, 06 Foo 1994 08:49:37 GMT",     // no such month
           "Sun 06 Nov 1994 08:49:37 GMT",      // missing comma
           "Sun,  06 Nov 1994 08:49:37 GMT",    // double space
           "Sun, 6 Nov 1994 08:49:37 GMT",      // day must be 2 digits
           "Sun, 06 Nov 94 08:49:37 GMT",       // year must be 4 digits here
           "Sun, 06 Nov 19945 08:49:37 GMT",    // year too long
           "Sun, 06 Nov 1994 8:49:37 GMT",      // hour must be 2 digits
           "Sun, 06 Nov 1994 08:49 GMT",        // no seconds
           "Sun, 06 Nov 1994 08:49:37 GMT x",   // trailing text
           "Sun, 30 Feb 1994 08:49:37 GMT",     // Feb 30
           "Thu, 29 Feb 2023 00:00:00 GMT",     // not a leap year
           "Sun, 31 Apr 1994 08:49:37 GMT",     // April has 30 days
           "Sun, 00 Nov 1994 08:49:37 GMT",     // day 0
           "Sun, 32 Nov 1994 08:49:37 GMT",     // day 32
           "Sun, 06 Nov 1994 24:00:00 GMT",     // bad hour
           "Sun, 06 Nov 1994 08:60:00 GMT",     // bad minute
           "Sun, 06 Nov 1994 08:49:61 GMT",     // bad second
           "Sun, 06 Nov 1994 0a:49:37 GMT",     // not a digit
           "Sun, 06-Nov-94 08:49:37 GMT",       // RFC 850 needs the long day name
           "Sunday, 06-Nov-1994 08:49:37 GMT",  // RFC 850 year is 2 digits
           "Sunday, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate needs the short day name
           "Sun Nov 6 08:49:37 1994",           // asctime day is 2 digits or space + digit
           "Sun Nov  6 08:49:37 94",            // asctime year is 4 digits
           "Sun Nov  6 08:49:37 1994 GMT",      // asctime has no zone
           "Sun Nov 31 08:49:37 1994",          // Nov 31
       }) {
    EXPECT_EQ(jobpoll::parse_http_date(value), std::nullopt) << value;
    EXPECT_EQ(retry_after(value, rfc_example), std::nullopt) << value;
  }
}

TEST(RetryAfterHttpDateTest, DatesOutsideTheClockRangeAreNotTimePoints) {
  // system_clock counts nanoseconds in an int64 here: years 1678 to 2261 only.
  static_assert(std::is_same_v<system_clock::duration, nanoseconds>);
  EXPECT_EQ(jobpoll::parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"), std::nullopt);
  EXPECT_EQ(jobpoll::parse_http_date("Sat, 01 Jan 0000 00:00:00 GMT"), std::nullopt);
  EXPECT_EQ(jobpoll::parse_http_date("Fri, 11 Apr 2262 00:00:00 GMT"),
            system_clock::time_point{at(2262y / April / 11)});
}

// --- Retry-After as a date --------------------------------------------------------

TEST(RetryAfterDateTest, WaitIsTheTimeUntilTheDate) {
  const system_clock::time_point now = rfc_example - 90s;
  EXPECT_EQ(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 90s);
  EXPECT_EQ(retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 90s);
  EXPECT_EQ(retry_after("Sun Nov  6 08:49:37 1994", now), 90s);
  EXPECT_EQ(retry_after(" \tSun, 06 Nov 1994 08:49:37 GMT\t ", now), 90s);
  EXPECT_EQ(retry_after("Mon, 07 Nov 1994 08:49:37 GMT", now), 90s + 24h);
}

TEST(RetryAfterDateTest, FractionalWaitsRoundUp) {
  EXPECT_EQ(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example - 89'999ms), 90s);
  EXPECT_EQ(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example - 1ns), 1s);
}

TEST(RetryAfterDateTest, DateNowOrInThePastGivesZero) {
  EXPECT_EQ(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example), 0s);
  EXPECT_EQ(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example + 1ns), 0s);
  EXPECT_EQ(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_example + 24h), 0s);
  EXPECT_EQ(retry_after("Sat, 01 Jan 0000 00:00:00 GMT", rfc_example), 0s);
}

TEST(RetryAfterDateTest, FarFutureDatesSaturate) {
  EXPECT_EQ(retry_after("Fri, 31 Dec 9999 23:59:59 GMT", rfc_example), jobpoll::max_retry_after);
}

}  // namespace
