#pragma once
// Text that came from a peer (names, paths, error messages, file contents)
// is escaped before it reaches a log line or an error: a newline cannot forge
// a log line and a terminal escape cannot reach the user's terminal.
#include <cstddef>
#include <string>
#include <string_view>

namespace strata {

// Printable ASCII passes (backslash doubled); every other byte becomes \xNN.
// Longer texts are cut at max_bytes of input and end in "...".
std::string EscapeText(std::string_view text, size_t max_bytes = 256);

// A Prometheus label value: backslash, double quote and newline escaped, as
// the text exposition format wants.
std::string EscapePromLabel(std::string_view value);
// A sample value in the Prometheus text format (%.9g).
std::string PromNumber(double value);

}  // namespace strata
