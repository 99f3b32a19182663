// msg::check_smtp against in-process fake servers: every way a server can
// misbehave must end by the deadline with the right OCF code and a reason.
#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/smtp.hpp"

#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace {

using namespace std::chrono_literals;
using msg::ocf_code;
using msg_test::contains;
using msg_test::fake_server;
using msg_test::free_port;
using msg_test::server_script;

// Scheduling noise on a shared 2-core machine, never a real overrun.
constexpr auto slack = 300ms;

using msg_test::timed_outcome;

msg::smtp_options options_for(std::uint16_t port, std::chrono::milliseconds limit = 1000ms)
{
    msg::smtp_options options;
    options.where.port = port;
    options.where.time_limit = limit;
    options.helo_name = "probe.test";
    return options;
}

timed_outcome run(const msg::smtp_options& options)
{
    return msg_test::timed([&] { return msg::check_smtp(options, msg::deadline::after(options.where.time_limit)); });
}

// Banner and an EHLO reply offering STARTTLS, up to the STARTTLS command.
server_script up_to_starttls()
{
    server_script script;
    script.send("220 fake ESMTP\r\n")
        .expect("EHLO ")
        .send("250-fake\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        .expect("STARTTLS");
    return script;
}

// up_to_starttls, a TLS handshake with `credentials`, then the healthy rest.
server_script starttls_with(const msg_test::pem_credentials& credentials,
                            const std::string& ehlo_reply_after_tls = "250-fake\r\n250 SIZE 1000\r\n")
{
    server_script script = up_to_starttls();
    script.send("220 2.0.0 Ready to start TLS\r\n")
        .start_tls(credentials)
        .expect("EHLO ")
        .send(ehlo_reply_after_tls)
        .expect("NOOP")
        .send("250 Ok\r\n")
        .expect("QUIT")
        .send("221 Bye\r\n");
    return script;
}

TEST(SmtpProbe, HealthyServerPasses)
{
    fake_server server(msg_test::healthy_smtp());
    const auto [result, elapsed] = run(options_for(server.port()));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(result.reason(), "");
    EXPECT_EQ(server.received(), (std::vector<std::string>{"EHLO probe.test", "NOOP", "QUIT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST(SmtpProbe, HostNameIsResolvedAndEveryAddressTried)
{
    // "localhost" may resolve to ::1 first, where nothing listens.
    fake_server server(msg_test::healthy_smtp());
    auto options = options_for(server.port());
    options.where.host = "localhost";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
}

TEST(SmtpProbe, StalledBannerEndsAtDeadline)
{
    fake_server server(server_script().stall());
    const auto [result, elapsed] = run(options_for(server.port(), 800ms));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "no SMTP banner within 800 ms");
    EXPECT_GE(elapsed, 780ms);
    EXPECT_LT(elapsed, 800ms + slack);
}

TEST(SmtpProbe, RejectingBannerFailsWithServerReply)
{
    fake_server server(server_script().send("554 5.3.2 mx.example.com busy, go away\r\n").stall());
    const auto [result, elapsed] = run(options_for(server.port()));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "SMTP session rejected: 554 5.3.2 mx.example.com busy, go away");
    EXPECT_LT(elapsed, 1000ms);
}

TEST(SmtpProbe, MegabyteLineWithoutNewlineFailsBeforeDeadline)
{
    fake_server server(server_script().send_filler(1024 * 1024).stall());
    const auto [result, elapsed] = run(options_for(server.port(), 1500ms));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(result.reason(), "SMTP banner: line longer than 2048 bytes"));
    EXPECT_LT(elapsed, 1500ms);
}

TEST(SmtpProbe, MalformedBannerFails)
{
    fake_server server(server_script().send("HTTP/1.1 400 Bad Request\r\n").stall());
    const auto [result, elapsed] = run(options_for(server.port()));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "malformed SMTP banner: HTTP/1.1 400 Bad Request");
}

TEST(SmtpProbe, CloseMidReplyFails)
{
    fake_server server(server_script()
                           .send("220 fake ESMTP\r\n")
                           .expect("EHLO ")
                           .send("250-fake\r\n250-PIPEL")
                           .close());
    const auto [result, elapsed] = run(options_for(server.port()));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(result.reason(), "connection closed by 127.0.0.1:"));
    EXPECT_TRUE(contains(result.reason(), "while waiting for complete reply to EHLO"));
    EXPECT_LT(elapsed, 1000ms);
}

TEST(SmtpProbe, AcceptThenStallAfterEhloEndsAtDeadline)
{
    fake_server server(server_script().send("220 fake ESMTP\r\n").expect("EHLO ").stall());
    const auto [result, elapsed] = run(options_for(server.port(), 700ms));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "no reply to EHLO within 700 ms");
    EXPECT_LT(elapsed, 700ms + slack);
}

TEST(SmtpProbe, StallInsideMultilineReplyEndsAtDeadline)
{
    fake_server server(server_script().send("220 fake ESMTP\r\n").expect("EHLO ").send("250-fake\r\n").stall());
    const auto [result, elapsed] = run(options_for(server.port(), 600ms));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "no complete reply to EHLO within 600 ms");
    EXPECT_LT(elapsed, 600ms + slack);
}

TEST(SmtpProbe, EndlessMultilineReplyFails)
{
    std::string flood;
    for (int i = 0; i < 200; ++i)
        flood += "250-X-EXTENSION-" + std::to_string(i) + "\r\n";
    fake_server server(server_script().send("220 fake ESMTP\r\n").expect("EHLO ").send(flood).stall());
    const auto [result, elapsed] = run(options_for(server.port()));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "reply to EHLO longer than 128 lines");
}

TEST(SmtpProbe, ReplyTextInReasonIsSanitizedAndBounded)
{
    fake_server server(
        server_script().send("554 \x1b[31mred\x07 alert " + std::string(500, 'y') + "\r\n").stall());
    const auto [result, elapsed] = run(options_for(server.port()));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_TRUE(msg_test::printable_ascii(result.reason()));
    EXPECT_TRUE(contains(result.reason(), "554 ?[31mred? alert yyy"));
    EXPECT_LT(result.reason().size(), 260u);
}

TEST(SmtpProbe, NothingListeningIsNotRunning)
{
    const auto port = free_port();
    const auto [result, elapsed] = run(options_for(port));
    EXPECT_EQ(result.code(), ocf_code::not_running);
    EXPECT_EQ(result.reason(), "nothing listening on 127.0.0.1:" + std::to_string(port) + " (connection refused)");
}

TEST(SmtpProbe, RequiredExtensionMissingFails)
{
    fake_server server(msg_test::healthy_smtp({"PIPELINING", "SIZE 10240000"}));
    auto options = options_for(server.port());
    options.required_extensions = {"PIPELINING", "AUTH"};
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "required extension AUTH not offered by 127.0.0.1:" + std::to_string(server.port())
                                   + " (offers: PIPELINING SIZE)");
}

TEST(SmtpProbe, RejectionIsFollowedByQuit)
{
    // Postfix then logs "quit=1" instead of "lost connection after EHLO".
    fake_server server(server_script()
                           .send("220 fake ESMTP\r\n")
                           .expect("EHLO ")
                           .send("250 fake\r\n")
                           .expect("QUIT")
                           .send("221 Bye\r\n"));
    auto options = options_for(server.port());
    options.required_extensions = {"SMTPUTF8"};
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(server.received_at_least(2), (std::vector<std::string>{"EHLO probe.test", "QUIT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST(SmtpProbe, RejectedBannerFailsAtOnceEvenIfServerThenStalls)
{
    // The farewell QUIT is sent, never waited for.
    fake_server server(server_script().send("421 4.3.2 try later\r\n").stall());
    const auto [result, elapsed] = run(options_for(server.port(), 1500ms));
    EXPECT_EQ(result.reason(), "SMTP session rejected: 421 4.3.2 try later");
    EXPECT_LT(elapsed, 500ms);
}

TEST(SmtpProbe, RequiredExtensionsMatchCaseInsensitivelyWithParameters)
{
    fake_server server(msg_test::healthy_smtp({"size 1000", "AUTH PLAIN LOGIN", "8BITMIME"}));
    auto options = options_for(server.port());
    options.required_extensions = {"SIZE", "auth login", "8bitmime"};
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
}

TEST(SmtpProbe, RequiredExtensionParameterMissingFails)
{
    fake_server server(msg_test::healthy_smtp({"AUTH LOGIN"}));
    auto options = options_for(server.port());
    options.required_extensions = {"AUTH PLAIN"};
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(result.reason(), "required extension AUTH PLAIN not offered"));
}

TEST(SmtpProbe, TransactionFullQueueFailsWithReply)
{
    fake_server server(server_script()
                           .send("220 fake ESMTP\r\n")
                           .expect("EHLO ")
                           .send("250 fake\r\n")
                           .expect("MAIL FROM:<>")
                           .send("250 2.1.0 Ok\r\n")
                           .expect("RCPT TO:<postmaster>")
                           .send("452 4.3.1 Insufficient system storage\r\n")
                           .stall());
    auto options = options_for(server.port());
    options.transaction = true;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "RCPT TO rejected: 452 4.3.1 Insufficient system storage");
    EXPECT_TRUE(server.problems().empty());
}

TEST(SmtpProbe, TransactionAtMailFromFailsWithReply)
{
    fake_server server(server_script()
                           .send("220 fake ESMTP\r\n")
                           .expect("EHLO ")
                           .send("250 fake\r\n")
                           .expect("MAIL FROM:<monitor@example.com>")
                           .send("452 4.3.1 Insufficient system storage\r\n")
                           .stall());
    auto options = options_for(server.port());
    options.transaction = true;
    options.mail_from = "monitor@example.com";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "MAIL FROM rejected: 452 4.3.1 Insufficient system storage");
}

TEST(SmtpProbe, TransactionEndsWithRsetAndSendsNoMail)
{
    fake_server server(server_script()
                           .send("220 fake ESMTP\r\n")
                           .expect("EHLO ")
                           .send("250 fake\r\n")
                           .expect("MAIL FROM:")
                           .send("250 2.1.0 Ok\r\n")
                           .expect("RCPT TO:")
                           .send("250 2.1.5 Ok\r\n")
                           .expect("RSET")
                           .send("250 2.0.0 Ok\r\n")
                           .expect("NOOP")
                           .send("250 2.0.0 Ok\r\n")
                           .expect("QUIT")
                           .send("221 2.0.0 Bye\r\n"));
    auto options = options_for(server.port());
    options.transaction = true;
    options.mail_from = "<monitor@example.com>";
    options.rcpt_to = "probe@example.com";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(),
              (std::vector<std::string>{"EHLO probe.test", "MAIL FROM:<monitor@example.com>",
                                        "RCPT TO:<probe@example.com>", "RSET", "NOOP", "QUIT"}));
}

TEST(SmtpProbe, LineBreakInOptionsIsUsageErrorBeforeConnecting)
{
    fake_server server(msg_test::healthy_smtp());
    auto options = options_for(server.port());
    options.transaction = true;
    options.rcpt_to = "a@example.com>\r\nDATA";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_args);
    EXPECT_EQ(result.reason(), "--rcpt-to must not contain CR, LF or NUL");
    EXPECT_EQ(server.connections(), 0u);
}

TEST(SmtpProbe, StarttlsRefusedFails)
{
    fake_server server(up_to_starttls().send("454 4.7.0 TLS not available due to local problem\r\n").stall());
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::starttls;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "STARTTLS rejected: 454 4.7.0 TLS not available due to local problem");
    EXPECT_LT(elapsed, 1000ms);
}

TEST(SmtpProbe, PlaintextAfterStarttlsReplyIsRejected)
{
    fake_server server(up_to_starttls().send("220 Ready\r\n250 injected\r\n").stall());
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::starttls;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(result.reason(), "sent plaintext after accepting STARTTLS"));
}

TEST(SmtpProbe, StalledTlsHandshakeEndsAtDeadline)
{
    fake_server server(up_to_starttls().send("220 Ready\r\n").stall());
    auto options = options_for(server.port(), 800ms);
    options.where.tls = msg::tls_mode::starttls;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "no TLS handshake with 127.0.0.1:" + std::to_string(server.port()) + " within 800 ms");
    EXPECT_LT(elapsed, 800ms + slack);
}

TEST(SmtpProbe, ServerNameOptionSelectsTheNameToVerify)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    fake_server server(starttls_with(ca.issue({"mx.example.org"}, msg_test::valid_for_days(30))));
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = dir.write("ca.pem", ca.certificate_pem());
    options.where.server_name = "mx.example.org";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
}

TEST(SmtpProbe, TrustedCertificatePassesAndEhloIsRepeatedAfterStarttls)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    // AUTH only after TLS, as Postfix's smtpd_tls_auth_only does it.
    fake_server server(starttls_with(ca.issue({"localhost", "127.0.0.1"}, msg_test::valid_for_days(90)),
                                     "250-fake\r\n250 AUTH PLAIN\r\n"));
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = dir.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 14;
    options.required_extensions = {"AUTH PLAIN"};
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(),
              (std::vector<std::string>{"EHLO probe.test", "STARTTLS", "EHLO probe.test", "NOOP", "QUIT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST(SmtpProbe, CertificateExpiringWithinWarningIsDegraded)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    // Half a day past three days, so whole-second rounding cannot make it 2 or 4.
    fake_server server(starttls_with(ca.issue({"localhost", "127.0.0.1"}, {-1h, std::chrono::hours(24 * 3 + 12)})));
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = dir.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 7;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::degraded) << result.reason();
    EXPECT_TRUE(contains(result.reason(), "TLS certificate CN=localhost expires in 3 days"));
    EXPECT_TRUE(contains(result.reason(), "(warning at 7 days)"));
    // Degraded is only a warning: the dialogue still ran to the end.
    EXPECT_EQ(server.received().back(), "QUIT");
}

TEST(SmtpProbe, DialogueFailureOutranksExpiringCertificate)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    server_script script = up_to_starttls();
    script.send("220 Ready\r\n")
        .start_tls(ca.issue({"localhost", "127.0.0.1"}, msg_test::valid_for_days(3)))
        .expect("EHLO ")
        .send("250 fake\r\n")
        .expect("NOOP")
        .send("421 4.3.2 shutting down\r\n");
    fake_server server(script);
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = dir.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 7;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "NOOP rejected: 421 4.3.2 shutting down");
}

TEST(SmtpProbe, ImplicitTlsPasses)
{
    const msg_test::test_ca ca;
    const msg_test::temp_dir dir;
    server_script script;
    script.start_tls(ca.issue({"localhost", "127.0.0.1"}, msg_test::valid_for_days(30)))
        .send("220 fake ESMTP\r\n")
        .expect("EHLO ")
        .send("250 fake\r\n")
        .expect("NOOP")
        .send("250 Ok\r\n")
        .expect("QUIT")
        .send("221 Bye\r\n");
    fake_server server(script);
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::implicit;
    options.where.ca_file = dir.write("ca.pem", ca.certificate_pem());
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
}

TEST(SmtpProbe, ImplicitTlsAgainstPlaintextServerFails)
{
    fake_server server(server_script().send("220 fake ESMTP\r\n").stall());
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::implicit;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_TRUE(contains(result.reason(), "TLS handshake with 127.0.0.1:")) << result.reason();
    EXPECT_TRUE(contains(result.reason(), "not a TLS port? --starttls upgrades a plaintext one"));
    EXPECT_LT(elapsed, 1000ms);
}

TEST(SmtpProbe, UnreadableCaFileIsMisconfigured)
{
    fake_server server(starttls_with(msg_test::self_signed({"localhost"}, msg_test::valid_for_days(30))));
    auto options = options_for(server.port());
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = "/nonexistent/ca.pem";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_configured);
    EXPECT_TRUE(contains(result.reason(), "cannot load CA file '/nonexistent/ca.pem'"));
}

TEST(SmtpProbe, ParsesExtensionsAfterTheGreeting)
{
    msg::smtp_reply reply{250, {"mx.example.com Hello", "PIPELINING", "size 1000", "AUTH PLAIN LOGIN"}};
    const auto extensions = msg::parse_extensions(reply);
    ASSERT_EQ(extensions.size(), 3u);
    EXPECT_EQ(extensions[0].keyword, "PIPELINING");
    EXPECT_EQ(extensions[1].keyword, "SIZE");
    EXPECT_EQ(extensions[1].parameters, (std::vector<std::string>{"1000"}));
    EXPECT_TRUE(msg::offers_extension(extensions, "auth plain"));
    EXPECT_FALSE(msg::offers_extension(extensions, "AUTH CRAM-MD5"));
    EXPECT_FALSE(msg::offers_extension(extensions, "MX.EXAMPLE.COM"));
    EXPECT_EQ(reply.text(), "250-mx.example.com Hello 250-PIPELINING 250-size 1000 250 AUTH PLAIN LOGIN");
}

class LmtpProbe : public ::testing::Test {
protected:
    msg_test::temp_dir dir_;
    std::string socket_path_ = (dir_.path() / "lmtp").string();

    msg::smtp_options lmtp_options(std::chrono::milliseconds limit = 1000ms) const
    {
        msg::smtp_options options;
        options.lmtp = true;
        options.where.socket_path = socket_path_;
        options.where.time_limit = limit;
        options.helo_name = "probe.test";
        return options;
    }
};

TEST_F(LmtpProbe, UnixSocketPasses)
{
    fake_server server(msg_test::healthy_smtp({"PIPELINING", "ENHANCEDSTATUSCODES"}, "LHLO"), socket_path_);
    const auto [result, elapsed] = run(lmtp_options());
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(), (std::vector<std::string>{"LHLO probe.test", "NOOP", "QUIT"}));
}

TEST_F(LmtpProbe, StalledBannerEndsAtDeadline)
{
    fake_server server(server_script().stall(), socket_path_);
    const auto [result, elapsed] = run(lmtp_options(500ms));
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "no LMTP banner within 500 ms");
    EXPECT_LT(elapsed, 500ms + slack);
}

TEST_F(LmtpProbe, AbsentSocketIsNotRunning)
{
    const auto [result, elapsed] = run(lmtp_options());
    EXPECT_EQ(result.code(), ocf_code::not_running);
    EXPECT_EQ(result.reason(), "nothing listening on " + socket_path_ + " (socket absent)");
}

TEST_F(LmtpProbe, StaleSocketFileIsNotRunning)
{
    // A dead daemon leaves its socket file behind: connect is refused.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_path_.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
    const auto [result, elapsed] = run(lmtp_options());
    EXPECT_EQ(result.code(), ocf_code::not_running);
    EXPECT_EQ(result.reason(), "nothing listening on " + socket_path_ + " (connection refused)");
}

TEST_F(LmtpProbe, TlsOverSocketNeedsServerName)
{
    auto options = lmtp_options();
    options.where.tls = msg::tls_mode::starttls;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_args);
    EXPECT_EQ(result.reason(), "TLS over a unix socket needs --server-name");
}

TEST_F(LmtpProbe, RecipientRejectedInTransactionFails)
{
    fake_server server(server_script()
                           .send("220 lmtp ready\r\n")
                           .expect("LHLO ")
                           .send("250 lmtp\r\n")
                           .expect("MAIL FROM:<>")
                           .send("250 2.1.0 OK\r\n")
                           .expect("RCPT TO:<nobody@example.com>")
                           .send("550 5.1.1 <nobody@example.com> User doesn't exist\r\n")
                           .stall(),
                       socket_path_);
    auto options = lmtp_options();
    options.transaction = true;
    options.rcpt_to = "nobody@example.com";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "RCPT TO rejected: 550 5.1.1 <nobody@example.com> User doesn't exist");
}

} // namespace
