#include "jobpoll/codec/json.hpp"

#if defined(ASIO_VERSION)
#error "the JSON codec must not include Asio"
#endif

#include <gtest/gtest.h>

#include "policy_helpers.hpp"

#include <chrono>
#include <concepts>
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
  return std::system_error(jobpoll::error_code{});
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
               "not JSON: number overflow parsing '1e400' at byte 33: response could not be decoded");
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
            "jobpoll::json_codec: malformed JSON pointer (it must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/')), got \"/a~2b\"");
  EXPECT_EQ(invalid_argument_message([] { codec.find(document, "/a~"); }),
            "jobpoll::json_codec: malformed JSON pointer (it must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/')), got \"/a~\"");
  // Whatever the document holds: the walk would stop at /missing first.
  EXPECT_EQ(invalid_argument_message([] { codec.find(document, "/missing/a~2"); }),
            "jobpoll::json_codec: malformed JSON pointer (it must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/')), got \"/missing/a~2\"");
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

// --- nesting depth -------------------------------------------------------------

/// `levels` nested arrays around `inner`: "[[...inner...]]".
std::string nested(std::size_t levels, std::string_view inner = "") {
  return std::string(levels, '[') + std::string(inner) + std::string(levels, ']');
}

/// The std::system_error that `c.decode(body)` throws.
std::system_error decode_error_with(const jobpoll::json_codec& c, std::string_view body) {
  try {
    c.decode(body);
  } catch (const std::system_error& error) {
    return error;
  }
  ADD_FAILURE() << "no std::system_error thrown for a body of " << body.size() << " bytes";
  return std::system_error(jobpoll::error_code{});
}

static_assert(std::semiregular<jobpoll::json_codec>);
static_assert(jobpoll::content_type_aware_codec<jobpoll::json_codec>);
static_assert(jobpoll::previewing_codec<jobpoll::json_codec>);

TEST(JsonCodecDepthTest, FiveHundredTwelveLevelsByDefaultAndNotOneMore) {
  EXPECT_EQ(jobpoll::json_codec{}.settings().max_depth, 512u);
  EXPECT_EQ(jobpoll::json_codec_options::default_max_depth, 512u);
  const json deepest = codec.decode(nested(512, "7"));
  const json* inner = codec.find(deepest, [] {
    std::string pointer;
    for (int i = 0; i < 512; ++i) pointer += "/0";
    return pointer;
  }());
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(*inner, json(7));

  const auto error = decode_error(nested(513, "7"));
  EXPECT_EQ(error.code(), jobpoll::errc::decode_error);
  EXPECT_STREQ(error.what(), "nesting deeper than 512 levels at byte 512: response could not be decoded");
}

TEST(JsonCodecDepthTest, ObjectsCountAsLevelsAndBracketsInStringsDoNot) {
  std::string objects;
  for (int i = 0; i < 513; ++i) objects += R"({"a":)";
  objects += "1" + std::string(513, '}');
  EXPECT_STREQ(decode_error(objects).what(),
               "nesting deeper than 512 levels at byte 2560: response could not be decoded");
  // 600 brackets and an escaped quote inside a string are text, not nesting.
  const std::string in_string = R"(["\"[[[)" + std::string(600, '[') + R"("])";
  EXPECT_EQ(codec.decode(in_string), json::array({"\"[[[" + std::string(600, '[')}));
}

TEST(JsonCodecDepthTest, AHundredThousandLevelsAreADecodeErrorNotACrash) {
  const auto start = std::chrono::steady_clock::now();
  const auto error = decode_error(nested(100'000));
  EXPECT_EQ(error.code(), jobpoll::errc::decode_error);
  EXPECT_STREQ(error.what(), "nesting deeper than 512 levels at byte 512: response could not be decoded");
  // Unclosed, as a truncated hostile answer would be: the same error, found before the parser runs.
  EXPECT_STREQ(decode_error(std::string(100'000, '{')).what(),
               "nesting deeper than 512 levels at byte 512: response could not be decoded");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(JsonCodecDepthTest, TheLimitIsConfigurable) {
  const jobpoll::json_codec shallow(jobpoll::json_codec::options{.max_depth = 2});
  EXPECT_EQ(shallow.settings().max_depth, 2u);
  EXPECT_EQ(shallow.decode("[[1],{\"a\":2}]"), json::parse("[[1],{\"a\":2}]"));
  EXPECT_STREQ(decode_error_with(shallow, "[[[1]]]").what(),
               "nesting deeper than 2 levels at byte 2: response could not be decoded");
  const jobpoll::json_codec deep(jobpoll::json_codec::options{.max_depth = 2000});
  EXPECT_TRUE(deep.decode(nested(2000)).is_array());
  EXPECT_EQ(invalid_argument_message([] { jobpoll::json_codec(jobpoll::json_codec::options{.max_depth = 0}); }),
            "jobpoll::json_codec: max_depth must be >= 1, got 0");
}

// --- body formats --------------------------------------------------------------

const jobpoll::json_codec text_format(jobpoll::json_codec::options{.format = jobpoll::json_body_format::text});
const jobpoll::json_codec by_type(jobpoll::json_codec::options{.format = jobpoll::json_body_format::by_content_type});

TEST(JsonCodecFormatTest, TextBodiesAreOneTrimmedStringAtPointerEmpty) {
  const json id = text_format.decode(" \t job-42\r\n\n");
  EXPECT_EQ(id, json("job-42"));
  ASSERT_NE(text_format.find(id, ""), nullptr);
  EXPECT_EQ(text_format.text(*text_format.find(id, "")), "job-42");
  EXPECT_EQ(text_format.find(id, "/status"), nullptr);
  // Inner whitespace and JSON-looking text stay as they are.
  EXPECT_EQ(text_format.decode("{\"a\": 1}\n"), json("{\"a\": 1}"));
  EXPECT_EQ(text_format.decode("FINISHED  with notes\n"), json("FINISHED  with notes"));
  EXPECT_EQ(text_format.decode(" \r\n"), json(""));
  EXPECT_EQ(text_format.decode(""), json(""));
  EXPECT_EQ(text_format.decode("caf\xc3\xa9"), json("caf\xc3\xa9"));
  // The format changes decoding only.
  EXPECT_EQ(text_format.encode(json("a")), "\"a\"");
  EXPECT_EQ(text_format.content_type(), "application/json");
}

TEST(JsonCodecFormatTest, TextThatIsNotUtf8IsADecodeError) {
  const auto error = decode_error_with(text_format, "ok \xff\n");
  EXPECT_EQ(error.code(), jobpoll::errc::decode_error);
  EXPECT_STREQ(error.what(),
               "text body is not UTF-8: invalid UTF-8 byte at index 3: 0xFF: response could not be decoded");
}

TEST(JsonCodecFormatTest, ByContentTypeReadsTextForTextTypesAndJsonForTheRest) {
  EXPECT_EQ(by_type.decode(" RUNNING\n", "text/plain; charset=utf-8"), json("RUNNING"));
  EXPECT_EQ(by_type.decode("a,b\n", " Text/CSV "), json("a,b"));
  EXPECT_EQ(by_type.decode("[1]", "application/json; charset=utf-8"), json::array({1}));
  EXPECT_EQ(by_type.decode(R"({"title":"x"})", "application/problem+json"), json::parse(R"({"title":"x"})"));
  EXPECT_EQ(by_type.decode("[1]", ""), json::array({1}));
  EXPECT_EQ(by_type.decode("[1]"), json::array({1}));  // no Content-Type known: JSON
  EXPECT_EQ(decode_error_with(by_type, "RUNNING").code(), jobpoll::errc::decode_error);
  try {
    by_type.decode("RUNNING", "application/octet-stream");
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), jobpoll::errc::decode_error);
  }
  // The depth limit holds for JSON read by Content-Type.
  try {
    by_type.decode(nested(600), "application/json");
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& error) {
    EXPECT_STREQ(error.what(), "nesting deeper than 512 levels at byte 512: response could not be decoded");
  }
  // The other formats ignore the Content-Type.
  EXPECT_EQ(text_format.decode("[1]", "application/json"), json("[1]"));
  EXPECT_EQ(codec.decode("[1]", "text/plain"), json::array({1}));
}

TEST(JsonCodecFormatTest, DecodeAnswerPassesTheContentTypeToCodecsThatReadIt) {
  EXPECT_EQ(jobpoll::detail::decode_answer(by_type, "done\n", "text/plain"), json("done"));
  EXPECT_EQ(jobpoll::detail::decode_answer(by_type, "[2]", "application/json"), json::array({2}));
  EXPECT_EQ(jobpoll::detail::decode_answer(codec, "[2]", "text/plain"), json::array({2}));
}

// --- previews ------------------------------------------------------------------

TEST(JsonCodecPreviewTest, ShortValuesAreTheirCompactAsciiText) {
  const json value = json::parse(R"({"a":[1,2.5,true,null],"b":"caf\u00e9\n","c":{}})");
  EXPECT_EQ(codec.preview(value, 200), R"({"a":[1,2.5,true,null],"b":"caf\u00e9\n","c":{}})");
  EXPECT_EQ(codec.preview(json::array(), 2), "[]");
  EXPECT_EQ(codec.preview(json("x\xff"), 200), "\"x\\ufffd\"");  // not UTF-8: replaced, not thrown
  EXPECT_EQ(jobpoll::detail::codec_preview(codec, value), codec.preview(value, 200));
}

TEST(JsonCodecPreviewTest, LongValuesAreCutAtMaxBytes) {
  EXPECT_EQ(codec.preview(json::array({1, 2, 3}), 7), "[1,2,3]");
  EXPECT_EQ(codec.preview(json::array({1, 2, 3}), 6), "[1,2,3...");
  EXPECT_EQ(codec.preview(json(std::string(300, 'x')), 10), "\"xxxxxxxxx...");
  EXPECT_EQ(codec.preview(json::parse(R"({"long key":1})"), 5), "{\"lon...");
  EXPECT_EQ(codec.preview(json::array({1}), 0), "...");
}

TEST(JsonCodecPreviewTest, AHugeOrDeepValueCostsNoMoreThanItsPreview) {
  json huge = json::array();
  for (int i = 0; i < 1'000'000; ++i) huge.push_back(i);
  json deep = json::array();
  for (int i = 0; i < 100'000; ++i) deep = json::array({std::move(deep)});  // built, never decoded
  json long_string = json(std::string(50'000'000, 'y'));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(codec.preview(huge, 20), "[0,1,2,3,4,5,6,7,8,9...");
    EXPECT_EQ(codec.preview(deep, 20), std::string(20, '[') + "...");
    EXPECT_EQ(codec.preview(long_string, 4), "\"yyy...");
    if (HasFailure()) break;
  }
  // A thousand previews of each in well under a second: none wrote its whole value.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(jobpoll::detail::codec_preview(codec, deep, 3), "[[[...");
}

}  // namespace
