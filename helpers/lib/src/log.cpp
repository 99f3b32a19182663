#include "msg/log.hpp"

#include <qb/qblog.h>
#include <syslog.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace msg {

log_session::log_session(const char* program_name, bool to_stderr)
{
    qb_log_init(program_name, LOG_DAEMON, LOG_INFO);
    qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, QB_TRUE);
    qb_log_filter_ctl(QB_LOG_SYSLOG, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", LOG_INFO);
    // stdout is never used: agents read helpers' stdout as data.
    qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, to_stderr ? QB_TRUE : QB_FALSE);
    if (to_stderr) {
        qb_log_filter_ctl(QB_LOG_STDERR, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", LOG_INFO);
        qb_log_format_set(QB_LOG_STDERR, "%n: %b");
    }
}

log_session::~log_session()
{
    qb_log_fini();
}

namespace {

// libqb stores priorities as uint8_t; syslog's LOG_* values all fit.
void emit(std::uint8_t priority, std::string_view text)
{
    // qb_log is a printf-style macro: never pass the text as the format.
    const std::string line(text);
    // msg-status runs its probes on threads of their own; libqb's logging
    // outside its own logging thread is not documented as thread-safe.
    static std::mutex serialized;
    const std::lock_guard lock(serialized);
    qb_log(priority, "%s", line.c_str());
}

} // namespace

void log_info(std::string_view text) { emit(std::uint8_t{LOG_INFO}, text); }
void log_warning(std::string_view text) { emit(std::uint8_t{LOG_WARNING}, text); }
void log_error(std::string_view text) { emit(std::uint8_t{LOG_ERR}, text); }
void log_debug(std::string_view text) { emit(std::uint8_t{LOG_DEBUG}, text); }

} // namespace msg
