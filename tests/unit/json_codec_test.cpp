#include "jobpoll/codec/json.hpp"

#if defined(ASIO_VERSION)
#error "the JSON codec must not include Asio"
#endif

#include <gtest/gtest.h>

#include "policy_helpers.hpp"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace {

using namespace jobpoll_test;

using json = nlohmann::json;

static_assert(jobpoll::codec<jobpoll::json_codec>);
static_assert(std::is_same_v<jobpoll::codec_value_t<jobpoll::json_codec>, json>);

const jobpoll::json_codec codec{};

/// The std::system_error that `decode(body)` throws.
std::system_error decode_error(std::string_view body) {
  try {
    codec.decode(body);
  } catch (const std::system_error& error) {
    return error;
  }
  ADD_FAILURE() << "no std::system_error thrown for body \"" << body << '"';
  return std::system_error(std::error_code{});
}

// --- decode / encode ---------------------------------------------------------

TEST(JsonCodecDecodeTest, ParsesAJsonText) {
  EXPECT_EQ(codec.decode(R"({"data":{"hash":"1aab","status":"working"}})"),
            json({{"data", {{"hash", "1aab"}, {"status", "working"}}}}));
  EXPECT_EQ(codec.decode(" [1, 2.5, \"x\", null, true] \n"), json::parse(R"([1,2.5,"x",null,true])"));
  EXPECT_EQ(codec.decode("42"), json(42));
  EXPECT_EQ(codec.decode("\xEF\xBB\xBF{}"), json::object());  // UTF-8 byte order mark
}

TEST(JsonCodecDecodeTest, AnEmptyBodyIsADecodeError) {
  const auto error = decode_error("");
  EXPECT_EQ(error.code(), jobpoll::errc::decode_error);
  EXPECT_STREQ(error.what(), "empty body is not JSON: response could not be decoded");
}

TEST(JsonCodecDecodeTest, ASyntaxErrorSaysWhatWasFoundWhere) {
  const auto error = decode_error(R"({"a":x})");
  EXPECT_EQ(error.code(), jobpoll::errc::decode_error);
  EXPECT_STREQ(error.what(),
               "not JSON: parse error at line 1, column 6: syntax error while parsing value - invalid literal; "
               "last read: '\"a\":x': response could not be decoded");
}

TEST(JsonCodecDecodeTest, AnHtmlErrorPageIsQuotedOnlyAroundTheError) {
  const std::string page = "<html><body>" + std::string(300, 'x') + "</body></html>";
  const auto error = decode_error(page);
  EXPECT_EQ(error.code(), jobpoll::errc::decode_error);
  EXPECT_STREQ(error.what(),
               "not JSON: parse error at line 1, column 1: syntax error while parsing value - invalid literal; "
               "last read: '<': response could not be decoded");
}

TEST(JsonCodecDecodeTest, RejectsWhitespaceTruncationTrailingTextBadUtf8AndHugeNumbers) {
  for (const std::string_view body : {" \n", "[1,2", "{} x", "\"\xff\"", "1e400"}) {
    const auto error = decode_error(body);
    EXPECT_EQ(error.code(), jobpoll::errc::decode_error) << body;
    EXPECT_TRUE(std::string_view(error.what()).starts_with("not JSON: ")) << error.what();
  }
  EXPECT_STREQ(decode_error("{} x").what(),
               "not JSON: parse error at line 1, column 4: syntax error while parsing value - invalid literal; "
               "last read: '{} x'; expected end of input: response could not be decoded");
  EXPECT_STREQ(decode_error("1e400").what(),
               "not JSON: number overflow parsing '1e400' at byte 0: response could not be decoded");
  // nlohmann names no position for an overflow: the codec finds it, outside strings.
  EXPECT_STREQ(decode_error(R"({"a": "1e400", "b": [1, -2.5e-3, 1e400]})").what(),
               "not JSON: number overflow parsing '1e400' at byte 31: response could not be decoded");
  // Raw bytes the parser quotes are escaped, so the message stays one printable line.
  EXPECT_STREQ(decode_error("\"\xff\"").what(),
               "not JSON: parse error at line 1, column 2: syntax error while parsing value - invalid string: "
               "ill-formed UTF-8 byte; last read: '\"\\xff': response could not be decoded");
}

TEST(JsonCodecEncodeTest, WritesCompactJsonThatDecodesToTheSameValue) {
  const json value = {{"criteria", {{"site", "MAIN"}, {"limit", 100}, {"ratio", 0.5}}}, {"tags", {"a", "b"}}};
  EXPECT_EQ(codec.encode(value), R"({"criteria":{"limit":100,"ratio":0.5,"site":"MAIN"},"tags":["a","b"]})");
  EXPECT_EQ(codec.decode(codec.encode(value)), value);
  EXPECT_EQ(codec.encode(json()), "null");
  EXPECT_EQ(codec.content_type(), "application/json");
}

// --- find ---------------------------------------------------------------------

const json document = json::parse(R"({
  "data": {"status": "pass", "items": [{"id": "a"}, {"id": "b"}]},
  "a/b": 1, "m~n": 2, "": 3, "nothing": null
})");

TEST(JsonCodecFindTest, ReturnsTheValueAtAPointer) {
  EXPECT_EQ(codec.find(document, ""), &document);
  ASSERT_NE(codec.find(document, "/data/status"), nullptr);
  EXPECT_EQ(*codec.find(document, "/data/status"), "pass");
  EXPECT_EQ(codec.find(document, "/data/status"), &document["data"]["status"]);
  ASSERT_NE(codec.find(document, "/nothing"), nullptr);
  EXPECT_TRUE(codec.find(document, "/nothing")->is_null());
}

TEST(JsonCodecFindTest, WalksArrayIndices) {
  ASSERT_NE(codec.find(document, "/data/items/1/id"), nullptr);
  EXPECT_EQ(*codec.find(document, "/data/items/1/id"), "b");
  EXPECT_EQ(*codec.find(document, "/data/items/0"), json({{"id", "a"}}));
}

TEST(JsonCodecFindTest, UnescapesTildeZeroAndTildeOne) {
  ASSERT_NE(codec.find(document, "/a~1b"), nullptr);
  EXPECT_EQ(*codec.find(document, "/a~1b"), 1);
  ASSERT_NE(codec.find(document, "/m~0n"), nullptr);
  EXPECT_EQ(*codec.find(document, "/m~0n"), 2);
  ASSERT_NE(codec.find(document, "/"), nullptr);  // the member named ""
  EXPECT_EQ(*codec.find(document, "/"), 3);
}

TEST(JsonCodecFindTest, ReturnsNullptrWhenNothingIsThere) {
  for (const std::string_view pointer :
       {"/missing", "/data/missing", "/data/status/deeper", "/data/items/2", "/data/items/-", "/data/items/01",
        "/data/items/x", "/data/items/99999999999999999999999", "/nothing/x", "/a/b", "/m~1n"}) {
    EXPECT_EQ(codec.find(document, pointer), nullptr) << pointer;
  }
  EXPECT_EQ(codec.find(json(), "/x"), nullptr);
}

TEST(JsonCodecFindTest, AMalformedPointerThrowsNamingIt) {
  EXPECT_EQ(invalid_argument_message([] { codec.find(document, "data/status"); }),
            "jobpoll::json_codec: malformed JSON pointer (it must be empty or start with '/'), got \"data/status\"");
  EXPECT_EQ(invalid_argument_message([] { codec.find(document, "/a~2b"); }),
            "jobpoll::json_codec: malformed JSON pointer ('~' must be followed by '0' or '1'), got \"/a~2b\"");
  EXPECT_EQ(invalid_argument_message([] { codec.find(document, "/a~"); }),
            "jobpoll::json_codec: malformed JSON pointer ('~' must be followed by '0' or '1'), got \"/a~\"");
  // Whatever the document holds: the walk would stop at /missing first.
  EXPECT_EQ(invalid_argument_message([] { codec.find(document, "/missing/a~2"); }),
            "jobpoll::json_codec: malformed JSON pointer ('~' must be followed by '0' or '1'), got \"/missing/a~2\"");
}

// --- text / number --------------------------------------------------------------

TEST(JsonCodecTextTest, SpellsScalarsAndRefusesTheRest) {
  EXPECT_EQ(codec.text(json("working")), "working");
  EXPECT_EQ(codec.text(json("")), "");
  EXPECT_EQ(codec.text(json("say \"hi\"")), "say \"hi\"");
  EXPECT_EQ(codec.text(json(42)), "42");
  EXPECT_EQ(codec.text(json(-7)), "-7");
  EXPECT_EQ(codec.text(json(18446744073709551615ULL)), "18446744073709551615");
  EXPECT_EQ(codec.text(json::parse("42")), "42");
  EXPECT_EQ(codec.text(json::parse("42.0")), "42.0");
  EXPECT_EQ(codec.text(json(0.5)), "0.5");
  EXPECT_EQ(codec.text(json(1e300)), "1e+300");
  EXPECT_EQ(codec.text(json(true)), "true");
  EXPECT_EQ(codec.text(json(false)), "false");
  EXPECT_EQ(codec.text(json()), std::nullopt);
  EXPECT_EQ(codec.text(json::array({1})), std::nullopt);
  EXPECT_EQ(codec.text(json::object()), std::nullopt);
}

TEST(JsonCodecNumberTest, ReadsIntegersAndFloatsButNotNumericStrings) {
  EXPECT_EQ(codec.number(json(42)), 42.0);
  EXPECT_EQ(codec.number(json(-3)), -3.0);
  EXPECT_EQ(codec.number(json(7U)), 7.0);
  EXPECT_EQ(codec.number(json(2.5)), 2.5);
  EXPECT_EQ(codec.number(json("42")), std::nullopt);
  EXPECT_EQ(codec.number(json(true)), std::nullopt);
  EXPECT_EQ(codec.number(json()), std::nullopt);
  EXPECT_EQ(codec.number(json::array({1})), std::nullopt);
  EXPECT_EQ(codec.number(json::object()), std::nullopt);
}

// --- append_elements --------------------------------------------------------------

TEST(JsonCodecAppendTest, AppendsTheElementsOfEachPage) {
  json all = codec.empty_array();
  EXPECT_EQ(all, json::array());
  EXPECT_EQ(codec.append_elements(all, json::parse(R"([{"id":1},{"id":2}])")), 2U);
  EXPECT_EQ(codec.append_elements(all, json::array()), 0U);
  EXPECT_EQ(codec.append_elements(all, json::parse(R"([{"id":3}])")), 1U);
  EXPECT_EQ(all, json::parse(R"([{"id":1},{"id":2},{"id":3}])"));
}

TEST(JsonCodecAppendTest, AppendsAnArrayToItself) {
  json all = json::parse("[1,2]");
  EXPECT_EQ(codec.append_elements(all, all), 2U);
  EXPECT_EQ(all, json::parse("[1,2,1,2]"));
}

TEST(JsonCodecAppendTest, ANonArrayThrowsWithItsTypeAndValue) {
  json all = json::parse("[0]");
  EXPECT_EQ(invalid_argument_message([&] { codec.append_elements(all, json::parse(R"({"items":[1]})")); }),
            "jobpoll::json_codec: append_elements expected an array as the source, got object: {\"items\":[1]}");
  EXPECT_EQ(invalid_argument_message([&] { codec.append_elements(all, json()); }),
            "jobpoll::json_codec: append_elements expected an array as the source, got null: null");
  EXPECT_EQ(invalid_argument_message([&] { codec.append_elements(all, json(std::string(300, 'x'))); }),
            "jobpoll::json_codec: append_elements expected an array as the source, got string: \"" +
                std::string(199, 'x') + "...");
  json target = json::object();
  EXPECT_EQ(invalid_argument_message([&] { codec.append_elements(target, json::array({1})); }),
            "jobpoll::json_codec: append_elements expected an array as the target, got object: {}");
  EXPECT_EQ(all, json::parse("[0]"));
  EXPECT_EQ(target, json::object());
}

}  // namespace
