#pragma once

#include "msg/credentials.hpp"
#include "msg/deadline.hpp"
#include "msg/line_channel.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

namespace msg {

// Connects as `where` says (default_port when where.port is 0) and returns
// what `converse` makes of the connected channel. When converse throws
// check_failure, `farewell` (QUIT, LOGOUT) is sent without awaiting a reply
// before the failure is returned; every check_failure becomes the outcome.
outcome run_dialogue(const probe_options& where, std::uint16_t default_port, const deadline& until,
                     std::string_view farewell, const std::function<outcome(line_channel&)>& converse);

// run_dialogue for a probe that may log in: reads `credentials_file` (when
// not empty) before connecting, so an unsafe or unreadable one is 6 whatever
// the server does; hands converse the credentials or nullptr; masks the
// password in the returned reason, as servers may echo what they were sent.
outcome run_login_dialogue(const probe_options& where, std::uint16_t default_port, const deadline& until,
                           std::string_view farewell, const std::filesystem::path& credentials_file,
                           const std::function<outcome(line_channel&, const credentials*)>& converse);

// After TLS: degraded (190) or failed for the server certificate as
// check_certificate_expiry judges it with warn_days; ok without TLS.
outcome certificate_outcome(const line_channel& channel, int warn_days);

// Throws check_failure 2 ("<option> must not contain CR, LF or NUL") if
// `value` does: it would end or split a protocol line.
void require_single_line(std::string_view value, std::string_view option);

} // namespace msg
