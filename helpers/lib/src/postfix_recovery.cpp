#include "msg/postfix_recovery.hpp"

#include "msg/child_process.hpp"
#include "msg/file_lock.hpp"
#include "msg/log.hpp"
#include "msg/process_identity.hpp"
#include "msg/recovery_steps.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string_view>

namespace msg {

namespace {

namespace fs = std::filesystem;

// The values recovery needs, in the order postconf prints them.
const std::vector<std::string> postconf_names{"queue_directory", "data_directory", "mail_owner", "daemon_directory",
                                              "maillog_file"};
constexpr std::size_t maillog_tail_bytes = 64 * 1024;

struct postfix_layout {
    fs::path queue_directory;
    fs::path data_directory;
    std::string mail_owner;
    fs::path daemon_directory;
    fs::path maillog_file;
};

child_result run_postfix_tool(const fs::path& program, std::vector<std::string> args, const deadline& limit)
{
    child_command command;
    command.program = program.string();
    command.args = std::move(args);
    // Postfix's commands print their errors to stderr only when it is a
    // terminal; without one they go to the mail log alone.
    command.stderr_is_tty = true;
    return run_child(command, limit);
}

std::uintmax_t file_size_or_zero(const fs::path& file)
{
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    return ec ? 0 : size;
}

// What was appended to the mail log since `offset` (the start of a step):
// where Postfix writes what a terminal-less command could not print.
std::string maillog_since(const fs::path& maillog, std::uintmax_t offset)
{
    if (maillog.empty()) {
        return {};
    }
    std::ifstream in(maillog, std::ios::binary);
    if (!in) {
        return {};
    }
    const auto size = file_size_or_zero(maillog);
    // Rotated or truncated meanwhile: all of it is new.
    auto from = size < offset ? 0 : offset;
    if (size - from > maillog_tail_bytes) {
        from = size - maillog_tail_bytes;
    }
    in.seekg(static_cast<std::streamoff>(from));
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

int count_warnings(const std::string& text)
{
    int warnings = 0;
    for (const auto& line : split_lines(text)) {
        if (line.find("warning:") != std::string::npos) {
            log_warning(trim(line));
            ++warnings;
        }
    }
    return warnings;
}

outcome read_layout(const postfix_recovery_options& options, const deadline& limit, postfix_layout& layout)
{
    std::vector<std::string> args{"-c", options.config_dir.string(), "-h"};
    args.insert(args.end(), postconf_names.begin(), postconf_names.end());
    const auto run = run_postfix_tool(options.postfix_bin_dir / "postconf", args, limit);
    auto result = config_tool_result("postconf", run, postfix_error_line(run.err));
    if (!result.healthy()) {
        return result;
    }
    const auto values = split_lines(run.out);
    if (values.size() != postconf_names.size()) {
        return outcome::failed("postconf printed " + std::to_string(values.size()) + " values for " +
                               std::to_string(postconf_names.size()) + " parameters");
    }
    layout.queue_directory = values[0];
    layout.data_directory = values[1];
    layout.mail_owner = values[2];
    layout.daemon_directory = values[3];
    layout.maillog_file = values[4];
    for (const auto& [name, dir] : {std::pair{"queue_directory", layout.queue_directory},
                                    std::pair{"data_directory", layout.data_directory},
                                    std::pair{"daemon_directory", layout.daemon_directory}}) {
        if (!dir.is_absolute()) {
            return outcome::misconfigured(std::string(name) + " '" + dir.string() + "' is not an absolute path");
        }
    }
    std::error_code ec;
    if (!fs::is_directory(layout.queue_directory, ec)) {
        // Typically the shared queue filesystem is not mounted on this node.
        return {ocf_code::err_installed, "queue_directory " + layout.queue_directory.string() + " does not exist"};
    }
    return outcome::ok();
}

// A live master leaves every file alone. Alive means: a pid file naming the
// real master, or a lock on master.pid or master.lock (the master holds both
// for its whole life, which pid reuse cannot fake).
bool find_live_master(const postfix_layout& layout, postfix_recovery_report& report, pid_file_check& pid_check)
{
    const fs::path pid_file = layout.queue_directory / "pid" / "master.pid";
    const fs::path lock_file = layout.data_directory / "master.lock";
    const std::vector<fs::path> master_exe{layout.daemon_directory / "master"};

    // The master works in its queue_directory; the master of another
    // instance (same binary) that a stale file happens to name does not.
    const auto master_check = [&](const fs::path& file) {
        return require_working_directory(check_pid_file(file, master_exe), file, layout.queue_directory,
                                         "postfix master");
    };
    pid_check = master_check(pid_file);
    const auto lock_check = master_check(lock_file);
    for (const pid_file_check& check : {pid_check, lock_check}) {
        if (check.state == pid_file_state::running) {
            report.master_running = true;
            report.master_pid = check.pid;
            report.summary = "postfix master is running as pid " + std::to_string(check.pid) + ": nothing recovered";
            return true;
        }
    }
    for (const auto& file : {pid_file, lock_file}) {
        const auto lock = probe_file_lock(file);
        if (lock.held) {
            report.master_running = true;
            report.master_pid = lock.holder;
            report.summary = lock.holder > 0 ? "postfix master is running (pid " + std::to_string(lock.holder) +
                                                   " holds a lock on " + file.string() + "): nothing recovered"
                                             : "postfix master is running (a lock is held on " + file.string() +
                                                   "): nothing recovered";
            return true;
        }
    }
    return false;
}

outcome remove_stale_files(const postfix_layout& layout, const pid_file_check& pid_check,
                           postfix_recovery_report& report)
{
    if (pid_check.state == pid_file_state::stale_foreign) {
        // The file is stale either way; the process it names stays untouched.
        log_warning(pid_check.reason);
    }
    for (const auto& file : {layout.queue_directory / "pid" / "master.pid", layout.data_directory / "master.lock"}) {
        auto removed = remove_stale_file(file, report.removed);
        if (!removed.healthy()) {
            return removed;
        }
    }
    return outcome::ok();
}

outcome check_configuration(const postfix_recovery_options& options, const postfix_layout& layout,
                            const deadline& limit, postfix_recovery_report& report)
{
    const auto maillog_offset = layout.maillog_file.empty() ? 0 : file_size_or_zero(layout.maillog_file);
    const auto run = run_postfix_tool(options.postfix_bin_dir / "postfix",
                                      {"-c", options.config_dir.string(), "check"}, limit);
    if (!run.started || run.timed_out) {
        return tool_failure("postfix check", run);
    }
    if (!run.succeeded()) {
        auto message = postfix_error_line(run.err);
        if (message.empty()) {
            message = postfix_error_line(maillog_since(layout.maillog_file, maillog_offset));
        }
        if (message.empty()) {
            message = "postfix check " + run.describe_end() + " without saying why";
        }
        return outcome::misconfigured(message);
    }
    report.check_warnings = count_warnings(run.err);
    return outcome::ok();
}

outcome repair_queue(const postfix_recovery_options& options, const deadline& limit)
{
    const auto run = run_postfix_tool(options.postfix_bin_dir / "postsuper",
                                      {"-c", options.config_dir.string(), "-s"}, limit);
    if (!run.started || run.timed_out) {
        return tool_failure("postsuper -s", run);
    }
    if (!run.succeeded()) {
        const auto message = postfix_error_line(run.err);
        return outcome::failed("postsuper -s failed: " + (message.empty() ? run.describe_end() : message));
    }
    return outcome::ok();
}

std::string recovered_summary(const postfix_recovery_report& report)
{
    std::ostringstream summary;
    summary << "recovered postfix: removed " << count_of(report.removed.size(), "stale file", "stale files")
            << "; queue structure checked; ";
    if (report.check_warnings == 0) {
        summary << "config check clean";
    } else {
        summary << "config check passed with "
                << count_of(static_cast<std::size_t>(report.check_warnings), "warning", "warnings");
    }
    summary << "; " << quorum_summary(report.quorum);
    return summary.str();
}

} // namespace

std::string postfix_error_line(const std::string& text)
{
    return tool_error_line(text, {"fatal:", "panic:", "error:"});
}

postfix_recovery_report recover_postfix(const postfix_recovery_options& options, const quorum_check& quorum,
                                        const deadline& limit)
{
    postfix_recovery_report report;
    report.result = gate_on_quorum(quorum, limit, "postfix", report.quorum);
    if (!report.result.healthy()) {
        return report;
    }

    std::error_code ec;
    if (!fs::is_regular_file(options.config_dir / "main.cf", ec)) {
        report.result = {ocf_code::err_installed, "postfix config dir " + options.config_dir.string() + " has no main.cf"};
        return report;
    }

    postfix_layout layout;
    report.result = read_layout(options, limit, layout);
    if (!report.result.healthy()) {
        return report;
    }

    pid_file_check pid_check;
    if (find_live_master(layout, report, pid_check)) {
        log_info(report.summary);
        return report;
    }

    report.result = remove_stale_files(layout, pid_check, report);
    if (!report.result.healthy()) {
        return report;
    }
    // `postfix check` first: it creates missing queue directories, without
    // which postsuper -s fails on an instance that never ran here.
    report.result = check_configuration(options, layout, limit, report);
    if (!report.result.healthy()) {
        return report;
    }
    report.result = repair_queue(options, limit);
    if (!report.result.healthy()) {
        return report;
    }
    report.summary = recovered_summary(report);
    log_info(report.summary);
    return report;
}

} // namespace msg
