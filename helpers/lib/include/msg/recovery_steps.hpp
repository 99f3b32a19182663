#pragma once

#include "msg/child_process.hpp"
#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/quorum.hpp"

#include <cstddef>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace msg {

// The steps every store recovery (msg-recover <service>) shares.

// Answers the quorum question; msg-recover passes check_quorum on libquorum,
// tests pass a stand-in.
using quorum_check = std::function<quorum_status(const deadline&)>;

// Asks `quorum` into `status` and applies quorum_policy for `service`'s
// store. Returns success to proceed (and logs whether the node is quorate or
// standalone), else the refusal to exit with.
outcome gate_on_quorum(const quorum_check& quorum, const deadline& limit, std::string_view service,
                       quorum_status& status);

// The summary line's last clause: "standalone (no corosync)" or "node quorate".
std::string quorum_summary(const quorum_status& status);

// Unlinks `file`, which the caller has proven stale, appends it to `removed`
// and logs it. A file that is already gone is fine; any other error fails.
outcome remove_stale_file(const std::filesystem::path& file, std::vector<std::filesystem::path>& removed);

// Every failure to run a service tool, in one place: a tool that is not
// there is a missing component (err_installed); one that overruns or fails
// is a failure, its reason saying how it ended.
outcome tool_failure(const std::string& what, const child_result& run);

// For a tool that reads the service's configuration (postconf, doveconf):
// success when it ran cleanly; a missing or overrunning tool as tool_failure;
// one that fails means the service rejects its configuration: err_configured
// with `error_line` (the tool's own message, see tool_error_line) as reason.
outcome config_tool_result(const std::string& what, const child_result& run, const std::string& error_line);

// The line of a tool's output that says what went wrong: the first line
// holding the first of `markers` found (in the order given), else the last
// non-empty line; trimmed. Empty when the text is blank.
std::string tool_error_line(const std::string& text, std::initializer_list<std::string_view> markers);

// "1 stale file", "2 stale files", "0 stale files".
std::string count_of(std::size_t count, std::string_view singular, std::string_view plural);

// The current UTC time as "20261126T122008Z": for the names of what a
// recovery keeps aside (quarantined mail, a damaged database).
std::string utc_time_stamp();

// `text` split at newlines (no trailing empty line for a final newline).
std::vector<std::string> split_lines(const std::string& text);

// `text` without leading and trailing blanks, CRs and newlines.
std::string trim(std::string_view text);

} // namespace msg
