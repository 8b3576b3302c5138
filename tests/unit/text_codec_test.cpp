// text_codec: the codec contract on plain text bodies, and the optional
// codec extensions (decode_answer, codec_preview) for a codec without them.

#include "jobpoll/codec/text.hpp"

#if defined(ASIO_VERSION) || defined(NLOHMANN_JSON_VERSION_MAJOR)
#error "the text codec needs only the standard library"
#endif

#include <gtest/gtest.h>

#include "policy_helpers.hpp"

#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace {

using jobpoll_test::invalid_argument_message;

static_assert(jobpoll::codec<jobpoll::text_codec>);
static_assert(std::same_as<jobpoll::codec_value_t<jobpoll::text_codec>, std::string>);
static_assert(!jobpoll::content_type_aware_codec<jobpoll::text_codec>);
static_assert(jobpoll::previewing_codec<jobpoll::text_codec>);

const jobpoll::text_codec codec{};

TEST(TextCodecTest, DecodeTrimsAsciiWhitespaceOnly) {
  EXPECT_EQ(codec.decode("  job-42\r\n"), "job-42");
  EXPECT_EQ(codec.decode("\t\v\fFINISHED  OK\n\n"), "FINISHED  OK");
  EXPECT_EQ(codec.decode(" \n "), "");
  EXPECT_EQ(codec.decode(""), "");
  // Any bytes: no UTF-8 check, and a non-breaking space is not ASCII whitespace.
  EXPECT_EQ(codec.decode("\xff\xfe\n"), "\xff\xfe");
  EXPECT_EQ(codec.decode("\xc2\xa0x\xc2\xa0"), "\xc2\xa0x\xc2\xa0");
  EXPECT_EQ(codec.decode(std::string_view("a\0b\n", 4)), std::string("a\0b", 3));
}

TEST(TextCodecTest, EncodeIsTheTextWithItsContentType) {
  EXPECT_EQ(codec.encode(" as is\n"), " as is\n");
  EXPECT_EQ(codec.content_type(), "text/plain; charset=utf-8");
}

TEST(TextCodecTest, OnlyTheEmptyPointerFindsSomething) {
  const std::string body = "RUNNING";
  EXPECT_EQ(codec.find(body, ""), &body);
  EXPECT_EQ(codec.find(body, "/status"), nullptr);
  EXPECT_EQ(codec.find(body, "/"), nullptr);
  EXPECT_EQ(codec.find(body, "/a~1b"), nullptr);
  EXPECT_EQ(invalid_argument_message([&] { codec.find(body, "status"); }),
            "jobpoll::text_codec: malformed JSON pointer (it must be empty or start with '/'), got \"status\"");
  EXPECT_EQ(invalid_argument_message([&] { codec.find(body, "/a~2"); }),
            "jobpoll::text_codec: malformed JSON pointer (it must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/')), got \"/a~2\"");
}

TEST(TextCodecTest, TextIsTheStringAndNumbersAreWholeTexts) {
  EXPECT_EQ(codec.text("QUEUED"), "QUEUED");
  EXPECT_EQ(codec.text(""), "");
  EXPECT_EQ(codec.number("42"), 42.0);
  EXPECT_EQ(codec.number("-0.5"), -0.5);
  EXPECT_EQ(codec.number("1e3"), 1000.0);
  for (const char* not_a_number : {"", "42%", "4 2", "0x1A", "+1", "inf", "nan", "1e999", "RUNNING", "42\n"})
    EXPECT_EQ(codec.number(not_a_number), std::nullopt) << not_a_number;
}

TEST(TextCodecTest, TextHasNoArrays) {
  std::string all = codec.empty_array();
  EXPECT_EQ(all, "");
  EXPECT_EQ(invalid_argument_message([&] { codec.append_elements(all, "page 2"); }),
            "jobpoll::text_codec: append_elements needs arrays and text has none, got \"page 2\"");
  EXPECT_EQ(all, "");
}

TEST(TextCodecTest, PreviewIsTheBodyPreview) {
  EXPECT_EQ(codec.preview("ok\n", 10), "ok\\x0a");
  EXPECT_EQ(codec.preview(std::string(300, 'x'), 5), "xxxxx... (300 bytes)");
  EXPECT_EQ(jobpoll::detail::codec_preview(codec, std::string(300, 'x')),
            std::string(200, 'x') + "... (300 bytes)");
}

/// The minimum a codec must have: no Content-Type decode, no preview.
struct plain_codec {
  using value_type = std::string;
  value_type decode(std::string_view body) const { return "decoded:" + std::string(body); }
  std::string encode(const value_type& v) const { return "encoded:" + v; }
  std::string_view content_type() const noexcept { return "text/x-plain"; }
  const value_type* find(const value_type& v, std::string_view) const { return &v; }
  std::optional<std::string> text(const value_type& v) const { return v; }
  std::optional<double> number(const value_type&) const { return std::nullopt; }
  value_type empty_array() const { return {}; }
  std::size_t append_elements(value_type&, const value_type&) const { return 0; }
};
static_assert(jobpoll::codec<plain_codec>);
static_assert(!jobpoll::content_type_aware_codec<plain_codec>);
static_assert(!jobpoll::previewing_codec<plain_codec>);

TEST(CodecExtensionsTest, ACodecWithoutThemDecodesAndPreviewsThroughItsBasicMembers) {
  EXPECT_EQ(jobpoll::detail::decode_answer(plain_codec{}, "x", "application/json"), "decoded:x");
  EXPECT_EQ(jobpoll::detail::decode_answer(codec, " x\n", "application/json"), "x");
  EXPECT_EQ(jobpoll::detail::codec_preview(plain_codec{}, "v\n"), "encoded:v\\x0a");
  EXPECT_EQ(jobpoll::detail::codec_preview(plain_codec{}, std::string(10, 'v'), 12), "encoded:vvvv... (18 bytes)");
}

TEST(CodecExtensionsTest, TrimmingIsSharedAndAsciiOnly) {
  static_assert(jobpoll::detail::trim_ascii_whitespace(" \t\r\n a b \v\f") == "a b");
  static_assert(jobpoll::detail::trim_ascii_whitespace("   ").empty());
  EXPECT_EQ(jobpoll::detail::trim_ascii_whitespace("x"), "x");
}

}  // namespace
