// The msg-probe binary end to end, as an agent runs it: exit status and
// exactly one reason line on stderr (none on success).
#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "spawn_helper.hpp"
#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using msg_test::contains;
using msg_test::fake_server;
using msg_test::free_port;
using msg_test::helper_run;
using msg_test::server_script;

// Process start-up on a shared 2-core machine, never a real overrun.
constexpr auto slack = 500ms;

helper_run probe(const std::vector<std::string>& args)
{
    return msg_test::run_helper(MSG_PROBE_PATH, args);
}

std::vector<std::string> tcp_args(const char* protocol, const fake_server& server, const char* deadline_ms = "1000")
{
    return {protocol, "--host", "127.0.0.1", "--port", std::to_string(server.port()), "--ehlo", "probe.test",
            "--deadline-ms", deadline_ms};
}

// The agent contract: exactly one line on stderr, and it names the problem.
void expect_one_reason_line(const helper_run& run, const std::string& part)
{
    const auto lines = msg_test::lines_of(run.err);
    ASSERT_EQ(lines.size(), 1u) << "stderr: " << run.err;
    EXPECT_EQ(run.err.back(), '\n');
    EXPECT_TRUE(contains(lines.front(), part));
    EXPECT_TRUE(msg_test::printable_ascii(lines.front()));
    EXPECT_EQ(run.out, "");
}

TEST(MsgProbeCli, HealthySmtpExitsZeroSilently)
{
    fake_server server(msg_test::healthy_smtp());
    const auto run = probe(tcp_args("smtp", server));
    EXPECT_EQ(run.exit_code, 0);
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(server.received(), (std::vector<std::string>{"EHLO probe.test", "NOOP", "QUIT"}));
}

TEST(MsgProbeCli, StalledBannerExitsOneWithinDeadline)
{
    fake_server server(server_script().stall());
    const auto run = probe(tcp_args("smtp", server, "800"));
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "no SMTP banner within 800 ms");
    EXPECT_LT(run.elapsed, 800ms + slack);
}

TEST(MsgProbeCli, RejectingBannerExitsOneWithReply)
{
    fake_server server(server_script().send("554 5.3.2 not now\r\n").stall());
    const auto run = probe(tcp_args("smtp", server));
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "554 5.3.2 not now");
}

TEST(MsgProbeCli, MegabyteLineExitsOne)
{
    fake_server server(server_script().send_filler(1024 * 1024).stall());
    const auto run = probe(tcp_args("smtp", server, "1500"));
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "line longer than");
    EXPECT_LT(run.elapsed, 1500ms + slack);
}

TEST(MsgProbeCli, StallAfterEhloExitsOneWithinDeadline)
{
    fake_server server(server_script().send("220 fake ESMTP\r\n").expect("EHLO").stall());
    const auto run = probe(tcp_args("smtp", server, "700"));
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "no reply to EHLO within 700 ms");
    EXPECT_LT(run.elapsed, 700ms + slack);
}

TEST(MsgProbeCli, NothingListeningExitsSeven)
{
    const auto port = free_port();
    const auto run = probe({"smtp", "--port", std::to_string(port), "--deadline-ms", "1000"});
    EXPECT_EQ(run.exit_code, 7);
    expect_one_reason_line(run, "nothing listening on 127.0.0.1:" + std::to_string(port) + " (connection refused)");
}

TEST(MsgProbeCli, RequiredExtensionMissingExitsOne)
{
    fake_server server(msg_test::healthy_smtp({"PIPELINING"}));
    auto args = tcp_args("smtp", server);
    args.insert(args.end(), {"--require-ext", "PIPELINING", "--require-ext", "SMTPUTF8"});
    const auto run = probe(args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "required extension SMTPUTF8 not offered");
}

TEST(MsgProbeCli, TransactionQueueFullExitsOneWithReply)
{
    fake_server server(server_script()
                           .send("220 fake ESMTP\r\n")
                           .expect("EHLO ")
                           .send("250 fake\r\n")
                           .expect("MAIL FROM:<monitor@example.com>")
                           .send("250 2.1.0 Ok\r\n")
                           .expect("RCPT TO:<postmaster@example.com>")
                           .send("452 4.3.1 Insufficient system storage\r\n")
                           .stall());
    auto args = tcp_args("smtp", server);
    args.insert(args.end(),
                {"--transaction", "--mail-from", "monitor@example.com", "--rcpt-to", "postmaster@example.com"});
    const auto run = probe(args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "RCPT TO rejected: 452 4.3.1 Insufficient system storage");
}

TEST(MsgProbeCli, StarttlsRefusedExitsOne)
{
    fake_server server(server_script()
                           .send("220 fake ESMTP\r\n")
                           .expect("EHLO ")
                           .send("250-fake\r\n250 STARTTLS\r\n")
                           .expect("STARTTLS")
                           .send("454 4.7.0 TLS not available\r\n")
                           .stall());
    auto args = tcp_args("smtp", server);
    args.push_back("--starttls");
    const auto run = probe(args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "STARTTLS rejected: 454 4.7.0 TLS not available");
}

server_script tls_smtp(const msg_test::pem_credentials& credentials)
{
    server_script script;
    script.send("220 fake ESMTP\r\n")
        .expect("EHLO ")
        .send("250-fake\r\n250 STARTTLS\r\n")
        .expect("STARTTLS")
        .send("220 Ready\r\n")
        .start_tls(credentials)
        .expect("EHLO ")
        .send("250 fake\r\n")
        .expect("NOOP")
        .send("250 Ok\r\n")
        .expect("QUIT")
        .send("221 Bye\r\n");
    return script;
}

TEST(MsgProbeCli, SelfSignedCertificateExitsOne)
{
    fake_server server(tls_smtp(msg_test::self_signed({"localhost", "127.0.0.1"}, msg_test::valid_for_days(30))));
    auto args = tcp_args("smtp", server);
    args.push_back("--starttls");
    const auto run = probe(args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "self-signed certificate");
}

TEST(MsgProbeCli, ExpiredCertificateExitsOne)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    fake_server server(tls_smtp(ca.issue({"localhost", "127.0.0.1"}, {-std::chrono::hours(24 * 30), -1h})));
    auto args = tcp_args("smtp", server);
    args.insert(args.end(), {"--starttls", "--ca-file", dir.write("ca.pem", ca.certificate_pem())});
    const auto run = probe(args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "certificate has expired");
}

TEST(MsgProbeCli, CertificateExpiringSoonExitsDegraded)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    fake_server server(tls_smtp(ca.issue({"localhost", "127.0.0.1"}, {-1h, std::chrono::hours(24 * 3 + 12)})));
    auto args = tcp_args("smtp", server);
    args.insert(args.end(),
                {"--starttls", "--ca-file", dir.write("ca.pem", ca.certificate_pem()), "--cert-warn-days", "7"});
    const auto run = probe(args);
    EXPECT_EQ(run.exit_code, 190);
    expect_one_reason_line(run, "expires in 3 days");
}

TEST(MsgProbeCli, TrustedCertificateExitsZero)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    fake_server server(tls_smtp(ca.issue({"localhost", "127.0.0.1"}, msg_test::valid_for_days(60))));
    auto args = tcp_args("smtp", server);
    args.insert(args.end(),
                {"--starttls", "--ca-file", dir.write("ca.pem", ca.certificate_pem()), "--cert-warn-days", "7"});
    const auto run = probe(args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
}

TEST(MsgProbeCli, LmtpOverUnixSocketExitsZero)
{
    const msg_test::temp_dir dir;
    const std::string socket = (dir.path() / "lmtp").string();
    fake_server server(msg_test::healthy_smtp({"PIPELINING"}, "LHLO"), socket);
    const auto run = probe({"lmtp", "--socket", socket, "--lhlo", "probe.test", "--deadline-ms", "1000"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(server.received(), (std::vector<std::string>{"LHLO probe.test", "NOOP", "QUIT"}));
}

TEST(MsgProbeCli, LmtpAbsentSocketExitsSeven)
{
    const msg_test::temp_dir dir;
    const std::string socket = (dir.path() / "lmtp").string();
    const auto run = probe({"lmtp", "--socket", socket, "--deadline-ms", "1000"});
    EXPECT_EQ(run.exit_code, 7);
    expect_one_reason_line(run, "nothing listening on " + socket + " (socket absent)");
}

TEST(MsgProbeCli, UnknownOptionIsUsageError)
{
    const auto run = probe({"smtp", "--no-such-option"});
    EXPECT_EQ(run.exit_code, 2);
    expect_one_reason_line(run, "--no-such-option");
}

TEST(MsgProbeCli, MissingSubcommandIsUsageError)
{
    const auto run = probe({});
    EXPECT_EQ(run.exit_code, 2);
    expect_one_reason_line(run, "subcommand");
}

TEST(MsgProbeCli, UnknownSubcommandIsUsageError)
{
    const auto run = probe({"gopher"});
    EXPECT_EQ(run.exit_code, 2);
    expect_one_reason_line(run, "unknown subcommand 'gopher' (known: smtp, lmtp");
}

TEST(MsgProbeCli, ConflictingOptionsAreUsageErrors)
{
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"smtp", "--tls", "--starttls"},
             {"lmtp", "--socket", "/run/x", "--port", "24"},
             {"smtp", "--port", "0"},
             {"smtp", "--port", "65536"},
             {"smtp", "--deadline-ms", "0"},
             {"smtp", "--deadline-ms", "soon"},
             {"smtp", "--cert-warn-days", "-1"},
             {"smtp", "--mail-from", "a@example.com"},
         }) {
        const auto run = probe(args);
        EXPECT_EQ(run.exit_code, 2) << args.at(1);
        expect_one_reason_line(run, "");
    }
}

TEST(MsgProbeCli, LineBreakInArgumentIsUsageError)
{
    const auto run = probe({"smtp", "--ehlo", "probe.test\r\nRSET", "--port", std::to_string(free_port())});
    EXPECT_EQ(run.exit_code, 2);
    expect_one_reason_line(run, "--ehlo must not contain CR, LF or NUL");
}

TEST(MsgProbeCli, MissingCaFileIsMisconfigured)
{
    const auto run = probe({"smtp", "--starttls", "--ca-file", "/nonexistent/ca.pem", "--port",
                            std::to_string(free_port())});
    // Refused comes first: the CA file is only read when TLS starts.
    EXPECT_EQ(run.exit_code, 7);
    fake_server server(tls_smtp(msg_test::self_signed({"localhost"}, msg_test::valid_for_days(30))));
    auto args = tcp_args("smtp", server);
    args.insert(args.end(), {"--starttls", "--ca-file", "/nonexistent/ca.pem"});
    const auto misconfigured = probe(args);
    EXPECT_EQ(misconfigured.exit_code, 6);
    expect_one_reason_line(misconfigured, "cannot load CA file '/nonexistent/ca.pem'");
}

// `msg-probe A ... B ...`: the agents' one call for several dialogues.
std::vector<std::string> joined(std::vector<std::string> first, const std::vector<std::string>& second)
{
    first.insert(first.end(), second.begin(), second.end());
    return first;
}

TEST(MsgProbeCli, SeveralChecksInOneCallAllHealthyExitZeroSilently)
{
    const msg_test::temp_dir dir;
    const std::string socket = (dir.path() / "lmtp").string();
    fake_server smtp(msg_test::healthy_smtp());
    fake_server lmtp(msg_test::healthy_smtp({"PIPELINING"}, "LHLO"), socket);
    const auto run = probe(
        joined(tcp_args("smtp", smtp), {"lmtp", "--socket", socket, "--lhlo", "probe.test", "--deadline-ms", "1000"}));
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(smtp.received(), (std::vector<std::string>{"EHLO probe.test", "NOOP", "QUIT"}));
    EXPECT_EQ(lmtp.received(), (std::vector<std::string>{"LHLO probe.test", "NOOP", "QUIT"}));
}

TEST(MsgProbeCli, SeveralChecksRunAtOnceAndTheFirstFailureInTheirOrderIsNamed)
{
    const msg_test::temp_dir dir;
    const std::string socket = (dir.path() / "lmtp").string();
    fake_server smtp(server_script().send("220 fake ESMTP\r\n").expect("EHLO").stall());
    fake_server lmtp(server_script().send("220 fake LMTP\r\n").expect("LHLO").stall(), socket);
    const std::vector<std::string> lmtp_args{"lmtp", "--socket", socket, "--deadline-ms", "700"};
    const auto run = probe(joined(tcp_args("smtp", smtp, "700"), lmtp_args));
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "SMTP 127.0.0.1:" + std::to_string(smtp.port()) + ": no reply to EHLO within 700 ms");
    // Side by side, not one stall after the other.
    EXPECT_LT(run.elapsed, 700ms + slack);
    EXPECT_EQ(lmtp.received().front().rfind("LHLO", 0), 0u);
    // Given the other way round, the LMTP stall is the one reported.
    const auto reversed = probe(joined(lmtp_args, tcp_args("smtp", smtp, "700")));
    expect_one_reason_line(reversed, "LMTP " + socket + ": no reply to LHLO within 700 ms");
}

TEST(MsgProbeCli, SeveralChecksAFailureOutranksAnEarlierWarning)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    const std::vector<std::string> warn_soon{"--starttls", "--ca-file", dir.write("ca.pem", ca.certificate_pem()),
                                             "--cert-warn-days", "7"};
    const msg_test::pem_credentials expiring_certificate
        = ca.issue({"localhost", "127.0.0.1"}, {-1h, std::chrono::hours(24 * 3 + 12)});
    const std::string socket = (dir.path() / "lmtp").string();
    const std::vector<std::string> lmtp_args{"lmtp", "--socket", socket, "--deadline-ms", "1000"};
    fake_server expiring(tls_smtp(expiring_certificate));
    const auto failed = probe(joined(joined(tcp_args("smtp", expiring), warn_soon), lmtp_args));
    EXPECT_EQ(failed.exit_code, 7);
    expect_one_reason_line(failed, "LMTP " + socket + ": nothing listening on " + socket + " (socket absent)");

    fake_server lmtp(msg_test::healthy_smtp({"PIPELINING"}, "LHLO"), socket);
    fake_server again(tls_smtp(expiring_certificate));
    const auto warned = probe(joined(joined(tcp_args("smtp", again), warn_soon), lmtp_args));
    EXPECT_EQ(warned.exit_code, 190) << warned.err;
    expect_one_reason_line(warned, "SMTP 127.0.0.1:" + std::to_string(again.port()) + ": ");
    EXPECT_TRUE(contains(warned.err, "expires in 3 days"));
}

TEST(MsgProbeCli, ProcessAndMailflowRunAlone)
{
    fake_server smtp(msg_test::healthy_smtp());
    const auto run = probe(joined(tcp_args("smtp", smtp), {"process", "--pid-file", "/run/x.pid", "--exe", "/bin/x"}));
    EXPECT_EQ(run.exit_code, 2);
    expect_one_reason_line(run, "process runs alone");
    EXPECT_TRUE(smtp.received().empty());
}

TEST(MsgProbeCli, HelpDocumentsSubcommandsAndExitCodes)
{
    const auto run = probe({"--help"});
    EXPECT_EQ(run.exit_code, 0);
    EXPECT_EQ(run.err, "");
    for (const char* part : {"smtp", "lmtp", "Exit codes", "190", "nothing listening", "Several checks in one call"})
        EXPECT_TRUE(contains(run.out, part));
}

TEST(MsgProbeCli, SubcommandHelpDocumentsSharedVocabulary)
{
    const auto run = probe({"smtp", "--help"});
    EXPECT_EQ(run.exit_code, 0);
    EXPECT_EQ(run.err, "");
    for (const char* part : {"--host", "--port", "--socket", "--tls", "--starttls", "--ca-file", "--cert-warn-days",
                             "--deadline-ms", "--ehlo", "--require-ext", "--transaction", "Exit codes"})
        EXPECT_TRUE(contains(run.out, part));
}

} // namespace
