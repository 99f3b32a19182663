// msg::check_pop3 against in-process fake servers: every bad reply shape
// ends by the deadline with the right OCF code and a reason that never
// holds the password.
#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/pop3.hpp"

#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "spawn_helper.hpp"
#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using msg::ocf_code;
using msg_test::contains;
using msg_test::fake_server;
using msg_test::expect_failure;
using msg_test::free_port;
using msg_test::server_script;
using msg_test::test_password;
using msg_test::timed;
using msg_test::timed_outcome;

// Scheduling noise on a shared 2-core machine, never a real overrun.
constexpr auto slack = 300ms;
const std::string dovecot_capa
    = "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n";

timed_outcome run(const msg::pop3_options& options)
{
    return timed([&options] { return msg::check_pop3(options, msg::deadline::after(options.where.time_limit)); });
}

// Greeting and CAPA answered with `capa` (status line, capabilities, ".").
server_script greeted(const std::string& capa = dovecot_capa)
{
    server_script script;
    script.send("+OK Dovecot (Debian) ready.\r\n").expect("CAPA").send(capa);
    return script;
}

server_script& quit(server_script& script)
{
    return script.expect("QUIT").send("+OK Logging out.\r\n");
}

// USER, PASS and STAT as the probe sends them, all accepted.
server_script& log_in(server_script& script)
{
    return script.expect("USER probe")
        .send("+OK\r\n")
        .expect(std::string("PASS ") + test_password)
        .send("+OK Logged in.\r\n")
        .expect("STAT")
        .send("+OK 2 320\r\n");
}

class Pop3Probe : public msg_test::login_probe_fixture<msg::pop3_options> {};

TEST_F(Pop3Probe, GreetingAndCapaWithoutLoginPass)
{
    server_script script = greeted();
    fake_server server(quit(script));
    const auto [result, elapsed] = run(options_for(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(result.reason(), "");
    EXPECT_EQ(server.received(), (std::vector<std::string>{"CAPA", "QUIT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST_F(Pop3Probe, LoginAndStatPass)
{
    server_script script = greeted();
    fake_server server(quit(log_in(script)));
    const auto [result, elapsed] = run(login_options(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(), (std::vector<std::string>{"CAPA", "USER probe", "PASS S3cret pw", "STAT", "QUIT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST_F(Pop3Probe, ServerWithoutCapaStillGetsUserAndPass)
{
    // RFC 2449: -ERR to CAPA means a server that predates it, not a fault.
    server_script script = greeted("-ERR Unknown command.\r\n");
    fake_server server(quit(log_in(script)));
    const auto [result, elapsed] = run(login_options(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
}

TEST_F(Pop3Probe, StalledGreetingEndsAtDeadline)
{
    fake_server server(server_script().stall());
    const auto outcome = run(options_for(server, 800ms));
    expect_failure(outcome, "no POP3 greeting within 800 ms", 800ms + slack);
    EXPECT_GE(outcome.elapsed, 780ms);
}

TEST_F(Pop3Probe, ErrGreetingFailsWithItsText)
{
    fake_server server(server_script().send("-ERR [SYS/TEMP] Too many connections\r\n").stall());
    expect_failure(run(options_for(server, 1500ms)), "POP3 session rejected: -ERR [SYS/TEMP] Too many connections",
                   500ms);
}

TEST_F(Pop3Probe, MalformedGreetingFails)
{
    fake_server server(server_script().send("* OK IMAP4rev1 ready\r\n").stall());
    expect_failure(run(options_for(server)), "malformed POP3 greeting: * OK IMAP4rev1 ready", 1000ms);
}

TEST_F(Pop3Probe, MegabyteLineFailsBeforeDeadline)
{
    fake_server server(server_script().send_filler(1024 * 1024).stall());
    expect_failure(run(options_for(server, 2000ms)), "POP3 greeting: line longer than 4096 bytes", 2000ms);
}

TEST_F(Pop3Probe, CloseInsideCapaFails)
{
    fake_server server(server_script().send("+OK ready\r\n").expect("CAPA").send("+OK\r\nTOP\r\nUID").close());
    const auto outcome = run(options_for(server));
    expect_failure(outcome, "connection closed by 127.0.0.1:", 1000ms);
    EXPECT_TRUE(contains(outcome.result.reason(), "while waiting for complete reply to CAPA"));
}

TEST_F(Pop3Probe, EndlessCapaFails)
{
    std::string flood = "+OK\r\n";
    for (int i = 0; i < 200; ++i)
        flood += "X-CAPABILITY-" + std::to_string(i) + "\r\n";
    fake_server server(server_script().send("+OK ready\r\n").expect("CAPA").send(flood).stall());
    expect_failure(run(options_for(server)), "reply to CAPA longer than 128 lines", 1000ms);
}

TEST_F(Pop3Probe, StallAfterPassEndsAtDeadline)
{
    server_script script = greeted();
    script.expect("USER ").send("+OK\r\n").expect("PASS ").stall();
    fake_server server(script);
    // The limit quoted is what was left when the connection began, after
    // the credentials file was read: a millisecond less on a busy machine.
    expect_failure(run(login_options(server, 700ms)), "no reply to PASS within ", 700ms + slack);
}

TEST_F(Pop3Probe, RejectedPassFailsWithoutThePassword)
{
    server_script script = greeted();
    script.expect("USER ")
        .send("+OK\r\n")
        .expect("PASS ")
        .send("-ERR [AUTH] Authentication failed.\r\n")
        .expect("QUIT");
    fake_server server(script);
    expect_failure(run(login_options(server)), "PASS for probe rejected: -ERR [AUTH] Authentication failed.", 1000ms);
    // The farewell QUIT follows a rejection.
    EXPECT_EQ(server.received_at_least(4).back(), "QUIT");
}

TEST_F(Pop3Probe, ServerEchoingThePasswordIsRedacted)
{
    server_script script = greeted();
    script.expect("USER ").send("+OK\r\n").expect("PASS ").send("-ERR bad password 'S3cret pw'\r\n").stall();
    fake_server server(script);
    expect_failure(run(login_options(server)), "PASS for probe rejected: -ERR bad password '********'", 1000ms);
}

TEST_F(Pop3Probe, UserNotOfferedOverPlaintextIsRefusedWithoutSendingThePassword)
{
    // Dovecot with disable_plaintext_auth drops USER from CAPA on plaintext.
    server_script script = greeted("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSTLS\r\nSASL\r\n.\r\n");
    fake_server server(script.expect("QUIT"));
    const auto outcome = run(login_options(server));
    expect_failure(outcome,
                   "POP3 server 127.0.0.1:" + std::to_string(server.port())
                       + " does not offer USER over plaintext: use --starttls or --tls",
                   1000ms);
    EXPECT_EQ(server.received_at_least(2), (std::vector<std::string>{"CAPA", "QUIT"}));
}

TEST_F(Pop3Probe, RejectedStatFails)
{
    server_script script = greeted();
    script.expect("USER ")
        .send("+OK\r\n")
        .expect("PASS ")
        .send("+OK Logged in.\r\n")
        .expect("STAT")
        .send("-ERR [SYS/TEMP] Internal error occurred. Refer to server log for more information.\r\n")
        .stall();
    fake_server server(script);
    expect_failure(run(login_options(server)), "STAT rejected: -ERR [SYS/TEMP] Internal error occurred.", 1000ms);
}

TEST_F(Pop3Probe, MalformedStatFails)
{
    server_script script = greeted();
    script.expect("USER ").send("+OK\r\n").expect("PASS ").send("+OK\r\n").expect("STAT").send("+OK many\r\n").stall();
    fake_server server(script);
    expect_failure(run(login_options(server)), "malformed reply to STAT: +OK many", 1000ms);
}

TEST_F(Pop3Probe, NothingListeningIsNotRunning)
{
    msg::pop3_options options;
    options.where.port = free_port();
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::not_running);
    EXPECT_EQ(result.reason(),
              "nothing listening on 127.0.0.1:" + std::to_string(options.where.port) + " (connection refused)");
}

TEST_F(Pop3Probe, StlsRefusedFails)
{
    server_script script = greeted();
    fake_server server(script.expect("STLS").send("-ERR TLS support isn't enabled.\r\n").stall());
    auto options = options_for(server);
    options.where.tls = msg::tls_mode::starttls;
    expect_failure(run(options), "STLS rejected: -ERR TLS support isn't enabled.", 1000ms);
}

// greeted() without USER (plaintext auth disabled), STLS, the handshake, CAPA with USER.
server_script stls_with(const msg_test::pem_credentials& credentials)
{
    server_script script = greeted("+OK\r\nCAPA\r\nSTLS\r\nSASL\r\n.\r\n");
    script.expect("STLS").send("+OK Begin TLS negotiation now.\r\n").start_tls(credentials).expect("CAPA").send(
        dovecot_capa);
    return script;
}

TEST_F(Pop3Probe, LoginAfterStlsPassesWhereUserWasWithheldBefore)
{
    const msg_test::test_ca ca;
    server_script script = stls_with(ca.issue({"localhost", "127.0.0.1"}, msg_test::valid_for_days(90)));
    fake_server server(quit(log_in(script)));
    auto options = login_options(server);
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = dir_.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 14;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(),
              (std::vector<std::string>{"CAPA", "STLS", "CAPA", "USER probe", "PASS S3cret pw", "STAT", "QUIT"}));
}

TEST_F(Pop3Probe, ImplicitTlsCertificateExpiringSoonIsDegraded)
{
    const msg_test::test_ca ca;
    server_script script;
    script.start_tls(ca.issue({"localhost", "127.0.0.1"}, {-1h, std::chrono::hours(24 * 3 + 12)}))
        .send("+OK ready\r\n")
        .expect("CAPA")
        .send(dovecot_capa);
    fake_server server(quit(script));
    auto options = options_for(server);
    options.where.tls = msg::tls_mode::implicit;
    options.where.ca_file = dir_.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 7;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::degraded) << result.reason();
    EXPECT_TRUE(contains(result.reason(), "TLS certificate CN=localhost expires in 3 days"));
    EXPECT_EQ(server.received().back(), "QUIT");
}

TEST_F(Pop3Probe, UnsafeCredentialsFilesAreMisconfiguredBeforeConnecting)
{
    fake_server server(server_script().stall());
    msg_test::expect_unsafe_credentials_refused(dir_, server, [&](const std::string& file) {
        auto options = login_options(server);
        options.credentials_file = file;
        return run(options).result;
    });
}

// The msg-probe binary, as the agent runs it.
class Pop3Cli : public Pop3Probe {
protected:
    std::vector<std::string> args_for(const fake_server& server) const
    {
        return {"pop3", "--port", std::to_string(server.port()), "--deadline-ms", "1000", "--credentials-file",
                credentials_};
    }
};

TEST_F(Pop3Cli, LoginExitsZeroSilently)
{
    server_script script = greeted();
    fake_server server(quit(log_in(script)));
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args_for(server));
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(run.out, "");
}

TEST_F(Pop3Cli, RejectedPassExitsOneWithOneLineAndNoPassword)
{
    server_script script = greeted();
    fake_server server(
        script.expect("USER ").send("+OK\r\n").expect("PASS ").send("-ERR [AUTH] S3cret pw is wrong\r\n"));
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args_for(server));
    EXPECT_EQ(run.exit_code, 1);
    const auto lines = msg_test::lines_of(run.err);
    ASSERT_EQ(lines.size(), 1u) << run.err;
    EXPECT_EQ(lines.front(), "PASS for probe rejected: -ERR [AUTH] ******** is wrong");
}

TEST_F(Pop3Cli, UnsafeCredentialsFileExitsSix)
{
    fake_server server(server_script().stall());
    std::filesystem::permissions(credentials_, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args_for(server));
    EXPECT_EQ(run.exit_code, 6);
    EXPECT_EQ(run.err, "credentials file '" + credentials_
                           + "' has mode 0640: it must be 0600 or stricter (no group or other access)\n");
    EXPECT_EQ(server.connections(), 0u);
}

TEST_F(Pop3Cli, HelpDocumentsTheCredentialsFile)
{
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"pop3", "--help"});
    EXPECT_EQ(run.exit_code, 0);
    for (const char* part : {"--credentials-file", "--starttls", "--tls", "line 1 the username", "0600 or 0400"})
        EXPECT_TRUE(contains(run.out, part));
}

} // namespace
