#include "msg/recovery_steps.hpp"

#include "msg/log.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <sstream>

namespace msg {

outcome gate_on_quorum(const quorum_check& quorum, const deadline& limit, std::string_view service,
                       quorum_status& status)
{
    status = quorum(limit);
    auto result = quorum_policy(status, service);
    if (!result.healthy()) {
        return result;
    }
    log_info(status.state == quorum_state::no_cluster
                 ? "no corosync on this node: recovering standalone"
                 : "node is quorate: recovering " + std::string(service) + " store");
    return result;
}

std::string quorum_summary(const quorum_status& status)
{
    return status.state == quorum_state::no_cluster ? "standalone (no corosync)" : "node quorate";
}

outcome remove_stale_file(const std::filesystem::path& file, std::vector<std::filesystem::path>& removed)
{
    if (::unlink(file.c_str()) == 0) {
        log_info("removed stale " + file.string());
        removed.push_back(file);
    } else if (errno != ENOENT) {
        return outcome::failed("cannot remove stale " + file.string() + ": " + std::strerror(errno));
    }
    return outcome::ok();
}

outcome tool_failure(const std::string& what, const child_result& run)
{
    if (!run.started) {
        return {ocf_code::err_installed, "cannot run " + what + ": " + run.launch_error};
    }
    if (run.timed_out) {
        return outcome::failed(what + " did not finish before the deadline");
    }
    return outcome::failed(what + " " + run.describe_end());
}

outcome config_tool_result(const std::string& what, const child_result& run, const std::string& error_line)
{
    if (!run.started || run.timed_out) {
        return tool_failure(what, run);
    }
    if (!run.succeeded()) {
        return outcome::misconfigured(error_line.empty() ? what + " " + run.describe_end() : error_line);
    }
    return outcome::ok();
}

std::string tool_error_line(const std::string& text, std::initializer_list<std::string_view> markers)
{
    const auto lines = split_lines(text);
    for (const auto marker : markers) {
        for (const auto& line : lines) {
            if (line.find(marker) != std::string::npos) {
                return trim(line);
            }
        }
    }
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        auto line = trim(*it);
        if (!line.empty()) {
            return line;
        }
    }
    return {};
}

std::string count_of(std::size_t count, std::string_view singular, std::string_view plural)
{
    return std::to_string(count) + " " + std::string(count == 1 ? singular : plural);
}

std::string utc_time_stamp()
{
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
    return text;
}

std::vector<std::string> split_lines(const std::string& text)
{
    std::vector<std::string> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        lines.push_back(line);
    }
    return lines;
}

std::string trim(std::string_view text)
{
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(first, last - first + 1));
}

} // namespace msg
