// msg-probe-ldap: the `ldap` check of msg-probe, in a binary of its own.
// `msg-probe ldap ARG...` runs `msg-probe-ldap ARG...`: only this binary
// loads libldap and the ~20 libraries behind it (GnuTLS, SASL, p11-kit,
// ...), so every other msg-probe call, above all the process check of each
// monitor, starts and stays small without them.
// Exit status is an OCF code; on any status but 0, exactly one reason line
// goes to stderr for the agent's ocf_exit_reason.
#include "msg/deadline.hpp"
#include "msg/exit_report.hpp"
#include "msg/ldap.hpp"
#include "msg/log.hpp"
#include "msg/outcome.hpp"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

namespace {

// The check's options, on libldap: addressed by URI rather than
// --host/--port/--socket.
void add_ldap_options(CLI::App* parser, const std::shared_ptr<msg::ldap_options>& options)
{
    parser->add_option("--uri", options->uri, "ldap://HOST[:PORT], ldaps://HOST[:PORT] or ldapi://%2Fpath%2Fsocket")
        ->required();
    parser->add_flag("--starttls", options->starttls, "StartTLS before anything else (ldap:// only)");
    parser->add_option("--ca-file", options->ca_file, "PEM file of CAs to trust instead of the system store");
    parser->add_option("--cert-warn-days", options->cert_warn_days,
                       "exit 190 when the certificate expires within N days (0: never)")
        ->check(CLI::NonNegativeNumber);
    parser
        ->add_option_function<int>(
            "--deadline-ms", [options](int ms) { options->time_limit = std::chrono::milliseconds(ms); },
            "the whole check ends within this many milliseconds (default 10000)")
        ->check(CLI::Range(1, 24 * 60 * 60 * 1000));
    parser->add_option("--suffix", options->suffix, "base-scope search of this DN (default: the rootDSE)");
    auto* bind_dn = parser->add_option("--bind-dn", options->bind_dn, "simple bind as this DN");
    auto* password = parser->add_option("--bind-password-file", options->bind_password_file,
                                        "the bind password (see below)");
    bind_dn->needs(password);
    password->needs(bind_dn);
    parser->add_flag("--sasl-external", options->sasl_external, "SASL EXTERNAL bind (ldapi:// peer credentials)")
        ->excludes(bind_dn);
    auto* probe_entry = parser->add_option("--probe-entry", options->probe_entry, "this entry must exist");
    parser
        ->add_option("--write-probe-attr", options->write_probe_attribute,
                     "replace this attribute of --probe-entry with the current time (fails on a full MDB map)")
        ->needs(probe_entry);
    auto* provider = parser->add_option("--provider-uri", options->provider_uri,
                                        "compare --suffix's contextCSN with this provider's (replication lag)");
    parser->add_flag("--provider-starttls", options->provider_starttls, "StartTLS to the provider")->needs(provider);
    parser
        ->add_option_function<long>(
            "--max-replication-lag-s",
            [options](long seconds) { options->max_replication_lag = std::chrono::seconds(seconds); },
            "exit 1 when this server lags the provider by more seconds")
        ->check(CLI::NonNegativeNumber)
        ->needs(provider);
    parser
        ->add_option_function<long>(
            "--warn-replication-lag-s",
            [options](long seconds) { options->warn_replication_lag = std::chrono::seconds(seconds); },
            "exit 190 when this server lags the provider by more seconds")
        ->check(CLI::NonNegativeNumber)
        ->needs(provider);
    auto* db_dir = parser->add_option("--db-dir", options->db_dir,
                                      "the suffix's MDB directory (data.mdb): exit 1 when its map is full");
    parser
        ->add_option("--maxsize-warn-percent", options->maxsize_warn_percent,
                     "exit 190 when the database's used pages exceed this share of its maxsize")
        ->check(CLI::Range(1, 100))
        ->needs(db_dir);
    parser
        ->add_option("--maxsize-bytes", options->maxsize_bytes,
                     "olcDbMaxSize, the map size to measure against (default: the one data.mdb records, which "
                     "LMDB never lowers: pass the configured one)")
        ->needs(db_dir);
    parser->footer(R"(Exit codes (OCF):
  0    healthy
  1    unhealthy: no or bad reply, stall, deadline passed, bind rejected (also
       invalid credentials: the service refuses its configured identity),
       suffix or probe entry missing, write probe failed (e.g. LDAP error 80
       from a full MDB map), bad certificate, replication lag over
       --max-replication-lag-s, MDB files missing under --db-dir or its
       map full (fewer than 32 pages left to grow into or reuse)
  2    bad usage of msg-probe
  6    misconfigured: unsafe or unreadable --bind-password-file or --ca-file
  7    nothing listening: connection refused, ldapi socket absent
  190  degraded: certificate expires within --cert-warn-days, lag over
       --warn-replication-lag-s, provider unreachable (lag unknown), MDB
       usage over --maxsize-warn-percent
On any exit status but 0, one reason line is written to stderr.

--bind-password-file holds the password alone (the DN is --bind-dn); one
trailing newline is stripped. It must be a regular file owned by root with
mode 0600 or 0400, or msg-probe exits 6. The password never goes to
arguments, the environment, logs or reasons.
The provider gets the same simple bind as this server (SASL EXTERNAL only
over ldapi://, else anonymous).)");
}

} // namespace

int main(int argc, char** argv)
{
    const msg::log_session log("msg-probe", isatty(STDERR_FILENO) == 1);
    return msg::report_exceptions([argc, argv] {
        CLI::App app("LDAP check: optional StartTLS and bind, base search of the suffix (or rootDSE), probe entry, "
                     "write probe, MDB usage, replication lag. The `ldap` check of msg-probe, which runs this binary.",
                     "msg-probe-ldap");
        auto options = std::make_shared<msg::ldap_options>();
        add_ldap_options(&app, options);
        if (const auto ended = msg::parse_command_line(app, argc, argv))
            return *ended;
        return msg::report_exit(msg::check_ldap(*options, msg::deadline::after(options->time_limit)));
    });
}
