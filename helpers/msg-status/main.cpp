// msg-status: every configured probe of the messaging stack against this
// node, in one table (or JSON). Exit status is an OCF code; on any status
// but 0, exactly one reason line goes to stderr.
#include "msg/exit_report.hpp"
#include "msg/helper_dir.hpp"
#include "msg/ldap_probe_process.hpp"
#include "msg/log.hpp"
#include "msg/node_status.hpp"
#include "msg/outcome.hpp"
#include "msg/status_config.hpp"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <string>

namespace {

constexpr const char* help_footer = R"help(Configuration (--config): an INI-like file of checks, one per line:

  [SERVICE]
  CHECK = [PROTOCOL] [ADDRESS] [OPTION[=VALUE]]...

SERVICE and CHECK name the row (letters, digits, '-', '_', '.'). PROTOCOL is
one of smtp, lmtp, imap, pop3, nntp, ldap, mailflow; it may be left out when
CHECK is a protocol's name. ADDRESS is HOST, HOST:PORT, [IPV6]:PORT or an
absolute unix socket path (default 127.0.0.1 on the protocol's port); for
ldap a URI (default ldapi:///); mailflow takes none. OPTIONs are msg-probe's
long options for the protocol without the leading "--" (see msg-probe
PROTOCOL --help): starttls, tls, ca-file=F, server-name=N,
cert-warn-days=N, deadline-ms=N (each check's own deadline, default 10000;
60000 for mailflow), credentials-file=F (imap, pop3, nntp), mailbox=M and
round-trip (imap), group=G and round-trip (nntp), ehlo=N (lhlo=N for lmtp),
require-ext=X, transaction, mail-from=A, rcpt-to=A (smtp, lmtp),
suffix=DN, bind-dn=DN, bind-password-file=F, sasl-external, probe-entry=DN,
db-dir=D, maxsize-warn-percent=N, ... (ldap), and for mailflow smtp-host,
smtp-port, smtp-tls, smtp-starttls, smtp-credentials-file, imap-host,
imap-port, imap-tls, imap-starttls, imap-credentials-file, probe-address,
mailbox, mail-from, ca-file, max-delay-ms, warn-delay-ms, poll-interval-ms.
A VALUE with blanks goes in double quotes (\" and \\ inside). Lines starting
with '#' or ';' are comments; a line starting with a blank continues the
check above it. Example:

  [postfix]
  smtp = 127.0.0.1:25 starttls ca-file=/etc/ssl/certs/ca.pem
  submission = smtp 127.0.0.1:587 starttls
  [dovecot]
  imap = 127.0.0.1:143 credentials-file=/etc/msg/probe.cred mailbox=probe
  lmtp = /run/dovecot/lmtp
  [slapd]
  ldap = ldapi:/// sasl-external
  [innd]
  nntp = 127.0.0.1:119
  [mailflow]
  mailflow = smtp-port=25 imap-port=143 imap-credentials-file=/etc/msg/probe.cred
             probe-address=probe@example.com max-delay-ms=30000

The file must be owned by root and writable by no one else; it names the
credentials files and holds no secret itself (those files must be root's,
mode 0600 or 0400).

All checks run at once. Output: one row per check, SERVICE CHECK STATE
LATENCY_MS REASON, STATE being ok, degraded, failed or not running, and
LATENCY_MS how long the check took (for mailflow: the round trip); with
--json one object {"node", "state", "exit_code", "checks": [{"service",
"check", "protocol", "state", "exit_code", "latency_ms", "reason"}]}, the
node's state being ok, degraded or failed as the exit code says.

Exit codes (OCF):
  0    every check is ok
  1    a check failed or found nothing running
  2    bad usage of msg-status
  6    misconfigured: configuration file missing, unsafe or malformed
  190  degraded: no check failed, some are degraded
On any exit status but 0, one reason line is written to stderr.)help";

std::string node_name()
{
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0')
        return "localhost";
    return name;
}

} // namespace

int main(int argc, char** argv)
{
    const msg::log_session log("msg-status", isatty(STDERR_FILENO) == 1);
    return msg::report_exceptions([argc, argv] {
        CLI::App app("Runs every configured probe of the messaging stack against this node and prints one table: "
                     "service, check, state, latency, reason.",
                     "msg-status");
        std::filesystem::path config = MSG_STATUS_CONFIG;
        bool json = false;
        // Not CLI::ExistingFile: a missing configuration is a fault (6) to
        // report like any other, not a malformed command line (2).
        app.add_option("--config", config, "the checks to run (see below)")->capture_default_str();
        app.add_flag("--json", json, "one JSON object instead of the table, for machines");
        app.footer(help_footer);
        if (const auto ended = msg::parse_command_line(app, argc, argv))
            return *ended;
        // LDAP rows run msg-probe-ldap, installed beside msg-status.
        const std::vector<msg::status_result> results
            = msg::run_status_checks(msg::read_status_config(config), msg::own_helper_dir(argv[0]));
        if (json)
            msg::write_status_json(std::cout, results, node_name());
        else
            msg::write_status_table(std::cout, results);
        std::cout.flush();
        return msg::report_exit(msg::status_verdict(results));
    });
}
