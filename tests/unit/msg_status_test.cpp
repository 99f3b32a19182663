// msg-status: its configuration grammar, and the binary against fake
// servers: the table, the JSON, and the exit code the node's worst check
// gives.
#include "msg/deadline.hpp"
#include "msg/ldap.hpp"
#include "msg/ldap_probe_process.hpp"
#include "msg/node_status.hpp"
#include "msg/outcome.hpp"
#include "msg/status_config.hpp"

#include "fake_mail_pair.hpp"
#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "spawn_helper.hpp"
#include "test_certificates.hpp"
#include "test_slapd.hpp"
#include "text_assertions.hpp"

// property_tree's JSON parser still includes the old boost/bind.hpp, which
// otherwise announces its deprecated global placeholders on every build.
#define BOOST_BIND_GLOBAL_PLACEHOLDERS
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace std::chrono_literals;
using msg::ocf_code;
using msg_test::contains;
using msg_test::fake_server;
using msg_test::server_script;

std::vector<msg::status_check> parsed(const std::string& text)
{
    return msg::parse_status_config(text, "test.conf");
}

// The reason parse_status_config refuses `text` with (6), or "" if it takes it.
std::string refusal(const std::string& text)
{
    try {
        parsed(text);
    } catch (const msg::check_failure& failure) {
        EXPECT_EQ(failure.result().code(), ocf_code::err_configured);
        return failure.result().reason();
    }
    return "";
}

TEST(StatusConfig, SectionsNameServicesAndKeysNameChecks)
{
    const auto checks = parsed("# the stack\n"
                               "[postfix]\n"
                               "smtp = 127.0.0.1:2525 starttls ca-file=/etc/ca.pem deadline-ms=3000\n"
                               "submission = smtp [::1]:587 ehlo=probe.example.com\n"
                               "; Dovecot\n"
                               "[dovecot]\n"
                               "imap = credentials-file=/etc/msg/cred mailbox=probe round-trip\n"
                               "lmtp = /run/dovecot/lmtp\n"
                               "[slapd]\n"
                               "ldap = ldapi:/// sasl-external suffix=\"dc=example, dc=com\"\n"
                               "[innd]\n"
                               "nntp = news.example.com group=local.probe\n");
    ASSERT_EQ(checks.size(), 6u);
    EXPECT_EQ(checks[0].service, "postfix");
    EXPECT_EQ(checks[0].name, "smtp");
    EXPECT_EQ(checks[0].protocol, "smtp");
    const auto& smtp = std::get<msg::smtp_options>(checks[0].probe);
    EXPECT_EQ(smtp.where.host, "127.0.0.1");
    EXPECT_EQ(smtp.where.port, 2525);
    EXPECT_EQ(smtp.where.tls, msg::tls_mode::starttls);
    EXPECT_EQ(smtp.where.ca_file, "/etc/ca.pem");
    EXPECT_EQ(smtp.where.time_limit, 3000ms);

    EXPECT_EQ(checks[1].name, "submission");
    EXPECT_EQ(checks[1].protocol, "smtp");
    const auto& submission = std::get<msg::smtp_options>(checks[1].probe);
    EXPECT_EQ(submission.where.host, "::1");
    EXPECT_EQ(submission.where.port, 587);
    EXPECT_EQ(submission.helo_name, "probe.example.com");
    EXPECT_EQ(submission.where.time_limit, 10000ms);

    EXPECT_EQ(checks[2].service, "dovecot");
    const auto& imap = std::get<msg::imap_options>(checks[2].probe);
    EXPECT_EQ(imap.where.host, "127.0.0.1");
    EXPECT_EQ(imap.where.port, 0); // the protocol's default
    EXPECT_EQ(imap.credentials_file, "/etc/msg/cred");
    EXPECT_EQ(imap.mailbox, "probe");
    EXPECT_TRUE(imap.round_trip);

    const auto& lmtp = std::get<msg::smtp_options>(checks[3].probe);
    EXPECT_TRUE(lmtp.lmtp);
    EXPECT_EQ(lmtp.where.socket_path, "/run/dovecot/lmtp");

    const auto& ldap = std::get<msg::ldap_options>(checks[4].probe);
    EXPECT_EQ(ldap.uri, "ldapi:///");
    EXPECT_TRUE(ldap.sasl_external);
    EXPECT_EQ(ldap.suffix, "dc=example, dc=com");

    const auto& nntp = std::get<msg::nntp_options>(checks[5].probe);
    EXPECT_EQ(nntp.where.host, "news.example.com");
    EXPECT_EQ(nntp.group, "local.probe");
}

TEST(StatusConfig, MailflowTakesItsOptionsOverContinuationLines)
{
    const auto checks = parsed("[mailflow]\n"
                               "round-trip = mailflow smtp-host=10.0.0.5 smtp-port=587 smtp-starttls\n"
                               "    smtp-credentials-file=/etc/msg/smtp.cred imap-port=993 imap-tls\n"
                               "\timap-credentials-file=/etc/msg/imap.cred probe-address=probe@example.com\n"
                               "    max-delay-ms=20000 warn-delay-ms=5000 ca-file=/etc/ca.pem\n");
    ASSERT_EQ(checks.size(), 1u);
    EXPECT_EQ(checks[0].name, "round-trip");
    EXPECT_EQ(checks[0].protocol, "mailflow");
    const auto& flow = std::get<msg::mailflow_options>(checks[0].probe);
    EXPECT_EQ(flow.submission.host, "10.0.0.5");
    EXPECT_EQ(flow.submission.port, 587);
    EXPECT_EQ(flow.submission.tls, msg::tls_mode::starttls);
    EXPECT_EQ(flow.submission_credentials_file, "/etc/msg/smtp.cred");
    EXPECT_EQ(flow.mailbox_server.port, 993);
    EXPECT_EQ(flow.mailbox_server.tls, msg::tls_mode::implicit);
    EXPECT_EQ(flow.mailbox_credentials_file, "/etc/msg/imap.cred");
    EXPECT_EQ(flow.probe_address, "probe@example.com");
    EXPECT_EQ(flow.max_delay, 20000ms);
    EXPECT_EQ(flow.warn_delay, 5000ms);
    EXPECT_EQ(flow.submission.ca_file, "/etc/ca.pem");
    EXPECT_EQ(flow.mailbox_server.ca_file, "/etc/ca.pem");
    EXPECT_EQ(flow.time_limit, 60000ms);
}

TEST(StatusConfig, MistakesAreMisconfiguredWithTheirLine)
{
    EXPECT_EQ(refusal("[postfix]\n\nsmtp = 127.0.0.1:25 bogus\n"), "test.conf:3: unknown smtp option 'bogus'");
    EXPECT_EQ(refusal("smtp = 127.0.0.1:25\n"), "test.conf:1: check 'smtp' outside a [service] section");
    EXPECT_EQ(refusal("[postfix]\nsubmission = 127.0.0.1:587\n"),
              "test.conf:2: 'submission' is no protocol: begin its value with one of smtp, lmtp, imap, pop3, nntp, "
              "ldap, mailflow");
    EXPECT_EQ(refusal("[postfix]\nsmtp = 127.0.0.1:99999\n"),
              "test.conf:2: port must be a whole number from 1 to 65535, not '99999'");
    EXPECT_EQ(refusal("[postfix]\nsmtp = deadline-ms=soon\n"),
              "test.conf:2: deadline-ms must be a whole number from 1 to 86400000, not 'soon'");
    EXPECT_EQ(refusal("[postfix]\nsmtp = starttls=yes\n"), "test.conf:2: starttls takes no value");
    EXPECT_EQ(refusal("[dovecot]\nimap = mailbox\n"), "test.conf:2: mailbox needs a value: mailbox=...");
    EXPECT_EQ(refusal("[postfix]\nsmtp = 127.0.0.1\nsmtp = 127.0.0.2\n"),
              "test.conf:3: check 'smtp' twice in [postfix]");
    EXPECT_EQ(refusal("[postfix\n"), "test.conf:1: malformed section header: [postfix");
    EXPECT_EQ(refusal("[slapd]\nldap = suffix=\"dc=example\n"),
              "test.conf:2: unterminated quote in suffix=\"dc=example");
    EXPECT_EQ(refusal("[mailflow]\nmailflow = 127.0.0.1 probe-address=a@b imap-credentials-file=/c\n"),
              "test.conf:2: mailflow takes no address, only options: '127.0.0.1'");
    EXPECT_EQ(refusal("[mailflow]\nmailflow = smtp-port=25\n"),
              "test.conf:2: mailflow needs probe-address=... and imap-credentials-file=...");
    EXPECT_EQ(refusal("# nothing\n[postfix]\n"), "test.conf: no checks configured");
}

// The msg-status binary against fake servers, with a configuration it trusts.
class MsgStatus : public ::testing::Test {
protected:
    msg_test::temp_dir dir_;

    std::string write_config(const std::string& text, mode_t mode = 0644) const
    {
        const std::string file = dir_.write("msg-status.conf", text);
        ::chmod(file.c_str(), mode);
        return file;
    }

    msg_test::helper_run status(const std::string& config_text, bool json = false) const
    {
        std::vector<std::string> args{"--config", write_config(config_text)};
        if (json)
            args.emplace_back("--json");
        return msg_test::run_helper(MSG_STATUS_PATH, args);
    }

    // The table's row for service/check, split at runs of two or more blanks.
    static std::vector<std::string> row(const msg_test::helper_run& run, const std::string& service,
                                        const std::string& check)
    {
        for (const std::string& line : msg_test::lines_of(run.out)) {
            std::vector<std::string> cells;
            std::size_t at = 0;
            while (at < line.size()) {
                const auto gap = line.find("  ", at);
                cells.push_back(line.substr(at, gap - at));
                if (gap == std::string::npos)
                    break;
                at = line.find_first_not_of(' ', gap);
            }
            if (cells.size() >= 2 && cells[0] == service && cells[1] == check)
                return cells;
        }
        ADD_FAILURE() << "no row " << service << "/" << check << " in:\n" << run.out;
        return {};
    }

    static std::string port_of(const fake_server& server) { return std::to_string(server.port()); }
};

server_script imap_greeting_only()
{
    server_script script;
    script.send("* OK [CAPABILITY IMAP4rev1] ready.\r\n")
        .expect_tagged("CAPABILITY")
        .send("* CAPABILITY IMAP4rev1 LITERAL+\r\n")
        .send_tagged("OK done.\r\n")
        .expect_tagged("LOGOUT")
        .send("* BYE bye\r\n")
        .send_tagged("OK done.\r\n");
    return script;
}

TEST_F(MsgStatus, AllChecksOkExitsZeroWithOneRowEach)
{
    fake_server smtp(msg_test::healthy_smtp());
    fake_server imap(imap_greeting_only());
    const auto run = status("[postfix]\nsmtp = 127.0.0.1:" + port_of(smtp) + "\n[dovecot]\nimap = 127.0.0.1:"
                            + port_of(imap) + "\n");
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    const auto lines = msg_test::lines_of(run.out);
    ASSERT_EQ(lines.size(), 3u) << run.out;
    EXPECT_EQ(lines[0].substr(0, 7), "SERVICE");
    for (const char* header : {"CHECK", "STATE", "LATENCY_MS", "REASON"})
        EXPECT_TRUE(contains(lines[0], header));
    EXPECT_EQ(row(run, "postfix", "smtp").at(2), "ok");
    EXPECT_EQ(row(run, "dovecot", "imap").at(2), "ok");
}

TEST_F(MsgStatus, OneFailedCheckExitsOneAndNamesIt)
{
    server_script refusing;
    refusing.send("554 5.3.2 fake.example.com service currently unavailable\r\n").expect("QUIT");
    fake_server smtp(refusing);
    fake_server imap(imap_greeting_only());
    const std::uint16_t nothing = msg_test::free_port();
    const auto run = status("[postfix]\nsmtp = 127.0.0.1:" + port_of(smtp) + "\n[dovecot]\nimap = 127.0.0.1:"
                            + port_of(imap) + "\npop3 = 127.0.0.1:" + std::to_string(nothing) + "\n");
    EXPECT_EQ(run.exit_code, 1);
    const auto smtp_row = row(run, "postfix", "smtp");
    ASSERT_EQ(smtp_row.size(), 5u);
    EXPECT_EQ(smtp_row[2], "failed");
    EXPECT_TRUE(contains(smtp_row[4], "SMTP session rejected: 554 5.3.2"));
    EXPECT_EQ(row(run, "dovecot", "imap").at(2), "ok");
    const auto pop3_row = row(run, "dovecot", "pop3");
    ASSERT_EQ(pop3_row.size(), 5u);
    EXPECT_EQ(pop3_row[2], "not running");
    EXPECT_TRUE(contains(pop3_row[4], "nothing listening on 127.0.0.1:" + std::to_string(nothing)));
    const auto reasons = msg_test::lines_of(run.err);
    ASSERT_EQ(reasons.size(), 1u) << run.err;
    EXPECT_EQ(reasons[0], "2 of 3 checks not ok: postfix/smtp failed, dovecot/pop3 not running");
}

TEST_F(MsgStatus, OnlyDegradationsExit190WithTheRoundTripAsLatency)
{
    msg_test::fake_mail_setup setup;
    setup.delivery_delay = 250ms;
    msg_test::fake_mail_pair pair(setup);
    fake_server smtp(msg_test::healthy_smtp());
    const std::string credentials = msg_test::write_credentials(
        dir_, "imap-credentials", std::string("probe\n") + msg_test::test_password + "\n");
    const auto run = status("[postfix]\nsmtp = 127.0.0.1:" + port_of(smtp) + "\n[mailflow]\nmailflow = smtp-port="
                            + std::to_string(pair.smtp_port()) + " imap-port=" + std::to_string(pair.imap_port())
                            + "\n  imap-credentials-file=" + credentials
                            + " probe-address=probe@example.org poll-interval-ms=20 warn-delay-ms=100\n");
    EXPECT_EQ(run.exit_code, 190) << run.err;
    const auto flow_row = row(run, "mailflow", "mailflow");
    ASSERT_EQ(flow_row.size(), 5u) << run.out;
    EXPECT_EQ(flow_row[2], "degraded");
    EXPECT_GE(std::stol(flow_row[3]), 250);
    EXPECT_TRUE(contains(flow_row[4], "mail flows slowly: round trip " + flow_row[3] + " ms"));
    EXPECT_EQ(row(run, "postfix", "smtp").at(2), "ok");
    EXPECT_EQ(msg_test::lines_of(run.err),
              (std::vector<std::string>{"1 of 2 checks not ok: mailflow/mailflow degraded"}));
    EXPECT_TRUE(pair.mailbox_uids().empty());
}

TEST_F(MsgStatus, JsonHasTheNodeVerdictAndEveryCheck)
{
    server_script refusing;
    refusing.send("421 4.3.2 \"shutting\" down\\now\r\n").expect("QUIT");
    fake_server smtp(refusing);
    fake_server imap(imap_greeting_only());
    const auto run = status("[postfix]\nsmtp = 127.0.0.1:" + port_of(smtp) + "\n[dovecot]\nimap = 127.0.0.1:"
                                + port_of(imap) + "\n",
                            true);
    EXPECT_EQ(run.exit_code, 1);
    ASSERT_EQ(msg_test::lines_of(run.out).size(), 1u) << run.out;
    boost::property_tree::ptree tree;
    std::istringstream text(run.out);
    ASSERT_NO_THROW(boost::property_tree::read_json(text, tree)) << run.out;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    EXPECT_EQ(tree.get<std::string>("node"), host);
    EXPECT_EQ(tree.get<std::string>("state"), "failed");
    EXPECT_EQ(tree.get<int>("exit_code"), 1);
    std::vector<boost::property_tree::ptree> checks;
    for (const auto& [key, check] : tree.get_child("checks"))
        checks.push_back(check);
    ASSERT_EQ(checks.size(), 2u);
    EXPECT_EQ(checks[0].get<std::string>("service"), "postfix");
    EXPECT_EQ(checks[0].get<std::string>("check"), "smtp");
    EXPECT_EQ(checks[0].get<std::string>("protocol"), "smtp");
    EXPECT_EQ(checks[0].get<std::string>("state"), "failed");
    EXPECT_EQ(checks[0].get<int>("exit_code"), 1);
    EXPECT_GE(checks[0].get<long>("latency_ms"), 0);
    EXPECT_TRUE(contains(checks[0].get<std::string>("reason"), "421 4.3.2 \"shutting\" down\\now"));
    EXPECT_EQ(checks[1].get<std::string>("service"), "dovecot");
    EXPECT_EQ(checks[1].get<std::string>("state"), "ok");
    EXPECT_EQ(checks[1].get<std::string>("reason"), "");
}

TEST_F(MsgStatus, ChecksRunAtOnceEachWithItsOwnDeadline)
{
    fake_server stalled_smtp(server_script().stall());
    fake_server stalled_imap(server_script().stall());
    const auto run = status("[postfix]\nsmtp = 127.0.0.1:" + port_of(stalled_smtp)
                            + " deadline-ms=1000\n[dovecot]\nimap = 127.0.0.1:" + port_of(stalled_imap)
                            + " deadline-ms=1000\n");
    EXPECT_EQ(run.exit_code, 1);
    // The limit a reason quotes is what was left when the connection began: a
    // millisecond less on a busy machine.
    EXPECT_TRUE(contains(row(run, "postfix", "smtp").at(4), "no SMTP banner within "));
    EXPECT_TRUE(contains(row(run, "dovecot", "imap").at(4), "no IMAP greeting within "));
    // One after the other they would take 2 s.
    EXPECT_GE(run.elapsed, 1000ms);
    EXPECT_LT(run.elapsed, 1700ms);
}

TEST_F(MsgStatus, UnsafeMissingOrMalformedConfigurationIsMisconfigured)
{
    fake_server smtp(msg_test::healthy_smtp());
    const std::string good = "[postfix]\nsmtp = 127.0.0.1:" + port_of(smtp) + "\n";
    const auto expect_six = [](const msg_test::helper_run& run, const std::string& part) {
        EXPECT_EQ(run.exit_code, 6);
        EXPECT_EQ(run.out, "");
        const auto lines = msg_test::lines_of(run.err);
        ASSERT_EQ(lines.size(), 1u) << run.err;
        EXPECT_TRUE(contains(lines[0], part));
    };
    const std::string file = write_config(good, 0664);
    expect_six(msg_test::run_helper(MSG_STATUS_PATH, {"--config", file}),
               "configuration file '" + file + "' is writable by group or others (mode 0664): it must not be");
    write_config(good);
    ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
    expect_six(msg_test::run_helper(MSG_STATUS_PATH, {"--config", file}), "is not owned by root");
    const std::string absent = (dir_.path() / "absent.conf").string();
    expect_six(msg_test::run_helper(MSG_STATUS_PATH, {"--config", absent}),
               "cannot open configuration file '" + absent + "': No such file or directory");
    ASSERT_EQ(::chown(file.c_str(), 0, 0), 0);
    expect_six(status("[postfix]\nsmtp = 127.0.0.1:25 sometimes\n"), "msg-status.conf:2: unknown smtp option");
    EXPECT_EQ(smtp.connections(), 0u);
}

TEST_F(MsgStatus, BadUsageExitsTwo)
{
    const auto run = msg_test::run_helper(MSG_STATUS_PATH, {"--verbose"});
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_EQ(msg_test::lines_of(run.err).size(), 1u) << run.err;
}

TEST_F(MsgStatus, HelpDocumentsTheConfigurationAndCodes)
{
    const auto run = msg_test::run_helper(MSG_STATUS_PATH, {"--help"});
    EXPECT_EQ(run.exit_code, 0);
    for (const char* part : {"--config", "--json", "[SERVICE]", "CHECK = [PROTOCOL] [ADDRESS] [OPTION[=VALUE]]",
                             "mailflow", "probe-address", "not running", "LATENCY_MS", "owned by root", "190"})
        EXPECT_TRUE(contains(run.out, part)) << part;
}

// --- LDAP rows: msg-probe-ldap as a child, so msg-status never loads libldap ---

TEST(StatusLdapChild, ArgumentsCarryEachSetOptionAndOnlyThePasswordFilesPath)
{
    msg::ldap_options options;
    options.uri = "ldap://127.0.0.1:3389";
    options.starttls = true;
    options.time_limit = 2500ms;
    options.suffix = "-dc=starts with a dash";
    options.bind_dn = "cn=admin,dc=example,dc=com";
    options.bind_password_file = "/etc/msg/ldap.pw";
    options.db_dir = "/var/lib/ldap";
    options.maxsize_warn_percent = 80;
    options.provider_uri = "ldap://10.0.0.1";
    options.warn_replication_lag = std::chrono::seconds(30);
    EXPECT_EQ(msg::ldap_probe_arguments(options),
              (std::vector<std::string>{"--uri=ldap://127.0.0.1:3389", "--starttls", "--deadline-ms=2500",
                                        "--suffix=-dc=starts with a dash", "--bind-dn=cn=admin,dc=example,dc=com",
                                        "--bind-password-file=/etc/msg/ldap.pw", "--provider-uri=ldap://10.0.0.1",
                                        "--warn-replication-lag-s=30", "--db-dir=/var/lib/ldap",
                                        "--maxsize-warn-percent=80"}));
}

TEST(StatusLdapChild, ProviderSettingsWithoutAProviderAreLeftOutAsCheckLdapIgnoresThem)
{
    msg::ldap_options options;
    options.uri = "ldapi:///";
    options.provider_starttls = true;
    options.max_replication_lag = std::chrono::seconds(60);
    options.maxsize_bytes = 1 << 20;
    EXPECT_EQ(msg::ldap_probe_arguments(options), (std::vector<std::string>{"--uri=ldapi:///", "--deadline-ms=10000"}));
}

// Contradictions say what check_ldap says in process, not CLI11's words
// from msg-probe-ldap's command line.
TEST(StatusLdapChild, ContradictoryOptionsGiveCheckLdapsReasons)
{
    for (const std::string options :
         {"maxsize-warn-percent=80", "write-probe-attr=description", "bind-dn=cn=x",
          "sasl-external bind-dn=cn=x bind-password-file=/etc/msg/ldap.pw"}) {
        const auto checks = parsed("[slapd]\nldap = ldap://127.0.0.1:1 " + options + " deadline-ms=500\n");
        const auto& ldap = std::get<msg::ldap_options>(checks[0].probe);
        const msg::outcome in_process = msg::check_ldap(ldap, msg::deadline::after(ldap.time_limit));
        const auto results = msg::run_status_checks(checks, std::filesystem::path(MSG_PROBE_PATH).parent_path());
        EXPECT_EQ(results[0].result.code(), ocf_code::err_args) << options;
        EXPECT_EQ(results[0].result.reason(), in_process.reason()) << options;
    }
}

TEST(StatusLdapChild, MissingProbeBinaryIsNotInstalled)
{
    const msg_test::temp_dir empty;
    const auto results = msg::run_status_checks(parsed("[slapd]\nldap = ldapi:///\n"), empty.path());
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].result.code(), ocf_code::err_installed);
    EXPECT_TRUE(contains(results[0].result.reason(), "cannot run " + (empty.path() / "msg-probe-ldap").string()))
        << results[0].result.reason();
}

TEST_F(MsgStatus, StalledLdapServerEndsItsRowAtItsOwnDeadline)
{
    fake_server ldap(server_script().stall());
    const auto run = status("[slapd]\nldap = ldap://127.0.0.1:" + port_of(ldap) + " deadline-ms=800\n");
    EXPECT_EQ(run.exit_code, 1) << run.err;
    EXPECT_EQ(row(run, "slapd", "ldap").at(4),
              "ldap://127.0.0.1:" + port_of(ldap) + ": no reply to base search of the rootDSE within 800 ms");
    EXPECT_GT(run.elapsed, 500ms);
    EXPECT_LT(run.elapsed, 800ms + 700ms);  // the child's own deadline, plus scheduling on a shared machine
}

// msg-status's LDAP rows against a real slapd: each row says what check_ldap
// says in process, code and reason alike.
class StatusLdapRows : public MsgStatus {
protected:
    void SetUp() override { slapd_.start(); }

    // The check's result run in this process, the way msg-status ran it before.
    static msg::outcome in_process(const msg::status_check& check)
    {
        const auto& options = std::get<msg::ldap_options>(check.probe);
        return msg::check_ldap(options, msg::deadline::after(options.time_limit));
    }

    msg_test::test_slapd slapd_;
};

TEST_F(StatusLdapRows, RowsCarryTheLdapChecksOwnCodesAndReasons)
{
    const msg_test::temp_dir dir;
    const std::string wrong_password = msg_test::write_credentials(dir, "wrong", "not the password\n");
    const std::string bind = std::string(" bind-dn=") + msg_test::test_slapd::root_dn + " bind-password-file=";
    const std::string config
        = "[slapd]\n"
          "bound = ldap " + slapd_.ldap_uri() + " suffix=" + msg_test::test_slapd::suffix + bind
          + slapd_.password_file().string() + " probe-entry=" + msg_test::test_slapd::probe_entry
          + " write-probe-attr=description deadline-ms=5000\n"
          "ldapi = ldap " + slapd_.ldapi_uri() + " sasl-external suffix=cn=config deadline-ms=5000\n"
          "wrongpw = ldap " + slapd_.ldap_uri() + bind + wrong_password + " deadline-ms=5000\n"
          "nosuffix = ldap " + slapd_.ldap_uri() + " suffix=dc=example,dc=org deadline-ms=5000\n"
          "nosocket = ldap " + msg_test::ldapi_uri_for(dir.path() / "absent")
          + " deadline-ms=5000\n";
    const auto checks = parsed(config);
    ASSERT_EQ(checks.size(), 5u);

    const auto run = status(config);
    EXPECT_EQ(run.exit_code, 1) << run.err;
    EXPECT_EQ(msg_test::lines_of(run.err).size(), 1u) << run.err;
    EXPECT_FALSE(contains(run.out + run.err, "not the password"));
    EXPECT_FALSE(contains(run.out + run.err, msg_test::test_password));
    const std::vector<std::string> expected_states{"ok", "ok", "failed", "failed", "not running"};
    for (std::size_t i = 0; i < checks.size(); ++i) {
        const msg::outcome before = in_process(checks[i]);
        const auto cells = row(run, "slapd", checks[i].name);
        ASSERT_GE(cells.size(), 4u) << run.out;
        EXPECT_EQ(cells[2], expected_states[i]) << checks[i].name << ": " << run.out;
        EXPECT_EQ(cells[2], msg::status_state(before.code())) << checks[i].name;
        EXPECT_EQ(cells.size() > 4 ? cells[4] : "", before.reason()) << checks[i].name;
    }
    EXPECT_TRUE(contains(row(run, "slapd", "wrongpw").at(4), "Invalid credentials (49)"));
    EXPECT_TRUE(contains(row(run, "slapd", "nosuffix").at(4), "suffix 'dc=example,dc=org' does not exist"));
}

} // namespace
