#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace msg {

// Server text made safe for a reason line: printable ASCII only (anything
// else becomes '?'), at most max_chars characters, "..." marking a cut.
std::string printable_excerpt(std::string_view text, std::size_t max_chars = 200);

} // namespace msg
