// msg-recover: store recovery before a messaging service starts on this node.
// Thin main: parse, run one recovery from helpers/lib, map its outcome to an
// OCF exit code and one reason line.

#include "msg/deadline.hpp"
#include "msg/log.hpp"
#include "msg/outcome.hpp"
#include "msg/postfix_recovery.hpp"
#include "msg/quorum.hpp"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>

namespace {

constexpr const char* exit_codes_help = R"(Exit codes (OCF):
  0  recovered, or the instance is running and nothing was touched;
     one summary line on stdout
  1  refused or failed: node not quorate, corosync unreachable, a stale file
     that cannot be removed, postsuper failed, deadline passed
  2  bad usage of msg-recover
  5  config dir, queue directory or a Postfix tool missing
  6  Postfix rejects its configuration (postconf or postfix check),
     with Postfix's own message
Every exit other than 0 prints exactly one reason line on stderr.
Logging goes to syslog through libqb (and to stderr on a terminal).)";

// Child processes may overrun the deadline slightly while they are killed
// and reaped; keep that margin inside the caller's budget.
std::chrono::milliseconds overrun_margin(std::int64_t deadline_ms)
{
    return std::chrono::milliseconds(std::min<std::int64_t>(1000, deadline_ms / 5));
}

std::string one_line(std::string text)
{
    std::replace(text.begin(), text.end(), '\n', ' ');
    return text;
}

// The single place where a result becomes the process's exit.
int to_ocf_exit(const msg::outcome& result, const std::string& summary)
{
    if (result.healthy()) {
        std::cout << summary << '\n';
        return 0;
    }
    msg::log_error(result.reason());
    std::cerr << one_line(result.reason()) << '\n';
    return result.exit_status();
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"Recover a messaging service's store before it starts on this node.\n"
                 "Runs only when the node is quorate (Corosync quorum API) or when no corosync runs\n"
                 "at all (standalone); never touches files a live daemon owns."};
    app.name("msg-recover");
    app.require_subcommand(1);
    app.footer(exit_codes_help);

    msg::postfix_recovery_options postfix_options;
    std::int64_t deadline_ms = 20000;
    auto* postfix = app.add_subcommand(
        "postfix",
        "Postfix: remove master.pid and master.lock left by a dead master (only when no live\n"
        "process is the master or holds their locks; a pid naming another program is never\n"
        "signalled), run `postfix check` (creates missing queue directories, validates the\n"
        "configuration) and `postsuper -s` (queue structure repair).\n"
        "Summary on stdout, e.g. \"recovered postfix: removed 2 stale files; queue structure\n"
        "checked; config check clean; standalone (no corosync)\".");
    postfix->add_option("--config-dir", postfix_options.config_dir, "Postfix config dir (main.cf, master.cf)")
        ->required();
    postfix->add_option("--deadline-ms", deadline_ms,
                        "Overall time budget in milliseconds, covering quorum and every Postfix tool")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{24} * 3600 * 1000));
    postfix->add_option("--postfix-bin-dir", postfix_options.postfix_bin_dir,
                        "Directory holding postconf, postsuper and postfix")
        ->capture_default_str();
    postfix->footer(exit_codes_help);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e, std::cout, std::cerr);
    } catch (const CLI::ParseError& e) {
        // Bad usage is an agent bug: OCF_ERR_ARGS, with CLI11's message as
        // the one reason line (never CLI11's own exit codes).
        std::cerr << one_line(e.what()) << '\n';
        return static_cast<int>(msg::ocf_code::err_args);
    }

    msg::log_session log("msg-recover", ::isatty(STDERR_FILENO) == 1);
    try {
        const auto limit =
            msg::deadline::after(std::chrono::milliseconds(deadline_ms)).shortened_by(overrun_margin(deadline_ms));
        const auto quorum = [](const msg::deadline& quorum_limit) {
            return msg::check_quorum(msg::corosync_quorum_source(), quorum_limit);
        };
        if (postfix->parsed()) {
            const auto report = msg::recover_postfix(postfix_options, quorum, limit);
            return to_ocf_exit(report.result, report.summary);
        }
        return to_ocf_exit(msg::outcome(msg::ocf_code::err_args, "no service given"), {});
    } catch (const std::exception& e) {
        return to_ocf_exit(msg::outcome::failed(e.what()), {});
    }
}
