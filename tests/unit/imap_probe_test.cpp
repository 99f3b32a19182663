// msg::check_imap against in-process fake servers: every way an IMAP server
// can misbehave, literals that lie included, must end by the deadline with
// the right OCF code and a reason that never holds the password.
#include "msg/deadline.hpp"
#include "msg/imap.hpp"
#include "msg/outcome.hpp"

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
const std::string pre_login_caps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN";
const std::string post_login_caps = "IMAP4rev1 SASL-IR ID ENABLE IDLE SORT UIDPLUS MOVE LITERAL+";

timed_outcome run(const msg::imap_options& options)
{
    return timed([&options] { return msg::check_imap(options, msg::deadline::after(options.where.time_limit)); });
}

// Greeting and CAPABILITY listing `capabilities`.
server_script greeted(const std::string& capabilities = pre_login_caps + " STARTTLS")
{
    server_script script;
    script.send("* OK [CAPABILITY " + capabilities + "] Dovecot (Debian) ready.\r\n")
        .expect_tagged("CAPABILITY")
        .send("* CAPABILITY " + capabilities + "\r\n")
        .send_tagged("OK Pre-login capabilities listed, post-login capabilities have more.\r\n");
    return script;
}

server_script& logout(server_script& script)
{
    return script.expect_tagged("LOGOUT").send("* BYE Logging out\r\n").send_tagged("OK Logout completed.\r\n");
}

// greeted(), then LOGIN as "probe" answered with `capabilities`.
server_script logged_in(const std::string& capabilities = post_login_caps)
{
    server_script script = greeted();
    script.expect_tagged("LOGIN \"probe\" \"" + std::string(test_password) + "\"")
        .send_tagged("OK [CAPABILITY " + capabilities + "] Logged in\r\n");
    return script;
}

// APPEND of the probe message to "probe": the continuation, the literal, `stored` as the tagged reply.
server_script& append(server_script& script, const std::string& stored)
{
    return script.expect_tagged("APPEND \"probe\" (\\Seen) {")
        .send("+ OK\r\n")
        .receive_literal()
        .send_tagged(stored);
}

server_script& select(server_script& script)
{
    return script.expect_tagged("SELECT \"probe\"")
        .send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* 1 EXISTS\r\n* 0 RECENT\r\n"
              "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 8] Predicted next UID\r\n")
        .send_tagged("OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n");
}

// logged_in, APPEND answered with APPENDUID 7, SELECT, up to UID FETCH.
server_script up_to_fetch()
{
    server_script script = logged_in();
    append(script, "OK [APPENDUID 1700000000 7] Append completed.\r\n");
    select(script).expect_tagged("UID FETCH 7 (BODY.PEEK[])");
    return script;
}

// After UID FETCH: the stored message back, \Deleted, UID EXPUNGE, LOGOUT.
server_script& fetch_store_expunge(server_script& script, const std::string& uid = "7",
                                   const std::string& expunge = "UID EXPUNGE 7")
{
    script.echo_literal("* 1 FETCH (UID " + uid + " BODY[] ", ")\r\n")
        .send_tagged("OK Fetch completed.\r\n")
        .expect_tagged("UID STORE " + uid + " +FLAGS.SILENT (\\Deleted)")
        .send_tagged("OK Store completed.\r\n")
        .expect_tagged(expunge)
        .send("* 1 EXPUNGE\r\n")
        .send_tagged("OK Expunge completed.\r\n");
    return logout(script);
}

class ImapProbe : public msg_test::login_probe_fixture<msg::imap_options> {
protected:
    // Time for a whole healthy round trip (a dozen steps): generous, since
    // under AddressSanitizer on a busy machine one second was not enough.
    static constexpr std::chrono::milliseconds healthy_round_trip_limit = 5000ms;

    msg::imap_options round_trip_options(const fake_server& server, std::chrono::milliseconds limit = 1000ms) const
    {
        msg::imap_options options = login_options(server, limit);
        options.mailbox = "probe";
        options.round_trip = true;
        return options;
    }
};

TEST_F(ImapProbe, GreetingAndCapabilityWithoutLoginPass)
{
    server_script script = greeted();
    fake_server server(logout(script));
    const auto [result, elapsed] = run(options_for(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(result.reason(), "");
    EXPECT_EQ(server.received(), (std::vector<std::string>{"a1 CAPABILITY", "a2 LOGOUT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST_F(ImapProbe, LoginAndSelectPass)
{
    server_script script = logged_in();
    fake_server server(logout(select(script)));
    auto options = login_options(server);
    options.mailbox = "probe";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(), (std::vector<std::string>{"a1 CAPABILITY", "a2 LOGIN \"probe\" \"S3cret pw\"",
                                                           "a3 SELECT \"probe\"", "a4 LOGOUT"}));
    EXPECT_TRUE(server.problems().empty());
}

TEST_F(ImapProbe, CapabilitiesAreAskedAgainWhenLoginDoesNotAnnounceThem)
{
    server_script script = greeted();
    script.expect_tagged("LOGIN ")
        .send_tagged("OK Logged in\r\n")
        .expect_tagged("CAPABILITY")
        .send("* CAPABILITY " + post_login_caps + "\r\n")
        .send_tagged("OK Capability completed.\r\n");
    fake_server server(logout(script));
    const auto [result, elapsed] = run(login_options(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_TRUE(server.problems().empty());
}

TEST_F(ImapProbe, RoundTripWithAppenduidAndUidplusPasses)
{
    server_script script = up_to_fetch();
    fake_server server(fetch_store_expunge(script));
    const auto [result, elapsed] = run(round_trip_options(server, healthy_round_trip_limit));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_TRUE(server.problems().empty()) << server.problems().front();
    const auto received = server.received();
    ASSERT_EQ(received.size(), 8u);
    EXPECT_TRUE(contains(received[2], "a3 APPEND \"probe\" (\\Seen) {"));
    EXPECT_EQ(received[3], "a4 SELECT \"probe\"");
    EXPECT_EQ(received[4], "a5 UID FETCH 7 (BODY.PEEK[])");
    EXPECT_EQ(received[5], "a6 UID STORE 7 +FLAGS.SILENT (\\Deleted)");
    EXPECT_EQ(received[6], "a7 UID EXPUNGE 7");
    EXPECT_EQ(received[7], "a8 LOGOUT");
    // One message, in CR LF lines, tagged by a random token in Message-ID and Subject.
    const auto literals = server.literals();
    ASSERT_EQ(literals.size(), 1u);
    const std::string& message = literals.front();
    EXPECT_TRUE(contains(message, "\r\nMessage-ID: <msg-probe."));
    EXPECT_TRUE(contains(message, "\r\nSubject: msg-probe store check "));
    EXPECT_EQ(message.substr(message.size() - 2), "\r\n");
    EXPECT_EQ(message.find('\n'), message.find("\r\n") + 1);
}

TEST_F(ImapProbe, EveryRoundTripUsesAFreshToken)
{
    server_script script = up_to_fetch();
    fake_server server(fetch_store_expunge(script));
    EXPECT_EQ(run(round_trip_options(server)).result.code(), ocf_code::success);
    EXPECT_EQ(run(round_trip_options(server)).result.code(), ocf_code::success);
    ASSERT_EQ(server.literals().size(), 2u);
    const auto id_of = [](const std::string& message) {
        const auto at = message.find("Message-ID: ");
        return message.substr(at, message.find("\r\n", at) - at);
    };
    EXPECT_NE(id_of(server.literals()[0]), id_of(server.literals()[1]));
}

TEST_F(ImapProbe, RoundTripWithoutAppenduidSearchesAndWithoutUidplusExpunges)
{
    server_script script = logged_in("IMAP4rev1 LITERAL+");
    append(script, "OK Append completed.\r\n");
    select(script)
        .expect_tagged("UID SEARCH HEADER Message-ID \"<msg-probe.")
        .send("* SEARCH 12\r\n")
        .send_tagged("OK Search completed.\r\n")
        .expect_tagged("UID FETCH 12 (BODY.PEEK[])");
    fake_server server(fetch_store_expunge(script, "12", "EXPUNGE"));
    const auto [result, elapsed] = run(round_trip_options(server, healthy_round_trip_limit));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_TRUE(server.problems().empty()) << server.problems().front();
}

TEST_F(ImapProbe, EarlierProbeMessagesAreRemovedWithThisOne)
{
    server_script script = logged_in(post_login_caps + " WITHIN");
    append(script, "OK [APPENDUID 1700000000 7] Append completed.\r\n");
    select(script)
        .expect_tagged("UID FETCH 7 (BODY.PEEK[])")
        .echo_literal("* 3 FETCH (UID 7 BODY[] ", ")\r\n")
        .send_tagged("OK Fetch completed.\r\n")
        .expect_tagged("UID SEARCH OLDER 600 HEADER Message-ID \"@msg-probe.invalid>\"")
        .send("* SEARCH 2 5\r\n")
        .send_tagged("OK Search completed.\r\n")
        .expect_tagged("UID STORE 7,2,5 +FLAGS.SILENT (\\Deleted)")
        .send_tagged("OK Store completed.\r\n")
        .expect_tagged("UID EXPUNGE 7,2,5")
        .send("* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n")
        .send_tagged("OK Expunge completed.\r\n");
    fake_server server(logout(script));
    const auto [result, elapsed] = run(round_trip_options(server, healthy_round_trip_limit));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_TRUE(server.problems().empty()) << server.problems().front();
}

TEST_F(ImapProbe, MissingProbeMailboxIsCreated)
{
    server_script script = logged_in();
    append(script, "NO [TRYCREATE] Mailbox doesn't exist: probe\r\n")
        .expect_tagged("CREATE \"probe\"")
        .send_tagged("OK Create completed.\r\n");
    append(script, "OK [APPENDUID 1700000000 7] Append completed.\r\n");
    select(script).expect_tagged("UID FETCH 7 (BODY.PEEK[])");
    fake_server server(fetch_store_expunge(script));
    const auto [result, elapsed] = run(round_trip_options(server, healthy_round_trip_limit));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_TRUE(server.problems().empty()) << server.problems().front();
}

TEST_F(ImapProbe, MailboxCreatedMeanwhileIsFine)
{
    server_script script = logged_in();
    append(script, "NO [TRYCREATE] Mailbox doesn't exist: probe\r\n")
        .expect_tagged("CREATE \"probe\"")
        .send_tagged("NO [ALREADYEXISTS] Mailbox already exists\r\n");
    append(script, "OK [APPENDUID 1700000000 7] Append completed.\r\n");
    select(script).expect_tagged("UID FETCH 7 (BODY.PEEK[])");
    fake_server server(fetch_store_expunge(script));
    const auto [result, elapsed] = run(round_trip_options(server, healthy_round_trip_limit));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
}

TEST_F(ImapProbe, CreateRefusedFails)
{
    server_script script = logged_in();
    append(script, "NO [TRYCREATE] Mailbox doesn't exist: probe\r\n")
        .expect_tagged("CREATE \"probe\"")
        .send_tagged("NO [NOPERM] Permission denied\r\n")
        .stall();
    fake_server server(script);
    expect_failure(run(round_trip_options(server)), "CREATE probe rejected: NO [NOPERM] Permission denied", 1000ms);
}

TEST_F(ImapProbe, StalledGreetingEndsAtDeadline)
{
    fake_server server(server_script().stall());
    const auto outcome = run(options_for(server, 800ms));
    expect_failure(outcome, "no IMAP greeting within 800 ms", 800ms + slack);
    EXPECT_EQ(outcome.result.reason(), "no IMAP greeting within 800 ms");
    EXPECT_GE(outcome.elapsed, 780ms);
}

TEST_F(ImapProbe, ByeGreetingFailsWithItsText)
{
    fake_server server(server_script().send("* BYE Too many connections from your IP\r\n").stall());
    const auto outcome = run(options_for(server, 1500ms));
    expect_failure(outcome, "IMAP session rejected: * BYE Too many connections from your IP", 500ms);
}

TEST_F(ImapProbe, MalformedGreetingFails)
{
    fake_server server(server_script().send("220 mx.example.com ESMTP\r\n").stall());
    expect_failure(run(options_for(server)), "malformed IMAP greeting: 220 mx.example.com ESMTP", 1000ms);
}

TEST_F(ImapProbe, MegabyteLineFailsBeforeDeadline)
{
    fake_server server(server_script().send("* OK ").send_filler(1024 * 1024).stall());
    expect_failure(run(options_for(server, 2000ms)), "IMAP greeting: line longer than 65536 bytes", 2000ms);
}

TEST_F(ImapProbe, CloseMidReplyFails)
{
    server_script script;
    script.send("* OK ready\r\n").expect_tagged("CAPABILITY").send("* CAPABILITY IMAP4rev1\r\n* OK [ALE").close();
    fake_server server(script);
    const auto outcome = run(options_for(server));
    expect_failure(outcome, "connection closed by 127.0.0.1:", 1000ms);
    EXPECT_TRUE(contains(outcome.result.reason(), "while waiting for complete reply to CAPABILITY"));
}

TEST_F(ImapProbe, StallAfterLoginEndsAtDeadline)
{
    server_script script = greeted();
    script.expect_tagged("LOGIN ").stall();
    fake_server server(script);
    const auto outcome = run(login_options(server, 700ms));
    // The limit quoted is what was left when the connection began, after
    // the credentials file was read: a millisecond less on a busy machine.
    expect_failure(outcome, "no reply to LOGIN within ", 700ms + slack);
}

TEST_F(ImapProbe, StalledSelectEndsAtDeadline)
{
    // A stale dovecot-uidlist.lock makes SELECT wait about two minutes.
    server_script script = logged_in();
    script.expect_tagged("SELECT ").send("* FLAGS (\\Seen)\r\n").stall();
    fake_server server(script);
    auto options = login_options(server, 700ms);
    options.mailbox = "INBOX";
    // The limit quoted is what was left when the connection began, after
    // the credentials file was read: a millisecond less on a busy machine.
    expect_failure(run(options), "no complete reply to SELECT within ", 700ms + slack);
}

TEST_F(ImapProbe, RejectedLoginFailsWithoutThePassword)
{
    server_script script = greeted();
    script.expect_tagged("LOGIN ").send_tagged("NO [AUTHENTICATIONFAILED] Authentication failed.\r\n").expect("bye ");
    fake_server server(script);
    const auto outcome = run(login_options(server));
    expect_failure(outcome, "LOGIN as probe rejected: NO [AUTHENTICATIONFAILED] Authentication failed.", 1000ms);
    // The farewell LOGOUT follows a rejection.
    EXPECT_EQ(server.received_at_least(3).back(), "bye LOGOUT");
}

TEST_F(ImapProbe, ServerEchoingThePasswordIsRedacted)
{
    server_script script = greeted();
    script.expect_tagged("LOGIN ").send_tagged("BAD Unexpected argument: \"S3cret pw\"\r\n").stall();
    fake_server server(script);
    const auto outcome = run(login_options(server));
    expect_failure(outcome, "LOGIN as probe rejected: BAD Unexpected argument: \"********\"", 1000ms);
}

TEST_F(ImapProbe, LoginDisabledOverPlaintextIsRefusedWithoutSendingThePassword)
{
    server_script script = greeted(pre_login_caps + " STARTTLS LOGINDISABLED");
    fake_server server(script.expect_tagged("bye LOGOUT"));
    const auto outcome = run(login_options(server));
    expect_failure(outcome,
                   "IMAP server 127.0.0.1:" + std::to_string(server.port())
                       + " refuses LOGIN over plaintext (LOGINDISABLED): use --starttls or --tls",
                   1000ms);
    for (const auto& line : server.received_at_least(2))
        EXPECT_FALSE(contains(line, "LOGIN \""));
}

TEST_F(ImapProbe, EightBitPasswordIsSentAsLiteral)
{
    credentials_ = write_credentials("probe\np\xc3\xa4ss\n");
    server_script script = greeted();
    script.expect_tagged("LOGIN \"probe\" {5}")
        .send("+ OK\r\n")
        .receive_literal()
        .send_tagged("OK [CAPABILITY " + post_login_caps + "] Logged in\r\n");
    fake_server server(logout(script));
    const auto [result, elapsed] = run(login_options(server));
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.literals(), (std::vector<std::string>{"p\xc3\xa4ss"}));
    EXPECT_TRUE(server.problems().empty()) << server.problems().front();
}

TEST_F(ImapProbe, TaggedBadFails)
{
    server_script script = logged_in();
    script.expect_tagged("SELECT ").send_tagged("BAD Error in IMAP command SELECT: Invalid arguments.\r\n").stall();
    fake_server server(script);
    auto options = login_options(server);
    options.mailbox = "probe";
    expect_failure(run(options), "SELECT probe rejected: BAD Error in IMAP command SELECT: Invalid arguments.",
                   1000ms);
}

TEST_F(ImapProbe, ServerbugOnSelectFails)
{
    server_script script = logged_in();
    script.expect_tagged("SELECT ")
        .send_tagged("NO [SERVERBUG] Internal error occurred. Refer to server log for more information. "
                     "[2024-05-01 10:00:00]\r\n")
        .stall();
    fake_server server(script);
    auto options = login_options(server);
    options.mailbox = "probe";
    expect_failure(run(options), "SELECT probe rejected: NO [SERVERBUG] Internal error occurred.", 1000ms);
}

TEST_F(ImapProbe, ServerbugOnAppendFails)
{
    server_script script = logged_in();
    append(script, "NO [SERVERBUG] Internal error occurred. Refer to server log for more information.\r\n").stall();
    fake_server server(script);
    expect_failure(run(round_trip_options(server)), "APPEND to probe rejected: NO [SERVERBUG] Internal error occurred.",
                   1000ms);
}

TEST_F(ImapProbe, AppendRefusedBeforeTheLiteralFails)
{
    server_script script = logged_in();
    script.expect_tagged("APPEND ").send_tagged("NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n").stall();
    fake_server server(script);
    const auto outcome = run(round_trip_options(server));
    expect_failure(outcome, "APPEND to probe rejected: NO [OVERQUOTA] Quota exceeded", 1000ms);
    EXPECT_TRUE(server.literals().empty());
}

TEST_F(ImapProbe, LiteralShorterThanAnnouncedThenStallEndsAtDeadline)
{
    server_script script = up_to_fetch();
    script.send("* 1 FETCH (UID 7 BODY[] {500}\r\nFrom: only a few bytes").stall();
    fake_server server(script);
    const auto outcome = run(round_trip_options(server, 800ms));
    expect_failure(outcome, "no complete 500-byte literal in reply to UID FETCH within 800 ms (got 22 of 500 bytes)",
                   800ms + slack);
}

TEST_F(ImapProbe, LiteralShorterThanAnnouncedThenCloseFails)
{
    server_script script = up_to_fetch();
    script.send("* 1 FETCH (UID 7 BODY[] {500}\r\nFrom: only a few bytes").close();
    fake_server server(script);
    const auto outcome = run(round_trip_options(server, 1500ms));
    expect_failure(outcome, "while waiting for complete 500-byte literal in reply to UID FETCH (got 22 of 500 bytes)",
                   1000ms);
}

TEST_F(ImapProbe, LiteralOverTheLimitFailsAtOnce)
{
    server_script script = up_to_fetch();
    script.send("* 1 FETCH (UID 7 BODY[] {2000000}\r\n").send_filler(64 * 1024).stall();
    fake_server server(script);
    const auto outcome = run(round_trip_options(server, 1500ms));
    expect_failure(outcome,
                   "reply to UID FETCH announces a literal of 2000000 bytes, over the 1048576-byte limit", 1000ms);
}

TEST_F(ImapProbe, AbsurdLiteralLengthFailsWithoutOverflow)
{
    fake_server server(server_script().send("* OK {99999999999999999999999}\r\n").stall());
    expect_failure(run(options_for(server)), "IMAP greeting announces a literal of 99999999999999999999999 bytes",
                   1000ms);
}

TEST_F(ImapProbe, FetchWithoutTheProbeMessageFails)
{
    server_script script = up_to_fetch();
    script.send("* 1 FETCH (UID 7 BODY[] {12}\r\nsomething el)\r\n").send_tagged("OK Fetch completed.\r\n").stall();
    fake_server server(script);
    expect_failure(run(round_trip_options(server)), "(UID 7) not read back from probe", 1000ms);
}

TEST_F(ImapProbe, ProbeMessageNotFoundBySearchFails)
{
    server_script script = logged_in("IMAP4rev1");
    append(script, "OK Append completed.\r\n");
    select(script).expect_tagged("UID SEARCH ").send("* SEARCH\r\n").send_tagged("OK Search completed.\r\n").stall();
    fake_server server(script);
    expect_failure(run(round_trip_options(server)), "not found in probe after APPEND", 1000ms);
}

TEST_F(ImapProbe, ExpungeThatRemovesNothingFails)
{
    server_script script = up_to_fetch();
    script.echo_literal("* 1 FETCH (UID 7 BODY[] ", ")\r\n")
        .send_tagged("OK Fetch completed.\r\n")
        .expect_tagged("UID STORE ")
        .send_tagged("OK Store completed.\r\n")
        .expect_tagged("UID EXPUNGE 7")
        .send_tagged("OK Expunge completed.\r\n")
        .stall();
    fake_server server(script);
    expect_failure(run(round_trip_options(server)), "(UID 7) still in probe after UID EXPUNGE", 1000ms);
}

TEST_F(ImapProbe, ByeDuringACommandFailsWithItsText)
{
    server_script script = logged_in();
    script.expect_tagged("SELECT ").send("* BYE Server shutting down.\r\n").close();
    fake_server server(script);
    auto options = login_options(server);
    options.mailbox = "probe";
    expect_failure(run(options), "ended the session during SELECT: * BYE Server shutting down.", 1000ms);
}

TEST_F(ImapProbe, ReplyWithAnotherTagFails)
{
    server_script script;
    script.send("* OK ready\r\n").expect_tagged("CAPABILITY").send("* CAPABILITY IMAP4rev1\r\nzz9 OK done\r\n").stall();
    fake_server server(script);
    expect_failure(run(options_for(server)), "malformed reply to CAPABILITY: zz9 OK done", 1000ms);
}

TEST_F(ImapProbe, ReplyTextInReasonIsSanitizedAndBounded)
{
    server_script script = logged_in();
    script.expect_tagged("SELECT ").send_tagged("NO \x1b[31mred\x07 " + std::string(500, 'y') + "\r\n").stall();
    fake_server server(script);
    auto options = login_options(server);
    options.mailbox = "probe";
    const auto outcome = run(options);
    expect_failure(outcome, "SELECT probe rejected: NO ?[31mred? yyy", 1000ms);
    EXPECT_LT(outcome.result.reason().size(), 260u);
}

TEST_F(ImapProbe, NothingListeningIsNotRunning)
{
    msg::imap_options options;
    options.where.port = free_port();
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::not_running);
    EXPECT_EQ(result.reason(),
              "nothing listening on 127.0.0.1:" + std::to_string(options.where.port) + " (connection refused)");
}

TEST_F(ImapProbe, StarttlsRefusedFails)
{
    server_script script = greeted();
    script.expect_tagged("STARTTLS").send_tagged("NO [UNAVAILABLE] TLS not available\r\n").stall();
    fake_server server(script);
    auto options = options_for(server);
    options.where.tls = msg::tls_mode::starttls;
    expect_failure(run(options), "STARTTLS rejected: NO [UNAVAILABLE] TLS not available", 1000ms);
}

// greeted(), STARTTLS, the handshake with `credentials`, CAPABILITY again.
server_script starttls_with(const msg_test::pem_credentials& credentials,
                            const std::string& pre_tls_caps = pre_login_caps + " STARTTLS LOGINDISABLED")
{
    server_script script = greeted(pre_tls_caps);
    script.expect_tagged("STARTTLS")
        .send_tagged("OK Begin TLS negotiation now.\r\n")
        .start_tls(credentials)
        .expect_tagged("CAPABILITY")
        .send("* CAPABILITY " + pre_login_caps + "\r\n")
        .send_tagged("OK Pre-login capabilities listed.\r\n");
    return script;
}

TEST_F(ImapProbe, LoginAfterStarttlsPassesWhereLoginWasDisabledBefore)
{
    const msg_test::test_ca ca;
    server_script script = starttls_with(ca.issue({"localhost", "127.0.0.1"}, msg_test::valid_for_days(90)));
    script.expect_tagged("LOGIN \"probe\" ").send_tagged("OK [CAPABILITY " + post_login_caps + "] Logged in\r\n");
    fake_server server(logout(script));
    auto options = login_options(server);
    options.where.tls = msg::tls_mode::starttls;
    options.where.ca_file = dir_.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 14;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(), (std::vector<std::string>{"a1 CAPABILITY", "a2 STARTTLS", "a3 CAPABILITY",
                                                           "a4 LOGIN \"probe\" \"S3cret pw\"", "a5 LOGOUT"}));
}

TEST_F(ImapProbe, ImplicitTlsCertificateExpiringSoonIsDegraded)
{
    const msg_test::test_ca ca;
    server_script script;
    script.start_tls(ca.issue({"localhost", "127.0.0.1"}, {-1h, std::chrono::hours(24 * 3 + 12)}));
    script.send("* OK [CAPABILITY " + pre_login_caps + "] ready\r\n")
        .expect_tagged("CAPABILITY")
        .send("* CAPABILITY " + pre_login_caps + "\r\n")
        .send_tagged("OK done\r\n");
    fake_server server(logout(script));
    auto options = options_for(server);
    options.where.tls = msg::tls_mode::implicit;
    options.where.ca_file = dir_.write("ca.pem", ca.certificate_pem());
    options.where.cert_warn_days = 7;
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::degraded) << result.reason();
    EXPECT_TRUE(contains(result.reason(), "TLS certificate CN=localhost expires in 3 days"));
    EXPECT_EQ(server.received().back(), "a2 LOGOUT");
}

TEST_F(ImapProbe, PreauthGreetingSkipsLogin)
{
    server_script script;
    script.send("* PREAUTH [CAPABILITY " + post_login_caps + "] Logged in as probe\r\n")
        .expect_tagged("CAPABILITY")
        .send("* CAPABILITY " + post_login_caps + "\r\n")
        .send_tagged("OK done\r\n");
    fake_server server(logout(select(script)));
    auto options = login_options(server);
    options.mailbox = "probe";
    const auto [result, elapsed] = run(options);
    EXPECT_EQ(result.code(), ocf_code::success) << result.reason();
    EXPECT_EQ(server.received(), (std::vector<std::string>{"a1 CAPABILITY", "a2 SELECT \"probe\"", "a3 LOGOUT"}));
}

TEST_F(ImapProbe, UnsafeCredentialsFilesAreMisconfiguredBeforeConnecting)
{
    fake_server server(server_script().stall());
    msg_test::expect_unsafe_credentials_refused(dir_, server, [&](const std::string& file) {
        auto options = login_options(server);
        options.credentials_file = file;
        return run(options).result;
    });
}

TEST_F(ImapProbe, BadMailboxOptionsAreUsageErrors)
{
    fake_server server(server_script().stall());
    auto options = options_for(server);
    options.mailbox = "probe";
    EXPECT_EQ(run(options).result.reason(), "--mailbox and --round-trip need --credentials-file");
    options.credentials_file = credentials_;
    options.mailbox = "probe\r\nA LOGOUT";
    EXPECT_EQ(run(options).result.code(), ocf_code::err_args);
    options.mailbox = "Entw\xc3\xbcrfe";
    EXPECT_EQ(run(options).result.reason(), "--mailbox must be ASCII (modified UTF-7 for other characters)");
    EXPECT_EQ(server.connections(), 0u);
}

// The msg-probe binary, as the agent runs it.
class ImapCli : public ImapProbe {
protected:
    std::vector<std::string> args_for(const fake_server& server, const char* deadline_ms = "1000") const
    {
        return {"imap", "--port", std::to_string(server.port()), "--deadline-ms", deadline_ms};
    }

    static void expect_one_reason_line(const msg_test::helper_run& run, const std::string& part)
    {
        const auto lines = msg_test::lines_of(run.err);
        ASSERT_EQ(lines.size(), 1u) << "stderr: " << run.err;
        EXPECT_TRUE(contains(lines.front(), part));
        EXPECT_FALSE(contains(run.err, "S3cret"));
        EXPECT_EQ(run.out, "");
    }
};

TEST_F(ImapCli, RoundTripExitsZeroSilently)
{
    server_script script = up_to_fetch();
    fake_server server(fetch_store_expunge(script));
    auto args = args_for(server);
    args.insert(args.end(), {"--credentials-file", credentials_, "--mailbox", "probe", "--round-trip"});
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_EQ(run.out, "");
}

TEST_F(ImapCli, StallAfterLoginExitsOneWithinDeadline)
{
    server_script script = greeted();
    fake_server server(script.expect_tagged("LOGIN ").stall());
    auto args = args_for(server, "700");
    args.insert(args.end(), {"--credentials-file", credentials_});
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "no reply to LOGIN within 700 ms");
    EXPECT_LT(run.elapsed, 700ms + 500ms);
}

TEST_F(ImapCli, RejectedLoginNeverShowsThePassword)
{
    server_script script = greeted();
    fake_server server(script.expect_tagged("LOGIN ").send_tagged("NO [AUTHENTICATIONFAILED] S3cret pw is wrong\r\n"));
    auto args = args_for(server);
    args.insert(args.end(), {"--credentials-file", credentials_});
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "LOGIN as probe rejected: NO [AUTHENTICATIONFAILED] ******** is wrong");
}

TEST_F(ImapCli, UnsafeCredentialsFileExitsSix)
{
    fake_server server(server_script().stall());
    std::filesystem::permissions(credentials_, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
    auto args = args_for(server);
    args.insert(args.end(), {"--credentials-file", credentials_});
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args);
    EXPECT_EQ(run.exit_code, 6);
    expect_one_reason_line(run, "credentials file '" + credentials_ + "' has mode 0604");
    EXPECT_EQ(server.connections(), 0u);
}

TEST_F(ImapCli, RoundTripWithoutCredentialsIsUsageError)
{
    fake_server server(server_script().stall());
    auto args = args_for(server);
    args.emplace_back("--round-trip");
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args);
    EXPECT_EQ(run.exit_code, 2);
    expect_one_reason_line(run, "--round-trip requires --credentials-file");
}

TEST_F(ImapCli, HelpDocumentsCredentialsAndRoundTrip)
{
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"imap", "--help"});
    EXPECT_EQ(run.exit_code, 0);
    for (const char* part : {"--credentials-file", "--mailbox", "--round-trip", "line 1 the username",
                             "0600 or 0400", "190", "UIDPLUS"})
        EXPECT_TRUE(contains(run.out, part));
}

} // namespace
