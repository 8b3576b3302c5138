#pragma once
// The "curl" error category behind jobpoll::curl_category(): CURLcode values
// as std::error_code, each mapped to the std::errc condition that says
// whether retrying can help (see is_transient_error in error.hpp).

#include <string>
#include <system_error>

#include <curl/curl.h>

namespace jobpoll::detail {

class curl_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "curl"; }

  std::string message(int value) const override { return curl_easy_strerror(static_cast<CURLcode>(value)); }

  // Network failures map to the conditions the core retries; a DNS failure
  // maps to none of them, so a typo in a host name fails the poll at once
  // instead of being retried until the deadline; TLS failures are permission
  // or protocol errors, which retrying does not fix.
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<CURLcode>(value)) {
      case CURLE_COULDNT_CONNECT: return std::errc::connection_refused;
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2_STREAM: return std::errc::connection_reset;
      case CURLE_OPERATION_TIMEDOUT: return std::errc::timed_out;
      case CURLE_AGAIN: return std::errc::resource_unavailable_try_again;
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_URL_MALFORMAT:
      case CURLE_BAD_FUNCTION_ARGUMENT:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_CRL_BADFILE:
      case CURLE_SSL_CLIENTCERT: return std::errc::invalid_argument;
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_LOGIN_DENIED:
      case CURLE_AUTH_ERROR: return std::errc::permission_denied;
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CIPHER:
      case CURLE_USE_SSL_FAILED:
      case CURLE_WEIRD_SERVER_REPLY:
      case CURLE_HTTP2:
      case CURLE_BAD_CONTENT_ENCODING: return std::errc::protocol_error;
      case CURLE_FILESIZE_EXCEEDED: return std::errc::message_size;
      case CURLE_OUT_OF_MEMORY: return std::errc::not_enough_memory;
      default: return {value, *this};
    }
  }
};

inline const std::error_category& curl_category_instance() noexcept {
  static const curl_category_impl instance;
  return instance;
}

}  // namespace jobpoll::detail
