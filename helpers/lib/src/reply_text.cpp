#include "msg/reply_text.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace msg {

std::string printable_excerpt(std::string_view text, std::size_t max_chars)
{
    // The result ends up in the CIB and in logs via ocf_exit_reason: a
    // hostile or broken server must not inject newlines, escape sequences
    // or megabytes there.
    const std::string_view ellipsis = "...";
    const bool cut = text.size() > max_chars;
    const bool mark_cut = cut && max_chars > ellipsis.size();
    if (cut)
        text = text.substr(0, mark_cut ? max_chars - ellipsis.size() : max_chars);
    std::string out;
    out.reserve(max_chars);
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        out.push_back(byte >= 0x20 && byte < 0x7f ? c : '?');
    }
    if (mark_cut)
        out.append(ellipsis);
    return out;
}

std::string upper_ascii(std::string_view text)
{
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

std::vector<std::string> split_words(std::string_view text)
{
    std::vector<std::string> out;
    std::istringstream stream{std::string(text)};
    for (std::string word; stream >> word;)
        out.push_back(word);
    return out;
}

} // namespace msg
