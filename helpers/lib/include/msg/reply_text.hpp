#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace msg {

// Server text made safe for a reason line: printable ASCII only (anything
// else becomes '?'), at most max_chars characters, "..." marking a cut.
std::string printable_excerpt(std::string_view text, std::size_t max_chars = 200);

// `text` with a-z upper-cased: protocol keywords compare case-insensitively.
std::string upper_ascii(std::string_view text);

// The words of `text`, split at whitespace.
std::vector<std::string> split_words(std::string_view text);

} // namespace msg
