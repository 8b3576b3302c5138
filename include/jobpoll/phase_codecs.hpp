#pragma once
// One codec per phase of a job: the submit answer, the poll answers and the
// result may each be read differently (a JSON poll with a text result).

#include "jobpoll/codec.hpp"

namespace jobpoll {

/// The codecs a `job_client` decodes each phase's answers with, and encodes
/// nothing with (request bodies are templates). All three default to
/// `Codec{}`; `phase_codecs<Codec>::all(c)` uses `c` everywhere.
template <codec Codec>
struct phase_codecs {
  Codec submit{};  ///< the submit answer (the handle is read from it)
  Codec poll{};    ///< every poll answer (the status policy reads it)
  Codec result{};  ///< result and page answers

  static phase_codecs all(const Codec& c) { return {c, c, c}; }
};

}  // namespace jobpoll
