#pragma once

#include <string_view>

namespace msg {

// Routes libqb logging to syslog (as Pacemaker's daemons do) and, when
// `to_stderr` is set, also to stderr. Closes libqb logging on destruction.
class log_session {
public:
    log_session(const char* program_name, bool to_stderr);
    ~log_session();
    log_session(const log_session&) = delete;
    log_session& operator=(const log_session&) = delete;
};

// One log line each; the text must never contain a secret.
void log_info(std::string_view text);
void log_warning(std::string_view text);
void log_error(std::string_view text);
void log_debug(std::string_view text);

} // namespace msg
