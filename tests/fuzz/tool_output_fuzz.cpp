// The parsers msg-recover and msg-probe ldap apply to text other programs
// write: Postfix, Dovecot and slaptest error output, doveadm's mailbox
// errors, Dovecot dotlocks, `innconfval -s`, `ctlinnd mode`, INN history
// lines, `mdb_stat -rr`, pid files and LDAP CSNs. A damaged store, a
// half-written file or a tool of another version must never crash
// recovery, and what they return keeps the shape callers rely on.
// Input: any text; every parser reads all of it.
#include "fuzz_peer.hpp"

#include "msg/dovecot_recovery.hpp"
#include "msg/innd_recovery.hpp"
#include "msg/ldap.hpp"
#include "msg/postfix_recovery.hpp"
#include "msg/process_identity.hpp"
#include "msg/recovery_steps.hpp"
#include "msg/slapd_recovery.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using msg_fuzz::require;

bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// An error line goes into a reason: one line, trimmed, and text the tool wrote.
void require_error_line(const std::string& line, const std::string& text, std::string_view parser)
{
    const std::string what(parser);
    require(line.find('\n') == std::string::npos, what + ": error line holds a newline");
    require(line.empty() || (!is_blank(line.front()) && !is_blank(line.back())), what + ": error line not trimmed");
    require(text.find(line) != std::string::npos, what + ": error line is not text the tool wrote");
}

void check_error_lines(const std::string& text)
{
    const bool blank = std::all_of(text.begin(), text.end(), is_blank);
    for (const auto& [name, line] : {std::pair{"postfix_error_line", msg::postfix_error_line(text)},
                                     std::pair{"dovecot_error_line", msg::dovecot_error_line(text)},
                                     std::pair{"tool_error_line", msg::tool_error_line(text, {})}}) {
        require_error_line(line, text, name);
        require(line.empty() == blank, std::string(name) + ": empty exactly when the text is blank");
    }
    require_error_line(msg::slapd_error_line(text), text, "slapd_error_line");
    const std::string mode = msg::innd_mode_line(text);
    require(mode.find('\n') == std::string::npos && text.find(mode) != std::string::npos,
            "innd_mode_line: not one line of the output");
}

void check_doveadm(const std::string& text)
{
    const auto boxes = msg::mailboxes_with_errors(text);
    for (auto box = boxes.begin(); box != boxes.end(); ++box) {
        require(!box->user.empty() && !box->mailbox.empty(), "mailboxes_with_errors: empty user or mailbox");
        require(box->user.find('\n') == std::string::npos && box->mailbox.find('\n') == std::string::npos,
                "mailboxes_with_errors: name spans lines");
        require(std::find(boxes.begin(), box, *box) == box, "mailboxes_with_errors: duplicate");
    }
    if (const auto owner = msg::parse_dotlock(text)) {
        require(owner->pid > 0, "parse_dotlock: pid not positive");
        require(!owner->host.empty() && owner->host.find_first_of(" \t\r\n") == std::string::npos,
                "parse_dotlock: host empty or with blanks");
        // What Dovecot writes for that owner reads back the same.
        const auto again = msg::parse_dotlock(std::to_string(owner->pid) + ":" + owner->host);
        require(again && again->pid == owner->pid && again->host == owner->host, "parse_dotlock: no round trip");
    }
}

void check_inn(const std::string& text)
{
    for (const auto& [name, value] : msg::parse_innconfval_shell(text)) {
        require(!name.empty(), "parse_innconfval_shell: empty name");
        require(std::none_of(name.begin(), name.end(), [](unsigned char c) { return std::isupper(c) != 0; }),
                "parse_innconfval_shell: name not lower case");
    }
    for (const auto& line : msg::split_lines(text)) {
        if (msg::well_formed_history_line(line))
            require(line.size() >= 35 && line.front() == '[' && line[33] == ']' && line[34] == '\t',
                    "well_formed_history_line: accepted a line without [hash]<TAB>");
    }
}

void check_numbers(const std::string& text)
{
    if (const auto readers = msg::cleared_reader_count(text))
        require(text.find(std::to_string(*readers)) != std::string::npos
                    && text.find(" stale readers cleared") != std::string::npos,
                "cleared_reader_count: a count the output does not show");
    if (const auto pid = msg::parse_pid(text))
        require(*pid > 0 && text.find(std::to_string(*pid)) != std::string::npos, "parse_pid: a pid not in the file");
    if (msg::csn_time(text))
        require(text.size() >= 22 && text[14] == '.' && text[21] == 'Z', "csn_time: accepted a non-CSN");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    check_error_lines(text);
    check_doveadm(text);
    check_inn(text);
    check_numbers(text);
    return 0;
}
