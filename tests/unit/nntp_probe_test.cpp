// msg::check_nntp against in-process fake servers: every bad reply shape,
// including a multi-line reply that never ends, ends by the deadline or its
// bound with the right OCF code and a reason that never holds the password.
#include "msg/deadline.hpp"
#include "msg/nntp.hpp"
#include "msg/outcome.hpp"

#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "spawn_helper.hpp"
#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using msg::ocf_code;
using msg_test::contains;
using msg_test::expect_failure;
using msg_test::fake_server;
using msg_test::free_port;
using msg_test::server_script;
using msg_test::timed;
using msg_test::timed_outcome;

// Scheduling noise on a shared 2-core machine, never a real overrun.
constexpr auto slack = 300ms;

// What INN 2.7 says: innd in transit mode, then nnrpd after MODE READER.
const std::string innd_greeting = "200 news.example.com InterNetNews server INN 2.7.1 ready (transit mode)\r\n";
const std::string innd_capabilities = "101 Capability list:\r\nVERSION 2\r\nIMPLEMENTATION INN 2.7.1\r\n"
                                      "AUTHINFO\r\nIHAVE\r\nLIST ACTIVE ACTIVE.TIMES MOTD NEWSGROUPS\r\n"
                                      "MODE-READER\r\nSTREAMING\r\n.\r\n";
const std::string nnrpd_ready = "200 news.example.com InterNetNews NNRP server INN 2.7.1 ready (posting ok)\r\n";

// nnrpd's list; `authinfo` is the AUTHINFO line's arguments ("" for none).
std::string nnrpd_capabilities(const std::string& authinfo = "USER", bool starttls = false)
{
    return "101 Capability list:\r\nVERSION 2\r\nIMPLEMENTATION INN 2.7.1\r\nAUTHINFO"
           + (authinfo.empty() ? std::string() : " " + authinfo) + "\r\nHDR\r\nLIST ACTIVE NEWSGROUPS\r\nOVER\r\n"
           + "POST\r\nREADER\r\n" + (starttls ? "STARTTLS\r\n" : "") + ".\r\n";
}

timed_outcome run(const msg::nntp_options& options)
{
    return timed([&options] { return msg::check_nntp(options, msg::deadline::after(options.where.time_limit)); });
}

// innd's greeting and CAPABILITIES, MODE READER, nnrpd's CAPABILITIES.
server_script reader(const std::string& capabilities = nnrpd_capabilities())
{
    server_script script;
    script.send(innd_greeting)
        .expect("CAPABILITIES")
        .send(innd_capabilities)
        .expect("MODE READER")
        .send(nnrpd_ready)
        .expect("CAPABILITIES")
        .send(capabilities);
    return script;
}

server_script& date_and_quit(server_script& script)
{
    return script.expect("DATE").send("111 20261126122004\r\n").expect("QUIT").send("205 Bye!\r\n");
}

// POST accepted, the article read back as the server stored it.
server_script& post_and_read_back(server_script& script)
{
    return script.expect("POST")
        .send("340 Ok, recommended Message-ID <11e985o$sag$1@news.example.com>\r\n")
        .receive_block()
        .send("240 Article received\r\n")
        .expect("ARTICLE <msg-probe.")
        .echo_block("220 0 article\r\nPath: news.example.com!not-for-mail\r\n");
}

const std::regex probe_id(R"(<msg-probe\.[0-9a-f]{32}@msg-probe\.invalid>)");

class NntpProbe : public msg_test::login_probe_fixture<msg::nntp_options> {};

TEST_F(NntpProbe, InnDialogueSwitchesToReaderAndPasses)
{
    server_script script = reader();
    fake_server server(date_and_quit(script));
    const auto [result, elapsed] = run(options_for(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(result.reason(), "");
    EXPECT_EQ(server.received(),
              (std::vector<std::string>{"CAPABILITIES", "MODE READER", "CAPABILITIES", "DATE", "QUIT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST_F(NntpProbe, ReaderServerIsNotSentModeReader)
{
    server_script script;
    script.send("201 reader.example.com ready (no posting)\r\n").expect("CAPABILITIES").send(nnrpd_capabilities());
    fake_server server(date_and_quit(script));
    const auto [result, elapsed] = run(options_for(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(), (std::vector<std::string>{"CAPABILITIES", "DATE", "QUIT"}));
}

TEST_F(NntpProbe, DotStuffedLineDoesNotEndTheReply)
{
    // ".." is a stuffed "." line (RFC 3977 3.1.1): READER after it still counts.
    server_script script;
    script.send("200 ready\r\n").expect("CAPABILITIES").send("101 list\r\nVERSION 2\r\n..\r\n..X-DOT\r\nREADER\r\n.\r\n");
    fake_server server(date_and_quit(script));
    const auto [result, elapsed] = run(options_for(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(), (std::vector<std::string>{"CAPABILITIES", "DATE", "QUIT"}));
}

TEST_F(NntpProbe, ServerWithoutCapabilitiesStillPasses)
{
    server_script script;
    script.send("200 old.example.com ready\r\n")
        .expect("CAPABILITIES")
        .send("500 What?\r\n")
        .expect("MODE READER")
        .send("500 What?\r\n");
    fake_server server(date_and_quit(script));
    const auto [result, elapsed] = run(options_for(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
}

TEST_F(NntpProbe, GroupIsSelected)
{
    server_script script = reader();
    script.expect("GROUP msg.probe").send("211 3 1 3 msg.probe\r\n");
    fake_server server(date_and_quit(script));
    auto options = options_for(server);
    options.group = "msg.probe";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_TRUE(server.problems().empty());
}

TEST_F(NntpProbe, MissingGroupFailsWithTheServersText)
{
    server_script script = reader();
    script.expect("GROUP msg.probe").send("411 No such group msg.probe\r\n").expect("QUIT");
    fake_server server(script);
    auto options = options_for(server);
    options.group = "msg.probe";
    expect_failure(run(options), "GROUP msg.probe rejected: 411 No such group msg.probe", 1000ms);
    EXPECT_EQ(server.received_at_least(5).back(), "QUIT");
}

TEST_F(NntpProbe, RoundTripPostsATaggedArticleAndReadsItBack)
{
    server_script script = reader();
    script.expect("GROUP msg.probe").send("211 0 1 0 msg.probe\r\n").expect("DATE").send("111 20261126122004\r\n");
    post_and_read_back(script).expect("QUIT").send("205 Bye!\r\n");
    fake_server server(script);
    auto options = options_for(server);
    options.group = "msg.probe";
    options.round_trip = true;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_TRUE(server.problems().empty());
    ASSERT_EQ(server.literals().size(), 1u);
    const std::string article = server.literals().front();
    EXPECT_TRUE(contains(article, "Newsgroups: msg.probe\r\n"));
    std::smatch id;
    ASSERT_TRUE(std::regex_search(article, id, probe_id)) << article;
    EXPECT_TRUE(contains(article, "Message-ID: " + id.str() + "\r\n"));
    const std::vector<std::string> lines = server.received();
    EXPECT_NE(std::find(lines.begin(), lines.end(), "ARTICLE " + id.str()), lines.end());
}

TEST_F(NntpProbe, EachRoundTripUsesAFreshMessageId)
{
    std::vector<std::string> ids;
    for (int i = 0; i < 2; ++i) {
        server_script script = reader();
        script.expect("GROUP").send("211 0 1 0 msg.probe\r\n").expect("DATE").send("111 20261126122004\r\n");
        post_and_read_back(script).expect("QUIT").send("205 Bye!\r\n");
        fake_server server(script);
        auto options = options_for(server);
        options.group = "msg.probe";
        options.round_trip = true;
        ASSERT_EQ(run(options).result.code(), ocf_code::success);
        std::smatch id;
        const std::string article = server.literals().at(0);
        ASSERT_TRUE(std::regex_search(article, id, probe_id));
        ids.push_back(id.str());
    }
    EXPECT_NE(ids[0], ids[1]);
}

server_script posting_reader()
{
    server_script script = reader();
    script.expect("GROUP").send("211 0 1 0 msg.probe\r\n").expect("DATE").send("111 20261126122004\r\n");
    return script;
}

msg::nntp_options round_trip_options(const fake_server& server, std::chrono::milliseconds limit = 1s)
{
    msg::nntp_options options;
    options.where.port = server.port();
    options.where.time_limit = limit;
    options.group = "msg.probe";
    options.round_trip = true;
    return options;
}

TEST_F(NntpProbe, RefusedPostFails)
{
    server_script script = posting_reader();
    script.expect("POST").send("440 Posting not allowed\r\n").expect("QUIT");
    fake_server server(script);
    expect_failure(run(round_trip_options(server)), "POST to msg.probe rejected: 440 Posting not allowed", 1000ms);
}

TEST_F(NntpProbe, RejectedArticleFailsWithTheServersText)
{
    server_script script = posting_reader();
    script.expect("POST").send("340 Ok\r\n").receive_block().send("441 437 Unwanted newsgroup \"msg.probe\"\r\n");
    fake_server server(script);
    const auto outcome = run(round_trip_options(server));
    expect_failure(outcome, "441 437 Unwanted newsgroup \"msg.probe\"", 1000ms);
    EXPECT_TRUE(contains(outcome.result.reason(), "rejected"));
}

TEST_F(NntpProbe, AcceptedButUnreadableArticleFails)
{
    server_script script = posting_reader();
    script.expect("POST").send("340 Ok\r\n").receive_block().send("240 Article received\r\n").expect("ARTICLE").send(
        "430 No such article\r\n");
    fake_server server(script);
    const auto outcome = run(round_trip_options(server));
    expect_failure(outcome, "not found after the server accepted it: 430 No such article", 1000ms);
    EXPECT_TRUE(std::regex_search(outcome.result.reason(), std::regex("probe article [0-9a-f]{32} ")));
}

TEST_F(NntpProbe, ArticleReadBackWithoutItsBodyFails)
{
    server_script script = posting_reader();
    script.expect("POST").send("340 Ok\r\n").receive_block().send("240 Article received\r\n").expect("ARTICLE").send(
        "220 0 article\r\nMessage-ID: <other@example.com>\r\n\r\nsomething else\r\n.\r\n");
    fake_server server(script);
    expect_failure(run(round_trip_options(server)), "without its Message-ID header", 1000ms);
}

TEST_F(NntpProbe, ArticleThatNeverEndsFailsAtTheDeadline)
{
    server_script script = posting_reader();
    script.expect("POST").send("340 Ok\r\n").receive_block().send("240 Article received\r\n").expect("ARTICLE").send(
        "220 0 article\r\nPath: x\r\n\r\nbody\r\n").stall();
    fake_server server(script);
    const auto outcome = run(round_trip_options(server, 900ms));
    expect_failure(outcome, "no complete article ", 900ms + slack);
    EXPECT_TRUE(contains(outcome.result.reason(), "within 900 ms"));
}

TEST_F(NntpProbe, StalledGreetingEndsAtDeadline)
{
    fake_server server(server_script().stall());
    const auto outcome = run(options_for(server, 800ms));
    expect_failure(outcome, "no NNTP greeting within 800 ms", 800ms + slack);
    EXPECT_GE(outcome.elapsed, 780ms);
}

TEST_F(NntpProbe, ThrottledServerFailsWithItsReason)
{
    // INN while `ctlinnd throttle "disk maintenance"` is in force.
    fake_server server(server_script().send("400 disk maintenance\r\n").stall());
    const auto outcome = run(options_for(server, 1500ms));
    expect_failure(outcome,
                   "NNTP server 127.0.0.1:" + std::to_string(server.port()) + " refuses service: 400 disk maintenance",
                   500ms);
}

TEST_F(NntpProbe, AccessDeniedGreetingFails)
{
    fake_server server(server_script().send("502 You have no permission to talk.  Goodbye!\r\n").close());
    expect_failure(run(options_for(server)), "refuses service: 502 You have no permission to talk.", 1000ms);
}

TEST_F(NntpProbe, MalformedGreetingFails)
{
    fake_server server(server_script().send("* OK IMAP4rev1 ready\r\n").stall());
    expect_failure(run(options_for(server)), "malformed NNTP greeting: * OK IMAP4rev1 ready", 1000ms);
}

TEST_F(NntpProbe, MegabyteLineFailsBeforeDeadline)
{
    fake_server server(server_script().send_filler(1024 * 1024).stall());
    expect_failure(run(options_for(server, 2000ms)), "NNTP greeting: line longer than 4096 bytes", 2000ms);
}

TEST_F(NntpProbe, CloseInsideCapabilitiesFails)
{
    fake_server server(
        server_script().send(innd_greeting).expect("CAPABILITIES").send("101 Capability list:\r\nVERSION 2\r\nIHA").close());
    const auto outcome = run(options_for(server));
    expect_failure(outcome, "connection closed by 127.0.0.1:", 1000ms);
    EXPECT_TRUE(contains(outcome.result.reason(), "while waiting for complete reply to CAPABILITIES"));
}

TEST_F(NntpProbe, StallAfterDateEndsAtDeadline)
{
    server_script script = reader();
    fake_server server(script.expect("DATE").stall());
    expect_failure(run(options_for(server, 700ms)), "no reply to DATE within 700 ms", 700ms + slack);
}

TEST_F(NntpProbe, EndlessMultilineReplyFailsAtTheLineBound)
{
    std::string flood = "101 Capability list:\r\n";
    for (std::size_t i = 0; i <= msg::nntp_max_reply_lines; ++i)
        flood += "X-CAPABILITY-" + std::to_string(i) + "\r\n";
    fake_server server(server_script().send(innd_greeting).expect("CAPABILITIES").send(flood).stall());
    const auto outcome = run(options_for(server, 5000ms));
    expect_failure(outcome, "reply to CAPABILITIES longer than 4096 lines or 1048576 bytes without its final \".\"",
                   2000ms);
}

TEST_F(NntpProbe, EndlessMultilineReplyFailsAtTheByteBound)
{
    // Few lines, each long: the byte bound ends it, not the line bound.
    std::string flood = "101 Capability list:\r\n";
    const std::string long_line = "X-" + std::string(4000, 'y') + "\r\n";
    for (int i = 0; i < 300; ++i)
        flood += long_line;
    fake_server server(server_script().send(innd_greeting).expect("CAPABILITIES").send(flood).stall());
    expect_failure(run(options_for(server, 5000ms)), "reply to CAPABILITIES longer than", 3000ms);
}

TEST_F(NntpProbe, MultilineReplyWithoutFinalDotEndsAtDeadline)
{
    fake_server server(server_script()
                           .send(innd_greeting)
                           .expect("CAPABILITIES")
                           .send("101 Capability list:\r\nVERSION 2\r\nREADER\r\n")
                           .stall());
    const auto outcome = run(options_for(server, 800ms));
    expect_failure(outcome, "no complete reply to CAPABILITIES within 800 ms", 800ms + slack);
}

TEST_F(NntpProbe, PausedServerFailsWithThePauseReason)
{
    // A paused innd lists no MODE-READER and answers MODE READER with 403.
    server_script script;
    script.send(innd_greeting)
        .expect("CAPABILITIES")
        .send("101 Capability list:\r\nVERSION 2\r\nIHAVE\r\n.\r\n")
        .expect("MODE READER")
        .send("403 expire running\r\n")
        .expect("QUIT");
    fake_server server(script);
    expect_failure(run(options_for(server)), "MODE READER rejected: 403 expire running", 1000ms);
}

TEST_F(NntpProbe, NothingListeningIsNotRunning)
{
    msg::nntp_options options;
    options.where.port = free_port();
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::not_running);
    EXPECT_EQ(result.reason(),
              "nothing listening on 127.0.0.1:" + std::to_string(options.where.port) + " (connection refused)");
}

TEST_F(NntpProbe, RoundTripWithoutGroupIsBadUsage)
{
    msg::nntp_options options;
    options.where.port = free_port();
    options.round_trip = true;
    EXPECT_EQ(run(options).result.code(), ocf_code::err_args);
    options.group = "two groups";
    EXPECT_EQ(run(options).result.code(), ocf_code::err_args);
}

// -- STARTTLS, certificates, AUTHINFO

TEST_F(NntpProbe, StarttlsRefusedFails)
{
    // nnrpd without a usable certificate.
    server_script script = reader(nnrpd_capabilities("SASL", true));
    fake_server server(script.expect("STARTTLS").send("580 Error initializing TLS\r\n").expect("QUIT"));
    auto options = options_for(server);
    options.where.tls = msg::tls_mode::starttls;
    expect_failure(run(options), "STARTTLS rejected: 580 Error initializing TLS", 1000ms);
}

// reader() whose nnrpd offers STARTTLS but no AUTHINFO USER, the handshake,
// then CAPABILITIES with AUTHINFO USER, as INN does.
server_script starttls_with(const msg_test::pem_credentials& credentials)
{
    server_script script = reader(nnrpd_capabilities("SASL", true));
    script.expect("STARTTLS")
        .send("382 Begin TLS negotiation now\r\n")
        .start_tls(credentials)
        .expect("CAPABILITIES")
        .send(nnrpd_capabilities("USER SASL"));
    return script;
}

TEST_F(NntpProbe, AuthinfoAfterStarttlsPassesWhereUserWasWithheldBefore)
{
    const msg_test::test_ca ca;
    server_script script = starttls_with(ca.issue({"localhost", "127.0.0.1"}, msg_test::valid_for_days(90)));
    script.expect("AUTHINFO USER probe")
        .send("381 Enter password\r\n")
        .expect(std::string("AUTHINFO PASS ") + msg_test::test_password)
        .send("281 Authentication succeeded\r\n")
        .expect("CAPABILITIES")
        .send(nnrpd_capabilities("", false));
    fake_server server(date_and_quit(script));
    auto options = login_options(server);
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = dir_.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 14;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(),
              (std::vector<std::string>{"CAPABILITIES", "MODE READER", "CAPABILITIES", "STARTTLS", "CAPABILITIES",
                                        "AUTHINFO USER probe", "AUTHINFO PASS S3cret pw", "CAPABILITIES", "DATE",
                                        "QUIT"}));
}

TEST_F(NntpProbe, AuthinfoUserWithheldOverPlaintextIsRefusedWithoutSendingThePassword)
{
    fake_server server(reader(nnrpd_capabilities("SASL", true)).expect("QUIT"));
    const auto outcome = run(login_options(server));
    expect_failure(outcome,
                   "NNTP server 127.0.0.1:" + std::to_string(server.port())
                       + " does not offer AUTHINFO USER over plaintext: use --starttls or --tls",
                   1000ms);
    EXPECT_EQ(server.received_at_least(4).back(), "QUIT");
}

TEST_F(NntpProbe, RejectedPasswordFailsWithoutThePassword)
{
    server_script script = reader();
    script.expect("AUTHINFO USER probe")
        .send("381 Enter password\r\n")
        .expect("AUTHINFO PASS ")
        .send("481 Authentication failed for 'S3cret pw'\r\n")
        .expect("QUIT");
    fake_server server(script);
    expect_failure(run(login_options(server)),
                   "AUTHINFO PASS for probe rejected: 481 Authentication failed for '********'", 1000ms);
}

TEST_F(NntpProbe, ImplicitTlsCertificateExpiringSoonIsDegraded)
{
    const msg_test::test_ca ca;
    server_script script;
    script.start_tls(ca.issue({"localhost", "127.0.0.1"}, {-1h, std::chrono::hours(24 * 3 + 12)}))
        .send(nnrpd_ready)
        .expect("CAPABILITIES")
        .send(nnrpd_capabilities());
    fake_server server(date_and_quit(script));
    auto options = options_for(server);
    options.where.tls = msg::tls_mode::implicit;
    options.where.ca_file = dir_.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 7;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::degraded) << result.reason();
    EXPECT_TRUE(contains(result.reason(), "TLS certificate CN=localhost expires in 3 days"));
    EXPECT_EQ(server.received().back(), "QUIT");
}

TEST_F(NntpProbe, UnsafeCredentialsFilesAreMisconfiguredBeforeConnecting)
{
    fake_server server(server_script().stall());
    msg_test::expect_unsafe_credentials_refused(dir_, server, [&](const std::string& file) {
        auto options = login_options(server);
        options.credentials_file = file;
        return run(options).result;
    });
}

// -- the msg-probe binary, as the agent runs it

class NntpCli : public NntpProbe {};

TEST_F(NntpCli, HealthyDialogueExitsZeroSilently)
{
    server_script script = reader();
    fake_server server(date_and_quit(script));
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"nntp", "--port", std::to_string(server.port()),
                                                           "--deadline-ms", "1000"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(run.out, "");
}

TEST_F(NntpCli, ThrottledServerExitsOneWithOneLine)
{
    fake_server server(server_script().send("400 disk maintenance\r\n").stall());
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"nntp", "--port", std::to_string(server.port()),
                                                           "--deadline-ms", "1000"});
    EXPECT_EQ(run.exit_code, 1);
    const auto lines = msg_test::lines_of(run.err);
    ASSERT_EQ(lines.size(), 1u) << run.err;
    EXPECT_TRUE(contains(lines.front(), "refuses service: 400 disk maintenance"));
}

TEST_F(NntpCli, EndlessReplyExitsOneWithinTheDeadline)
{
    fake_server server(
        server_script().send(innd_greeting).expect("CAPABILITIES").send("101 Capability list:\r\nVERSION 2\r\n").stall());
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"nntp", "--port", std::to_string(server.port()),
                                                           "--deadline-ms", "800"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(run.err, "no complete reply to CAPABILITIES within 800 ms\n");
    EXPECT_LT(run.elapsed, 800ms + 500ms);
}

TEST_F(NntpCli, RoundTripWithoutGroupExitsTwo)
{
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"nntp", "--port", "119", "--round-trip"});
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_TRUE(contains(run.err, "--group"));
}

TEST_F(NntpCli, HelpDocumentsGroupRoundTripAndCredentials)
{
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"nntp", "--help"});
    EXPECT_EQ(run.exit_code, 0);
    for (const char* part : {"--group", "--round-trip", "--credentials-file", "--starttls", "0600 or 0400"})
        EXPECT_TRUE(contains(run.out, part)) << part;
}

} // namespace
