// msg::check_mailflow and msg-probe mailflow against a fake SMTP server that
// "delivers" into the mailbox of a fake IMAP server: the round trip is
// measured and leaves nothing behind, and every stage that breaks is named.
#include "msg/deadline.hpp"
#include "msg/mailflow.hpp"
#include "msg/outcome.hpp"

#include "fake_mail_pair.hpp"
#include "fake_server.hpp"
#include "probe_checks.hpp"
#include "spawn_helper.hpp"
#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using msg::ocf_code;
using msg_test::contains;
using msg_test::expect_failure;
using msg_test::fake_mail_pair;
using msg_test::fake_mail_setup;
using msg_test::fake_server;
using msg_test::free_port;
using msg_test::server_script;
using msg_test::test_password;
using msg_test::timed_outcome;

// Scheduling noise on a shared 2-core machine, never a real overrun.
constexpr auto slack = 400ms;

struct timed_flow {
    msg::mailflow_result flow;
    std::chrono::milliseconds elapsed;
    timed_outcome as_timed() const { return {flow.result, elapsed}; }
};

class MailflowProbe : public ::testing::Test {
protected:
    msg_test::temp_dir dir_;
    std::string credentials_
        = msg_test::write_credentials(dir_, "imap-credentials", std::string("probe\n") + test_password + "\n");

    msg::mailflow_options options_for(const fake_mail_pair& pair, std::chrono::milliseconds limit = 3000ms) const
    {
        msg::mailflow_options options;
        options.submission.port = pair.smtp_port();
        options.mailbox_server.port = pair.imap_port();
        options.mailbox_credentials_file = credentials_;
        options.probe_address = "probe@example.org";
        options.max_delay = 2000ms;
        options.poll_interval = 20ms;
        options.time_limit = limit;
        return options;
    }

    // `options` with AUTH as "probe" with `password`.
    msg::mailflow_options with_submission_login(msg::mailflow_options options,
                                                const std::string& password = test_password) const
    {
        options.submission_credentials_file
            = msg_test::write_credentials(dir_, "smtp-credentials", "probe\n" + password + "\n");
        return options;
    }

    static timed_flow run(const msg::mailflow_options& options)
    {
        const auto started = std::chrono::steady_clock::now();
        msg::mailflow_result flow = msg::check_mailflow(options, msg::deadline::after(options.time_limit));
        return {std::move(flow), std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started)};
    }

    // The commands (without tags) the fake IMAP server got, in order.
    static std::vector<std::string> imap_commands(const fake_mail_pair& pair)
    {
        std::vector<std::string> commands;
        for (const std::string& line : pair.imap().received())
            commands.push_back(line.substr(line.find(' ') + 1));
        return commands;
    }

    // True once the last line `server` got starts `prefix` (waits up to 2 s:
    // a client's last words may not have been read yet).
    static bool ends_with(const fake_server& server, const std::string& prefix)
    {
        const auto until = std::chrono::steady_clock::now() + 2s;
        for (;;) {
            const auto lines = server.received();
            if (!lines.empty() && lines.back().find(prefix) != std::string::npos)
                return true;
            if (std::chrono::steady_clock::now() >= until)
                return false;
            std::this_thread::sleep_for(5ms);
        }
    }

    static bool has_prefix(const std::vector<std::string>& lines, const std::string& prefix)
    {
        return std::any_of(lines.begin(), lines.end(),
                           [&](const std::string& line) { return line.rfind(prefix, 0) == 0; });
    }
};

TEST_F(MailflowProbe, RoundTripIsMeasuredAndTheMessageRemoved)
{
    fake_mail_setup setup;
    setup.delivery_delay = 150ms;
    fake_mail_pair pair(setup);
    const auto [flow, elapsed] = run(options_for(pair));
    EXPECT_EQ(flow.result.code(), ocf_code::success) << flow.result.reason();
    EXPECT_EQ(flow.result.reason(), "");
    ASSERT_TRUE(flow.round_trip.has_value());
    EXPECT_GE(*flow.round_trip, 150ms);
    EXPECT_LE(*flow.round_trip, elapsed);

    // One message, addressed to the probe address from the null sender,
    // tagged by one random token in Message-ID and Subject.
    EXPECT_EQ(pair.smtp().received()[1], "MAIL FROM:<>");
    EXPECT_EQ(pair.smtp().received()[2], "RCPT TO:<probe@example.org>");
    const auto submitted = pair.submitted();
    ASSERT_EQ(submitted.size(), 1u);
    const std::string& message = submitted.front();
    const auto id_at = message.find("Message-ID: <msg-probe.");
    ASSERT_NE(id_at, std::string::npos);
    const std::string token = message.substr(id_at + 23, 32);
    EXPECT_TRUE(contains(message, "Message-ID: <msg-probe." + token + "@msg-probe.invalid>\r\n"));
    EXPECT_TRUE(contains(message, "Subject: msg-probe mail flow check " + token + "\r\n"));
    EXPECT_TRUE(contains(message, "To: <probe@example.org>\r\n"));

    // Logged in and selected before the mail went out; found, deleted, gone.
    const auto commands = imap_commands(pair);
    ASSERT_GE(commands.size(), 8u);
    EXPECT_EQ(commands[1], "LOGIN \"probe\" \"S3cret pw\"");
    EXPECT_EQ(commands[2], "SELECT \"INBOX\"");
    EXPECT_TRUE(has_prefix(commands, "NOOP"));
    EXPECT_TRUE(has_prefix(commands, "UID SEARCH HEADER Message-ID \"<msg-probe." + token + "@msg-probe.invalid>\""));
    EXPECT_EQ(commands[commands.size() - 3], "UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    EXPECT_EQ(commands[commands.size() - 2], "UID EXPUNGE 1");
    EXPECT_EQ(commands.back(), "LOGOUT");
    EXPECT_TRUE(pair.mailbox_uids().empty());
    EXPECT_TRUE(pair.smtp().problems().empty());
    EXPECT_TRUE(pair.imap().problems().empty());
}

TEST_F(MailflowProbe, EveryRunUsesAFreshToken)
{
    fake_mail_pair pair;
    EXPECT_EQ(run(options_for(pair)).flow.result.code(), ocf_code::success);
    EXPECT_EQ(run(options_for(pair)).flow.result.code(), ocf_code::success);
    const auto submitted = pair.submitted();
    ASSERT_EQ(submitted.size(), 2u);
    const auto id_of = [](const std::string& message) {
        const auto at = message.find("Message-ID: ");
        return message.substr(at, message.find("\r\n", at) - at);
    };
    EXPECT_NE(id_of(submitted[0]), id_of(submitted[1]));
    EXPECT_TRUE(pair.mailbox_uids().empty());
}

TEST_F(MailflowProbe, RoundTripOverWarnDelayIsDegradedWithTheTime)
{
    fake_mail_setup setup;
    setup.delivery_delay = 300ms;
    fake_mail_pair pair(setup);
    auto options = options_for(pair);
    options.warn_delay = 100ms;
    const auto [flow, elapsed] = run(options);
    EXPECT_EQ(flow.result.code(), ocf_code::degraded) << flow.result.reason();
    ASSERT_TRUE(flow.round_trip.has_value());
    EXPECT_GE(*flow.round_trip, 300ms);
    EXPECT_TRUE(contains(flow.result.reason(), "round trip " + std::to_string(flow.round_trip->count()) + " ms"));
    EXPECT_TRUE(contains(flow.result.reason(), "warning delay of 100 ms"));
    EXPECT_TRUE(pair.mailbox_uids().empty());
}

TEST_F(MailflowProbe, RefusalAtAnySubmissionStepIsSubmissionRefused)
{
    struct refusal {
        std::string verb;
        std::string reply;
        std::string step;
    };
    for (const auto& [verb, reply, step] : {
             refusal{"MAIL", "553 5.7.1 <>: Sender address rejected: not logged in", "MAIL FROM"},
             refusal{"RCPT", "554 5.7.1 <probe@example.org>: Relay access denied", "RCPT TO"},
             refusal{"DATA", "451 4.3.0 Error: queue file write error", "DATA"},
             refusal{".", "554 5.7.1 message content rejected", "end of DATA"},
         }) {
        fake_mail_setup setup;
        setup.smtp_replies[verb] = reply + "\r\n";
        fake_mail_pair pair(setup);
        const auto run_result = run(options_for(pair));
        expect_failure(run_result.as_timed(), "submission refused: " + reply + " (at " + step + ")", 1000ms);
        EXPECT_EQ(run_result.flow.result.reason().rfind("submission refused: ", 0), 0u);
        EXPECT_FALSE(run_result.flow.round_trip.has_value());
        EXPECT_TRUE(pair.submitted().empty());
        // QUIT to the SMTP server, LOGOUT to the IMAP server: both see a clean end.
        EXPECT_TRUE(ends_with(pair.smtp(), "QUIT")) << verb;
        EXPECT_TRUE(ends_with(pair.imap(), "LOGOUT")) << verb;
    }
}

TEST_F(MailflowProbe, MailboxLoginFailureStopsBeforeAnyMailIsSent)
{
    fake_mail_setup setup;
    setup.imap_replies["LOGIN"] = "NO [AUTHENTICATIONFAILED] Authentication failed for S3cret pw.\r\n";
    fake_mail_pair pair(setup);
    const auto run_result = run(options_for(pair));
    expect_failure(run_result.as_timed(),
                   "mailbox login failed: LOGIN as probe rejected: NO [AUTHENTICATIONFAILED] Authentication failed "
                   "for ********.",
                   1000ms);
    EXPECT_EQ(pair.smtp().connections(), 0u);
    EXPECT_TRUE(pair.submitted().empty());
}

TEST_F(MailflowProbe, MessageNeverDeliveredFailsAfterMaxDelay)
{
    fake_mail_setup setup;
    setup.delivers = false;
    fake_mail_pair pair(setup);
    auto options = options_for(pair);
    options.max_delay = 600ms;
    const auto run_result = run(options);
    expect_failure(run_result.as_timed(), "not delivered within 600 ms: probe message ", 600ms + slack + 400ms);
    const std::string& reason = run_result.flow.result.reason();
    EXPECT_EQ(reason.rfind("not delivered within 600 ms", 0), 0u) << reason;
    // The operator can follow the message in the maillog by its queue id.
    EXPECT_TRUE(contains(reason, "not in INBOX (submitted: 250 2.0.0 Ok: queued as FAKE1)"));
    EXPECT_GE(run_result.elapsed, 600ms);
    EXPECT_FALSE(run_result.flow.round_trip.has_value());
    // It kept looking until then, in one session, and said goodbye.
    const auto commands = imap_commands(pair);
    EXPECT_GT(std::count(commands.begin(), commands.end(), "NOOP"), 5);
    EXPECT_EQ(pair.imap().connections(), 1u);
    EXPECT_TRUE(ends_with(pair.imap(), "LOGOUT"));
}

TEST_F(MailflowProbe, DeadlineBeforeMaxDelayIsReportedAsDeadline)
{
    fake_mail_setup setup;
    setup.delivers = false;
    fake_mail_pair pair(setup);
    auto options = options_for(pair, 800ms);
    options.max_delay = 5000ms;
    const auto run_result = run(options);
    expect_failure(run_result.as_timed(), "deadline passed while waiting for delivery: probe message ", 800ms + slack);
    EXPECT_TRUE(contains(run_result.flow.result.reason(), "after submission began (250 2.0.0 Ok: queued as FAKE1)"));
}

TEST_F(MailflowProbe, MailboxStallingWhilePollingEndsAtDeadline)
{
    fake_mail_setup setup;
    setup.delivers = false;
    setup.imap_stall_at = "UID SEARCH";
    setup.imap_stall_occurrence = 3;
    fake_mail_pair pair(setup);
    auto options = options_for(pair, 900ms);
    options.max_delay = 5000ms;
    const auto run_result = run(options);
    expect_failure(run_result.as_timed(), "deadline passed while waiting for delivery: probe message ", 900ms + slack);
    // The message and its queue id first, then the reply that never came.
    EXPECT_TRUE(contains(run_result.flow.result.reason(),
                         "after submission began (250 2.0.0 Ok: queued as FAKE1); no reply to UID SEARCH within "))
        << run_result.flow.result.reason();
    EXPECT_GE(run_result.elapsed, 850ms);
}

TEST_F(MailflowProbe, MailboxStallingAtLoginEndsAtDeadline)
{
    fake_mail_setup setup;
    setup.imap_stall_at = "LOGIN";
    fake_mail_pair pair(setup);
    const auto run_result = run(options_for(pair, 700ms));
    expect_failure(run_result.as_timed(),
                   "deadline passed while logging in to the mailbox: no reply to LOGIN within ", 700ms + slack);
    EXPECT_EQ(pair.smtp().connections(), 0u);
}

TEST_F(MailflowProbe, SubmissionStallingAfterDataEndsAtDeadline)
{
    fake_mail_setup setup;
    setup.smtp_stall_at = ".";
    fake_mail_pair pair(setup);
    const auto run_result = run(options_for(pair, 800ms));
    expect_failure(run_result.as_timed(), "deadline passed while submitting the probe message: no reply to end of DATA",
                   800ms + slack);
}

TEST_F(MailflowProbe, NothingListeningForSubmissionIsNotRunning)
{
    fake_mail_pair pair;
    auto options = options_for(pair);
    options.submission.port = free_port();
    const auto [flow, elapsed] = run(options);
    EXPECT_EQ(flow.result.code(), ocf_code::not_running) << flow.result.reason();
    EXPECT_TRUE(contains(flow.result.reason(), "submission: nothing listening on 127.0.0.1:"));
    EXPECT_TRUE(ends_with(pair.imap(), "LOGOUT"));
}

TEST_F(MailflowProbe, NothingListeningForTheMailboxIsNotRunning)
{
    fake_mail_pair pair;
    auto options = options_for(pair);
    options.mailbox_server.port = free_port();
    const auto [flow, elapsed] = run(options);
    EXPECT_EQ(flow.result.code(), ocf_code::not_running) << flow.result.reason();
    EXPECT_TRUE(contains(flow.result.reason(), "mailbox: nothing listening on 127.0.0.1:"));
    EXPECT_EQ(pair.smtp().connections(), 0u);
}

TEST_F(MailflowProbe, MissingMailboxFailsBeforeSubmission)
{
    fake_mail_setup setup;
    setup.imap_replies["SELECT"] = "NO Mailbox doesn't exist: probe\r\n";
    fake_mail_pair pair(setup);
    auto options = options_for(pair);
    options.mailbox = "probe";
    expect_failure(run(options).as_timed(),
                   "mailbox check failed: SELECT probe rejected: NO Mailbox doesn't exist: probe", 1000ms);
    EXPECT_EQ(pair.smtp().connections(), 0u);
}

TEST_F(MailflowProbe, LeftoversOfEarlierRunsAreRemovedBeforeSubmission)
{
    fake_mail_setup setup;
    setup.old_probe_messages = 2;
    fake_mail_pair pair(setup);
    const auto [flow, elapsed] = run(options_for(pair));
    EXPECT_EQ(flow.result.code(), ocf_code::success) << flow.result.reason();
    const auto commands = imap_commands(pair);
    ASSERT_GE(commands.size(), 6u);
    EXPECT_EQ(commands[3], "UID SEARCH OLDER 600 HEADER Message-ID \"@msg-probe.invalid>\"");
    EXPECT_EQ(commands[4], "UID STORE 1,2 +FLAGS.SILENT (\\Deleted)");
    EXPECT_EQ(commands[5], "UID EXPUNGE 1,2");
    EXPECT_TRUE(pair.mailbox_uids().empty());
}

TEST_F(MailflowProbe, FailedRemovalStillReportsTheRoundTrip)
{
    fake_mail_setup setup;
    setup.imap_replies["UID EXPUNGE"] = "NO [SERVERBUG] Internal error occurred.\r\n";
    fake_mail_pair pair(setup);
    const auto run_result = run(options_for(pair));
    expect_failure(run_result.as_timed(),
                   "removing the probe message failed: UID EXPUNGE rejected: NO [SERVERBUG] Internal error", 1000ms);
    EXPECT_TRUE(run_result.flow.round_trip.has_value());
}

TEST_F(MailflowProbe, SubmissionAuthenticatesWithPlainOrElseLogin)
{
    struct mechanism {
        std::string offered;
        std::vector<std::string> sent; // after EHLO
    };
    for (const auto& [offered, sent] : {
             // base64("\0probe\0S3cret pw")
             mechanism{"PLAIN LOGIN", {"AUTH PLAIN AHByb2JlAFMzY3JldCBwdw==", "MAIL FROM:<>"}},
             mechanism{"LOGIN", {"AUTH LOGIN", "cHJvYmU=", "UzNjcmV0IHB3", "MAIL FROM:<>"}},
         }) {
        fake_mail_setup setup;
        setup.smtp_auth = true;
        setup.smtp_auth_mechanisms = offered;
        fake_mail_pair pair(setup);
        const auto [flow, elapsed] = run(with_submission_login(options_for(pair)));
        EXPECT_EQ(flow.result.code(), ocf_code::success) << flow.result.reason();
        const auto received = pair.smtp().received();
        ASSERT_GT(received.size(), sent.size()) << offered;
        EXPECT_EQ(std::vector<std::string>(received.begin() + 1, received.begin() + 1 + static_cast<long>(sent.size())),
                  sent);
    }
}

TEST_F(MailflowProbe, RejectedAuthIsSubmissionLoginFailed)
{
    fake_mail_setup setup;
    setup.smtp_auth = true;
    fake_mail_pair pair(setup);
    const auto run_result = run(with_submission_login(options_for(pair), "wrong password"));
    expect_failure(run_result.as_timed(),
                   "submission login failed: AUTH PLAIN as probe rejected: 535 5.7.8 Error: authentication failed",
                   1000ms);
    EXPECT_TRUE(pair.submitted().empty());
}

TEST_F(MailflowProbe, SubmissionServerEchoingThePasswordIsRedacted)
{
    fake_mail_setup setup;
    setup.smtp_auth = true;
    setup.smtp_replies["AUTH"] = "535 5.7.8 S3cret pw is not the password\r\n";
    fake_mail_pair pair(setup);
    expect_failure(run(with_submission_login(options_for(pair))).as_timed(),
                   "submission login failed: AUTH PLAIN as probe rejected: 535 5.7.8 ******** is not the password",
                   1000ms);
}

// Found by mailflow_fuzz: base64 is the password in all but name.
TEST_F(MailflowProbe, SubmissionServerEchoingTheAuthLineIsRedacted)
{
    fake_mail_setup setup;
    setup.smtp_auth = true;
    // base64("\0probe\0S3cret pw"), as AUTH PLAIN sent it.
    setup.smtp_replies["AUTH"] = "535 5.7.8 no: AUTH PLAIN AHByb2JlAFMzY3JldCBwdw==\r\n";
    fake_mail_pair pair(setup);
    expect_failure(run(with_submission_login(options_for(pair))).as_timed(),
                   "submission login failed: AUTH PLAIN as probe rejected: 535 5.7.8 no: AUTH PLAIN ********",
                   1000ms);
}

TEST_F(MailflowProbe, AuthNotOfferedOverPlaintextSaysSo)
{
    fake_mail_pair pair;
    const auto run_result = run(with_submission_login(options_for(pair)));
    expect_failure(run_result.as_timed(), "submission login failed: AUTH PLAIN or LOGIN not offered by 127.0.0.1:",
                   1000ms);
    EXPECT_TRUE(contains(run_result.flow.result.reason(), "over plaintext (use STARTTLS or TLS)"));
}

TEST_F(MailflowProbe, UnsafeCredentialsFilesAreMisconfiguredBeforeConnecting)
{
    fake_mail_pair pair;
    msg_test::expect_unsafe_credentials_refused(dir_, pair.imap(), [&](const std::string& file) {
        auto options = options_for(pair);
        options.mailbox_credentials_file = file;
        return run(options).flow.result;
    });
    msg_test::expect_unsafe_credentials_refused(dir_, pair.imap(), [&](const std::string& file) {
        auto options = options_for(pair);
        options.submission_credentials_file = file;
        return run(options).flow.result;
    });
    EXPECT_EQ(pair.smtp().connections(), 0u);
}

TEST_F(MailflowProbe, BadOptionsAreUsageErrors)
{
    fake_mail_pair pair;
    const auto usage = [&](auto change, const std::string& part) {
        auto options = options_for(pair);
        change(options);
        const msg::outcome result = run(options).flow.result;
        EXPECT_EQ(result.code(), ocf_code::err_args) << result.reason();
        EXPECT_TRUE(contains(result.reason(), part));
    };
    usage([](msg::mailflow_options& o) { o.probe_address.clear(); }, "--probe-address is required");
    usage([](msg::mailflow_options& o) { o.probe_address = "a@b\r\nRCPT TO:<c@d>"; }, "--probe-address must not");
    usage([](msg::mailflow_options& o) { o.mail_from = "a@b\n"; }, "--mail-from must not");
    usage([](msg::mailflow_options& o) { o.mailbox = "caf\xc3\xa9"; }, "--mailbox must be ASCII");
    usage([](msg::mailflow_options& o) { o.mailbox_credentials_file.clear(); }, "--imap-credentials-file");
    usage([](msg::mailflow_options& o) { o.poll_interval = 0ms; }, "must be positive");
    EXPECT_EQ(pair.imap().connections(), 0u);
    EXPECT_EQ(pair.smtp().connections(), 0u);
}

// The msg-probe binary, as the agent runs it.
class MailflowCli : public MailflowProbe {
protected:
    std::vector<std::string> args_for(const fake_mail_pair& pair, const char* deadline_ms = "3000") const
    {
        return {"mailflow",         "--smtp-port",   std::to_string(pair.smtp_port()),
                "--imap-port",      std::to_string(pair.imap_port()),
                "--imap-credentials-file", credentials_, "--probe-address", "probe@example.org",
                "--poll-interval-ms", "20", "--max-delay-ms", "2000", "--deadline-ms", deadline_ms};
    }

    static void expect_one_reason_line(const msg_test::helper_run& run, const std::string& part)
    {
        const auto lines = msg_test::lines_of(run.err);
        ASSERT_EQ(lines.size(), 1u) << "stderr: " << run.err;
        EXPECT_TRUE(contains(lines.front(), part));
        EXPECT_FALSE(contains(run.err, "S3cret"));
    }

    // The round trip the one stdout line reports; -1 without one.
    static long reported_round_trip(const msg_test::helper_run& run)
    {
        const auto lines = msg_test::lines_of(run.out);
        if (lines.size() != 1 || lines.front().rfind("round_trip_ms=", 0) != 0)
            return -1;
        return std::stol(lines.front().substr(14));
    }
};

TEST_F(MailflowCli, RoundTripPrintsItsTimeAndExitsZero)
{
    fake_mail_setup setup;
    setup.delivery_delay = 100ms;
    fake_mail_pair pair(setup);
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args_for(pair));
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err, "");
    EXPECT_GE(reported_round_trip(run), 100) << run.out;
    EXPECT_TRUE(pair.mailbox_uids().empty());
}

TEST_F(MailflowCli, SlowRoundTripExits190AndStillPrintsItsTime)
{
    fake_mail_setup setup;
    setup.delivery_delay = 200ms;
    fake_mail_pair pair(setup);
    auto args = args_for(pair);
    args.insert(args.end(), {"--warn-delay-ms", "50"});
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args);
    EXPECT_EQ(run.exit_code, 190) << run.err;
    expect_one_reason_line(run, "mail flows slowly: round trip ");
    EXPECT_GE(reported_round_trip(run), 200) << run.out;
}

TEST_F(MailflowCli, NotDeliveredExitsOneWithoutARoundTrip)
{
    fake_mail_setup setup;
    setup.delivers = false;
    fake_mail_pair pair(setup);
    auto args = args_for(pair);
    *std::find(args.begin(), args.end(), "2000") = "300"; // --max-delay-ms
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, args);
    EXPECT_EQ(run.exit_code, 1);
    expect_one_reason_line(run, "not delivered within 300 ms");
    EXPECT_EQ(run.out, "");
}

TEST_F(MailflowCli, AgentSpellingsOfTheOptionsAreAccepted)
{
    fake_mail_pair pair;
    const auto run = msg_test::run_helper(
        MSG_PROBE_PATH, {"mailflow", "--smtp-host", "127.0.0.1", "--smtp-port", std::to_string(pair.smtp_port()),
                         "--imap-host", "127.0.0.1", "--imap-port", std::to_string(pair.imap_port()),
                         "--credentials-file", credentials_, "--rcpt-to", "probe@example.org", "--mailbox", "INBOX",
                         "--poll-interval-ms", "20", "--deadline-ms", "3000"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_GE(reported_round_trip(run), 0) << run.out;
}

TEST_F(MailflowCli, MissingProbeAddressIsUsageError)
{
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"mailflow", "--imap-credentials-file", credentials_});
    EXPECT_EQ(run.exit_code, 2);
    expect_one_reason_line(run, "--probe-address");
}

TEST_F(MailflowCli, HelpDocumentsStagesOutputAndCodes)
{
    const auto run = msg_test::run_helper(MSG_PROBE_PATH, {"mailflow", "--help"});
    EXPECT_EQ(run.exit_code, 0);
    for (const char* part : {"--smtp-host", "--smtp-starttls", "--smtp-credentials-file", "--imap-tls",
                             "--imap-credentials-file", "--probe-address", "--max-delay-ms", "--warn-delay-ms",
                             "--poll-interval-ms", "--deadline-ms", "round_trip_ms=N", "submission refused",
                             "not delivered within", "0600 or 0400", "190"})
        EXPECT_TRUE(contains(run.out, part)) << part;
}

} // namespace
