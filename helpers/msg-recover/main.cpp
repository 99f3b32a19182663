// msg-recover: store recovery before a messaging service starts on this node.
// Thin main: parse, run one recovery from helpers/lib, map its outcome to an
// OCF exit code and one reason line.

#include "msg/deadline.hpp"
#include "msg/dovecot_recovery.hpp"
#include "msg/innd_recovery.hpp"
#include "msg/log.hpp"
#include "msg/outcome.hpp"
#include "msg/postfix_recovery.hpp"
#include "msg/quorum.hpp"
#include "msg/slapd_recovery.hpp"

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

constexpr const char* dovecot_exit_codes_help = R"(Exit codes (OCF):
  0  recovered, or the instance is running and nothing was touched;
     one summary line on stdout (a skipped index check is said there)
  1  refused or failed: node not quorate, corosync unreachable, a stale file
     that cannot be removed, a tmp/ file that cannot be quarantined,
     deadline passed
  2  bad usage of msg-recover
  5  config file, --mail-root (store not mounted) or a Dovecot tool missing
  6  Dovecot rejects its configuration (doveconf), with Dovecot's own message
Every exit other than 0 prints exactly one reason line on stderr.
Logging goes to syslog through libqb (and to stderr on a terminal).)";

constexpr const char* innd_exit_codes_help = R"(Exit codes (OCF):
  0  recovered, or innd is running and nothing was touched (its ctlinnd mode
     is part of the summary: throttled or paused is logged as a warning);
     one summary line on stdout
  1  refused or failed: node not quorate, corosync unreachable, a live
     process serving innd's control socket without innd.pid naming it, no
     active file, a history rebuild that failed or outran the deadline
  2  bad usage of msg-recover
  5  inn.conf, pathdb or patharticles (store not mounted) or an INN tool missing
  6  INN rejects inn.conf (innconfval), with INN's own message; runasuser missing
Every exit other than 0 prints exactly one reason line on stderr.
Logging goes to syslog through libqb (and to stderr on a terminal).)";

constexpr const char* slapd_exit_codes_help = R"(Exit codes (OCF):
  0  recovered, or slapd is running and nothing was touched;
     one summary line on stdout
  1  refused or failed: node not quorate, corosync unreachable, a stale file
     that cannot be removed, an MDB database that fails to open (mdb_stat),
     deadline passed
  2  bad usage of msg-recover
  5  --config or an MDB database directory (storage not mounted) missing,
     slaptest or mdb_stat missing
  6  slapd rejects its configuration (slaptest -u), with slaptest's own message
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

    msg::dovecot_recovery_options dovecot_options;
    std::int64_t tmp_min_age_s = dovecot_options.tmp_min_age.count();
    bool skip_index_check = false;
    auto* dovecot = app.add_subcommand(
        "dovecot",
        "Dovecot: remove base_dir/master.pid left by a dead master and Maildir dotlocks (*.lock)\n"
        "below --mail-root that no live process on this host owns; move tmp/ files older than\n"
        "--tmp-min-age-s into <mail-root>/msg-quarantine/<UTC time>/ (never deletes mail); then\n"
        "open every mailbox of every user through a listener-less maintenance Dovecot and\n"
        "rebuild those that fail with `doveadm force-resync` (needs a userdb that can list its\n"
        "users, such as passwd-file; otherwise this step is skipped with a warning).\n"
        "Nothing is touched while the instance's master runs.\n"
        "Summary on stdout, e.g. \"recovered dovecot: removed 1 stale file; quarantined 0 tmp\n"
        "files; walked 4 Maildirs; rebuilt 1 mailbox index; node quorate\".");
    dovecot->add_option("--config-file", dovecot_options.config_file,
                        "dovecot.conf of the instance, passed to every dovecot, doveconf and doveadm call")
        ->required();
    dovecot->add_option("--mail-root", dovecot_options.mail_root,
                        "the Maildir store to walk for dotlocks and tmp/ leftovers (must exist)");
    dovecot->add_option("--deadline-ms", deadline_ms,
                        "Overall time budget in milliseconds, covering quorum, the store walk and the index check")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{24} * 3600 * 1000));
    dovecot->add_option("--tmp-min-age-s", tmp_min_age_s,
                        "quarantine Maildir tmp/ files at least this many seconds old")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    dovecot->add_flag("--no-index-check", skip_index_check, "skip opening every mailbox (very large stores)");
    dovecot->add_option("--dovecot", dovecot_options.dovecot, "the dovecot master binary")->capture_default_str();
    dovecot->add_option("--doveconf", dovecot_options.doveconf, "doveconf")->capture_default_str();
    dovecot->add_option("--doveadm", dovecot_options.doveadm, "doveadm")->capture_default_str();
    dovecot->footer(dovecot_exit_codes_help);

    msg::innd_recovery_options innd_options;
    auto* innd = app.add_subcommand(
        "innd",
        "INN: with innd not running, remove pathrun/innd.pid and the control, nntpin and\n"
        "ctlinndXXXXXX sockets no live process serves (create pathrun when this node lacks it),\n"
        "then check the history database (text tail, dbz .dir/.index/.hash against the text)\n"
        "and rebuild what is damaged as runasuser: the index with `makedbz`, the text with\n"
        "`makehistory` plus the old remembered entries (the damaged text is kept as\n"
        "history.damaged-<UTC time>). Every INN tool runs with INNCONF=--inn-conf.\n"
        "A running innd is left alone; its `ctlinnd mode` (throttled, paused) is reported.\n"
        "Summary on stdout, e.g. \"recovered innd: unclean shutdown (innd.pid left behind);\n"
        "removed 3 stale files; history intact (120 entries); node quorate\".");
    innd->add_option("--inn-conf", innd_options.inn_conf, "the instance's inn.conf (INNCONF of every INN tool)")
        ->required();
    innd->add_option("--deadline-ms", deadline_ms,
                     "Overall time budget in milliseconds, covering quorum, the history check and any rebuild")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{24} * 3600 * 1000));
    innd->add_option("--inn-bin-dir", innd_options.inn_bin_dir,
                     "where innconfval is (the other tools come from inn.conf's pathbin)")
        ->capture_default_str();
    innd->footer(innd_exit_codes_help);

    msg::slapd_recovery_options slapd_options;
    auto* slapd = app.add_subcommand(
        "slapd",
        "OpenLDAP slapd: with no live slapd (its pid file, or a slapd holding a database's\n"
        "lock.mdb), check the configuration with `slaptest -u`, remove the pid and args files\n"
        "(a live process a stale pid file names is never signalled), and per MDB database clear\n"
        "the reader slots of dead processes and open every named database with\n"
        "`mdb_stat -rr -a`: a database that fails to open is refused.\n"
        "Pid file and database directories come from the configuration (olcPidFile,\n"
        "olcDbDirectory; pidfile, directory) unless given.\n"
        "Summary on stdout, e.g. \"recovered slapd: removed 2 stale files; cleared 0 stale MDB\n"
        "readers; 1 MDB database opened cleanly; config check clean; node quorate\".");
    slapd->add_option("--config", slapd_options.config, "slapd.conf file or cn=config directory (slapd.d)")
        ->required();
    slapd->add_option("--pid-file", slapd_options.pid_file, "slapd's pid file (default: from the configuration)");
    slapd->add_option("--db-dir", slapd_options.db_dirs,
                      "an MDB database directory; repeatable (default: every one the configuration names)");
    slapd->add_option("--deadline-ms", deadline_ms,
                      "Overall time budget in milliseconds, covering quorum, slaptest and mdb_stat")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{24} * 3600 * 1000));
    slapd->add_option("--slapd", slapd_options.slapd, "the slapd executable a live slapd runs")->capture_default_str();
    slapd->add_option("--slaptest", slapd_options.slaptest, "slaptest")->capture_default_str();
    slapd->add_option("--mdb-stat", slapd_options.mdb_stat, "mdb_stat (lmdb-utils)")->capture_default_str();
    slapd->footer(slapd_exit_codes_help);

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
        if (dovecot->parsed()) {
            dovecot_options.tmp_min_age = std::chrono::seconds(tmp_min_age_s);
            dovecot_options.check_indexes = !skip_index_check;
            const auto report = msg::recover_dovecot(dovecot_options, quorum, limit);
            return to_ocf_exit(report.result, report.summary);
        }
        if (innd->parsed()) {
            const auto report = msg::recover_innd(innd_options, quorum, limit);
            return to_ocf_exit(report.result, report.summary);
        }
        if (slapd->parsed()) {
            const auto report = msg::recover_slapd(slapd_options, quorum, limit);
            return to_ocf_exit(report.result, report.summary);
        }
        return to_ocf_exit(msg::outcome(msg::ocf_code::err_args, "no service given"), {});
    } catch (const std::exception& e) {
        return to_ocf_exit(msg::outcome::failed(e.what()), {});
    }
}
