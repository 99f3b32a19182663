// msg-probe: deadline-bound protocol health checks for the messaging agents.
// Exit status is an OCF code; on any status but 0, exactly one reason line
// goes to stderr for the agent's ocf_exit_reason.
#include "msg/at_once.hpp"
#include "msg/deadline.hpp"
#include "msg/exit_report.hpp"
#include "msg/helper_dir.hpp"
#include "msg/imap.hpp"
#include "msg/ldap_probe_process.hpp"
#include "msg/log.hpp"
#include "msg/mailflow.hpp"
#include "msg/nntp.hpp"
#include "msg/outcome.hpp"
#include "msg/pop3.hpp"
#include "msg/probe_options.hpp"
#include "msg/process_identity.hpp"
#include "msg/reply_text.hpp"
#include "msg/smtp.hpp"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* exit_codes_help = R"(Exit codes (OCF):
  0    healthy
  1    unhealthy: bad or missing reply, stall, deadline passed, bad certificate
  2    bad usage of msg-probe
  6    misconfigured: unreadable --ca-file
  7    nothing listening: connection refused, socket absent
  190  degraded: healthy, but the certificate expires within --cert-warn-days
On any exit status but 0, one reason line is written to stderr.)";

constexpr const char* several_checks_help = R"(
Several checks in one call (smtp, lmtp, imap, pop3, nntp), e.g.
  msg-probe imap --port 143 lmtp --socket /run/dovecot/lmtp pop3 --port 110
run at once, each with its own --deadline-ms. The exit status is the first
failure in the order given, its reason naming the check ("IMAP
127.0.0.1:143: ..."); else 190 with every warning, joined with "; "; else 0.
mailflow and process run alone.)";

constexpr const char* credentials_help = R"(
--credentials-file: line 1 the username, line 2 the password; only the
newline ending each line is stripped, spaces count. It must be a regular file
owned by root with mode 0600 or 0400; if it is not, or is missing or
malformed, msg-probe exits 6. The password never goes to arguments, the
environment, logs or reasons.)";

// A subcommand: its parser, and what runs once its arguments are parsed.
// Adding a protocol is one function returning this plus one line in main.
// `label` names the check in the reason of a call that runs several (empty:
// the subcommand runs alone).
struct command {
    CLI::App* parser;
    std::function<msg::outcome()> run;
    std::function<std::string()> label;
};

// "IMAP 127.0.0.1:143", "LMTP /run/dovecot/lmtp": how a reason names a
// check among several. `default_port` is the protocol's, for the TLS mode
// the options end up with once parsed.
std::function<std::string()> label_for(const std::string& protocol, const msg::probe_options& where,
                                       std::function<std::uint16_t(msg::tls_mode)> default_port)
{
    return [protocol, &where, default_port = std::move(default_port)] {
        return msg::upper_ascii(protocol) + " " + msg::describe_target(where, default_port(where.tls));
    };
}

// The connection vocabulary every protocol shares.
void add_connection_options(CLI::App& parser, msg::probe_options& where, const std::string& default_ports)
{
    auto* host = parser.add_option("--host", where.host, "server address or name")->capture_default_str();
    auto* port = parser.add_option("--port", where.port, "server port (default " + default_ports + ")")
                     ->check(CLI::Range(1, 65535));
    parser.add_option("--socket", where.socket_path, "unix socket to connect to instead of --host/--port")
        ->excludes(host)
        ->excludes(port);
    auto* tls = parser.add_flag_callback("--tls", [&where] { where.tls = msg::tls_mode::implicit; },
                                         "TLS from the first byte");
    parser.add_flag_callback("--starttls", [&where] { where.tls = msg::tls_mode::starttls; },
                             "upgrade to TLS with the protocol's STARTTLS")
        ->excludes(tls);
    // Not CLI::ExistingFile: a missing CA file is a configuration fault (6)
    // the check reports, not a malformed command line (2).
    parser.add_option("--ca-file", where.ca_file, "PEM file of CAs to trust instead of the system store");
    parser.add_option("--server-name", where.server_name,
                      "name the server certificate must carry, also sent as SNI (default: --host)");
    parser.add_option("--cert-warn-days", where.cert_warn_days,
                      "exit 190 when the certificate expires within N days (0: never)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    parser
        .add_option_function<int>(
            "--deadline-ms", [&where](int ms) { where.time_limit = std::chrono::milliseconds(ms); },
            "the whole check ends within this many milliseconds (default 10000)")
        ->check(CLI::Range(1, 24 * 60 * 60 * 1000));
}

// `smtp` and `lmtp`: one dialogue, EHLO or LHLO.
command smtp_command(CLI::App& root, bool lmtp)
{
    auto options = std::make_shared<msg::smtp_options>();
    options->lmtp = lmtp;
    const std::string hello = lmtp ? "LHLO" : "EHLO";
    CLI::App* parser = root.add_subcommand(
        lmtp ? "lmtp" : "smtp",
        lmtp ? "LMTP check: banner 220, LHLO, extensions, NOOP, QUIT"
             : "SMTP check: banner 220, EHLO, extensions, NOOP, QUIT");
    add_connection_options(*parser, options->where, lmtp ? "24" : "25, 465 with --tls");
    parser->add_option(lmtp ? "--lhlo" : "--ehlo", options->helo_name, hello + " argument (default: this host's name)");
    parser->add_option("--require-ext", options->required_extensions,
                       "extension the server must offer after " + hello + ", e.g. SIZE or \"AUTH PLAIN\"; repeatable");
    auto* transaction = parser->add_flag("--transaction", options->transaction,
                                         "also MAIL FROM, RCPT TO and RSET: fails on 4xx/5xx, sends no mail");
    parser->add_option("--mail-from", options->mail_from, "transaction sender (default: null sender <>)")
        ->needs(transaction);
    parser->add_option("--rcpt-to", options->rcpt_to, "transaction recipient")
        ->capture_default_str()
        ->needs(transaction);
    parser->footer(exit_codes_help);
    return {parser,
            [options] { return msg::check_smtp(*options, msg::deadline::after(options->where.time_limit)); },
            label_for(parser->get_name(), options->where,
                      [lmtp](msg::tls_mode tls) { return msg::smtp_default_port(lmtp, tls); })};
}

// `imap`: greeting and CAPABILITY; with a login, SELECT and the level-20
// store round trip.
command imap_command(CLI::App& root)
{
    auto options = std::make_shared<msg::imap_options>();
    CLI::App* parser = root.add_subcommand(
        "imap", "IMAP check: greeting, CAPABILITY, optional LOGIN, SELECT and store round trip, LOGOUT");
    add_connection_options(*parser, options->where, "143, 993 with --tls");
    auto* login = parser->add_option("--credentials-file", options->credentials_file,
                                     "LOGIN with the username and password in this file (see below)");
    parser
        ->add_option("--mailbox", options->mailbox,
                     "SELECT this mailbox after LOGIN; with --round-trip, the probe mailbox (default INBOX)")
        ->needs(login);
    parser
        ->add_flag("--round-trip", options->round_trip,
                   "APPEND a probe message to --mailbox (created if missing), FETCH it back, flag it \\Deleted "
                   "and EXPUNGE it (UID EXPUNGE; plain EXPUNGE without UIDPLUS): give the probe its own mailbox")
        ->needs(login);
    parser->footer(std::string(exit_codes_help) + "\n" + credentials_help);
    return {parser,
            [options] { return msg::check_imap(*options, msg::deadline::after(options->where.time_limit)); },
            label_for("imap", options->where, msg::imap_default_port)};
}

// `pop3`: greeting and CAPA; with a login, USER/PASS and STAT.
command pop3_command(CLI::App& root)
{
    auto options = std::make_shared<msg::pop3_options>();
    CLI::App* parser
        = root.add_subcommand("pop3", "POP3 check: greeting, CAPA, optional STLS, USER/PASS and STAT, QUIT");
    add_connection_options(*parser, options->where, "110, 995 with --tls");
    parser->add_option("--credentials-file", options->credentials_file,
                       "USER/PASS with the username and password in this file (see below), then STAT");
    parser->footer(std::string(exit_codes_help) + "\n" + credentials_help);
    return {parser,
            [options] { return msg::check_pop3(*options, msg::deadline::after(options->where.time_limit)); },
            label_for("pop3", options->where, msg::pop3_default_port)};
}

// `nntp`: greeting, CAPABILITIES, MODE READER, DATE; with --group, GROUP;
// with --round-trip, the level-20 post-and-read of a probe article.
command nntp_command(CLI::App& root)
{
    auto options = std::make_shared<msg::nntp_options>();
    CLI::App* parser = root.add_subcommand(
        "nntp", "NNTP check: greeting 200/201, CAPABILITIES, MODE READER where needed, optional STARTTLS and "
                "AUTHINFO, GROUP, DATE, optional post-and-read round trip, QUIT");
    add_connection_options(*parser, options->where, "119, 563 with --tls");
    parser->add_option("--credentials-file", options->credentials_file,
                       "AUTHINFO USER/PASS with the username and password in this file (see below)");
    auto* group = parser->add_option("--group", options->group, "GROUP this newsgroup (the probe group)");
    parser
        ->add_flag("--round-trip", options->round_trip,
                   "POST a probe article with a random Message-ID to --group and read it back with ARTICLE; "
                   "the article stays and expires with the group: give the probe its own group")
        ->needs(group);
    parser->footer(std::string(exit_codes_help) + "\n" + credentials_help);
    return {parser,
            [options] { return msg::check_nntp(*options, msg::deadline::after(options->where.time_limit)); },
            label_for("nntp", options->where, msg::nntp_default_port)};
}

// `ldap` runs msg-probe-ldap (see main): only that binary loads libldap and
// the ~20 libraries behind it (GnuTLS, SASL, p11-kit, ...), so every other
// check, the process check of each monitor above all, starts without them.
// This entry only lists it in --help.
void list_ldap_command(CLI::App& root)
{
    root.add_subcommand("ldap", "LDAP check (runs msg-probe-ldap with the same arguments; see its --help): "
                                "optional StartTLS and bind, base search of the suffix (or rootDSE), probe entry, "
                                "write probe, MDB usage, replication lag");
}

// `msg-probe ldap ARG...`: replaces this process with msg-probe-ldap ARG...
// from the same directory. Returns only when that cannot run.
int exec_ldap_probe(int argc, char** argv)
{
    const std::filesystem::path ldap_probe = msg::own_helper_dir(argv[0]) / msg::ldap_probe_name;
    for (const auto& [name, value] : msg::ldap_probe_environment())
        ::setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> args{const_cast<char*>(ldap_probe.c_str())};
    args.insert(args.end(), argv + 2, argv + argc);
    args.push_back(nullptr);
    ::execv(ldap_probe.c_str(), args.data());
    const int error = errno;
    return msg::report_exit({error == ENOENT ? msg::ocf_code::err_installed : msg::ocf_code::err_generic,
                             "cannot run " + ldap_probe.string() + ": " + std::strerror(error)});
}

// The endpoint options of one of mailflow's two servers: --smtp-host,
// --imap-tls, ...: the shared vocabulary under the protocol's prefix.
void add_endpoint_options(CLI::App& parser, msg::probe_options& where, const std::string& protocol,
                          const std::string& default_ports)
{
    const std::string prefix = "--" + protocol + "-";
    const std::string name = msg::upper_ascii(protocol);
    parser.add_option(prefix + "host", where.host, name + " server address or name")->capture_default_str();
    parser.add_option(prefix + "port", where.port, name + " server port (default " + default_ports + ")")
        ->check(CLI::Range(1, 65535));
    auto* tls = parser.add_flag_callback(prefix + "tls", [&where] { where.tls = msg::tls_mode::implicit; },
                                         "TLS from the first byte");
    parser.add_flag_callback(prefix + "starttls", [&where] { where.tls = msg::tls_mode::starttls; },
                             "upgrade to TLS with " + name + " STARTTLS")
        ->excludes(tls);
    parser.add_option(prefix + "server-name", where.server_name,
                      "name the " + name + " server certificate must carry (default: " + prefix + "host)");
}

// A millisecond option that must be positive (or, with `zero_allowed`, 0).
void add_ms_option(CLI::App& parser, const std::string& name, std::chrono::milliseconds& value,
                   const std::string& description, bool zero_allowed = false)
{
    parser
        .add_option_function<int>(
            name, [&value](int ms) { value = std::chrono::milliseconds(ms); },
            description + " (default " + std::to_string(value.count()) + ")")
        ->check(CLI::Range(zero_allowed ? 0 : 1, 24 * 60 * 60 * 1000));
}

// `mailflow`: the end-to-end round trip, SMTP in and IMAP out. Prints the
// measured round trip on stdout for the agent to publish.
command mailflow_command(CLI::App& root)
{
    auto options = std::make_shared<msg::mailflow_options>();
    CLI::App* parser = root.add_subcommand(
        "mailflow", "Mail flow check: IMAP login, SMTP submission of a tagged probe message to --probe-address, "
                    "IMAP polling until it arrives, round trip measured, message deleted");
    add_endpoint_options(*parser, options->submission, "smtp", "25, 465 with --smtp-tls");
    parser->add_option("--smtp-credentials-file", options->submission_credentials_file,
                       "AUTH PLAIN (or LOGIN) with the username and password in this file (see below)");
    parser->add_option("--ehlo", options->helo_name, "EHLO argument (default: this host's name)");
    parser->add_option("--mail-from", options->mail_from, "envelope sender (default: the null sender <>)");
    parser->add_option("--probe-address,--rcpt-to", options->probe_address, "recipient of the probe message")
        ->required();
    add_endpoint_options(*parser, options->mailbox_server, "imap", "143, 993 with --imap-tls");
    parser
        ->add_option("--imap-credentials-file,--credentials-file", options->mailbox_credentials_file,
                     "LOGIN to the probe address's mailbox with the username and password in this file (see below)")
        ->required();
    parser->add_option("--mailbox", options->mailbox, "the folder the probe message is delivered to")
        ->capture_default_str();
    parser->add_option_function<std::string>(
        "--ca-file",
        [options](const std::string& file) { options->submission.ca_file = options->mailbox_server.ca_file = file; },
        "PEM file of CAs to trust for both servers instead of the system store");
    add_ms_option(*parser, "--max-delay-ms", options->max_delay,
                  "exit 1 when the message is not in the mailbox this long after the submission began");
    add_ms_option(*parser, "--warn-delay-ms", options->warn_delay,
                  "exit 190 for a round trip longer than this (0: never)", true);
    add_ms_option(*parser, "--poll-interval-ms", options->poll_interval, "pause between two looks into the mailbox");
    add_ms_option(*parser, "--deadline-ms", options->time_limit, "the whole check ends within this many milliseconds");
    parser->footer(std::string(R"help(Order: IMAP login and SELECT of --mailbox (a broken mailbox fails before any
mail is sent; probe messages of earlier runs older than ten minutes are
removed, where the server has WITHIN), then SMTP: EHLO, STARTTLS, AUTH,
MAIL FROM, RCPT TO, DATA; then NOOP and UID SEARCH HEADER Message-ID every
--poll-interval-ms in the same IMAP session until the message is there or
--max-delay-ms has passed since the SMTP connection; then UID STORE \Deleted,
UID EXPUNGE (EXPUNGE without UIDPLUS) and LOGOUT. The message carries a
random token in its Message-ID (<msg-probe.TOKEN@msg-probe.invalid>) and
Subject. Give the probe address a mailbox of its own.

Output: when the message was found, one line on stdout, also when a later
stage failed or the round trip was slow:
  round_trip_ms=N     (from the SMTP connection to the message seen over IMAP)

Exit codes (OCF):
  0    mail flows
  1    a stage broke; the reason names it: "mailbox login failed: ...",
       "submission refused: 554 ... (at RCPT TO)", "submission login
       failed: ...", "not delivered within N ms: ...", "deadline passed
       while <stage>: ...", "removing the probe message failed: ..."
  2    bad usage of msg-probe
  6    misconfigured: unsafe or unreadable credentials file or --ca-file
  7    nothing listening: "submission: nothing listening on ..." or
       "mailbox: nothing listening on ..."
  190  degraded: round trip over --warn-delay-ms
On any exit status but 0, one reason line is written to stderr.
)help") + credentials_help);
    return {parser, [options] {
                const msg::mailflow_result flow
                    = msg::check_mailflow(*options, msg::deadline::after(options->time_limit));
                if (flow.round_trip)
                    std::cout << "round_trip_ms=" << flow.round_trip->count() << std::endl;
                return flow.result;
            },
            {}};
}

// `process`: is the pid file's process really the daemon? No network: this
// is the agents' level-0 check and the source of pids for stop escalation.
command process_command(CLI::App& root)
{
    struct process_options {
        std::filesystem::path pid_file;
        std::vector<std::filesystem::path> exes;
        bool tree = false;
    };
    auto options = std::make_shared<process_options>();
    CLI::App* parser = root.add_subcommand(
        "process", "Daemon identity: the pid file's pid is alive, not a zombie, one of --exe (/proc/PID/exe), "
                   "and started no later than the pid file was written");
    parser->add_option("--pid-file", options->pid_file, "the daemon's pid file")->required();
    parser->add_option("--exe", options->exes, "absolute path of the daemon's executable; repeatable")->required();
    parser->add_flag("--tree", options->tree,
                     "print the daemon's pid and all its descendants' pids, one per line (for stop escalation)");
    parser->footer(R"(Exit codes (OCF):
  0    the daemon runs: its pid (with --tree, its process tree) on stdout
  2    bad usage of msg-probe
  7    not running: no pid file, garbage in it, a dead or zombie pid, or a pid
       that is another program or started after the file was written
       ("... which is not EXE: not signalling it": never signal that pid)
On any exit status but 0, one reason line is written to stderr.)");
    return {parser, [options] {
                return msg::check_daemon_process(options->pid_file, options->exes, options->tree, std::cout);
            },
            {}};
}

// CLI11 reports a mistyped subcommand as "A subcommand is required";
// naming the word that was not understood saves the operator a guess.
std::string usage_error(CLI::App& app, const std::exception& error)
{
    const std::vector<std::string> left = app.remaining();
    if (!app.get_subcommands().empty() || left.empty() || left.front().rfind('-', 0) == 0)
        return error.what();
    std::string known;
    for (const CLI::App* subcommand : app.get_subcommands([](const CLI::App*) { return true; }))
        known += (known.empty() ? "" : ", ") + subcommand->get_name();
    return "unknown subcommand '" + left.front() + "' (known: " + known + ")";
}

// The checks of one call, several at once (see several_checks_help).
msg::outcome run_several(const std::vector<const command*>& chosen)
{
    std::vector<std::function<msg::outcome()>> tasks;
    for (const command* one : chosen) {
        if (!one->label)
            return {msg::ocf_code::err_args, one->parser->get_name() + " runs alone: give it a call of its own"};
        tasks.emplace_back([one] { return msg::outcome_of(one->run); });
    }
    const std::vector<msg::outcome> results = msg::run_at_once(tasks);
    std::vector<msg::labelled_outcome> labelled;
    for (std::size_t i = 0; i < chosen.size(); ++i)
        labelled.push_back({chosen[i]->label(), results[i]});
    return msg::combined(labelled);
}

} // namespace

int main(int argc, char** argv)
{
    if (argc >= 2 && std::string_view(argv[1]) == "ldap")
        return exec_ldap_probe(argc, argv);
    const msg::log_session log("msg-probe", isatty(STDERR_FILENO) == 1);
    return msg::report_exceptions([argc, argv] {
        CLI::App app("Deadline-bound health checks of messaging servers, for OCF resource agents.", "msg-probe");
        app.require_subcommand(1, 0);
        app.footer(std::string(exit_codes_help) + "\n" + several_checks_help);
        // (--help and a mistyped subcommand list them in this order)
        std::vector<command> commands{
            smtp_command(app, false),
            smtp_command(app, true),
            imap_command(app),
            pop3_command(app),
        };
        list_ldap_command(app);
        for (auto* add : {nntp_command, mailflow_command, process_command})
            commands.push_back(add(app));
        if (const auto ended = msg::parse_command_line(
                app, argc, argv, [&app](const std::exception& error) { return usage_error(app, error); }))
            return *ended;
        std::vector<const command*> chosen;
        for (const CLI::App* given : app.get_subcommands()) {
            const auto found = std::find_if(commands.begin(), commands.end(),
                                            [given](const command& candidate) { return candidate.parser == given; });
            // Only `ldap` has no entry here: main runs it before parsing.
            if (found == commands.end())
                return msg::report_exit({msg::ocf_code::err_args, given->get_name() + " runs alone: give it a call "
                                                                                       "of its own"});
            chosen.push_back(&*found);
        }
        if (chosen.size() == 1)
            return msg::report_exit(chosen.front()->run());
        return msg::report_exit(run_several(chosen));
    });
}
