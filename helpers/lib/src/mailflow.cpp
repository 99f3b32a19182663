#include "msg/mailflow.hpp"

#include "msg/credentials.hpp"
#include "msg/dialogue.hpp"
#include "msg/imap.hpp"
#include "msg/imap_session.hpp"
#include "msg/line_channel.hpp"
#include "msg/log.hpp"
#include "msg/probe_message.hpp"
#include "msg/reply_text.hpp"
#include "msg/smtp.hpp"
#include "msg/smtp_session.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace msg {

namespace {

using std::chrono::milliseconds;

// The stages of one probe, in order; a failure is reported with the stage it broke in.
enum class stage { mailbox_login, mailbox_open, submission, delivery, removal, logout };

struct stage_words {
    const char* failed; // "<failed>: reason" for a failure the stage's steps describe
    const char* noun;   // "<noun>: nothing listening on ..."
    const char* during; // "deadline passed while <during>: ..."
};

stage_words words_for(stage at)
{
    switch (at) {
    case stage::mailbox_login:
        return {"mailbox login failed", "mailbox", "logging in to the mailbox"};
    case stage::mailbox_open:
        return {"mailbox check failed", "mailbox", "opening the mailbox"};
    case stage::submission:
        return {"submission failed", "submission", "submitting the probe message"};
    case stage::delivery:
        return {"mailbox failed while waiting for delivery", "mailbox", "waiting for delivery"};
    case stage::removal:
        return {"removing the probe message failed", "mailbox", "removing the probe message"};
    case stage::logout:
        break;
    }
    return {"mailbox logout failed", "mailbox", "logging out of the mailbox"};
}

// Where a probe is and what it has measured so far.
struct progress {
    stage at = stage::mailbox_login;
    bool reason_final = false; // the failure thrown already names its stage
    std::optional<milliseconds> round_trip;
};

// Throws `result` as a reason that needs no stage prefix.
[[noreturn]] void fail_final(progress& state, outcome result)
{
    state.reason_final = true;
    throw check_failure(std::move(result));
}

milliseconds since(steady_clock::time_point start)
{
    return std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
}

std::string ms_text(milliseconds value)
{
    return std::to_string(value.count()) + " ms";
}

// The failure with the stage it happened in, as the operator reads it.
outcome labelled(const outcome& result, const progress& state, const deadline& until)
{
    if (result.healthy() || result.code() == ocf_code::degraded || state.reason_final
        || result.code() == ocf_code::err_args)
        return result;
    const stage_words words = words_for(state.at);
    // A stalled server shows up as whatever read was pending when time ran
    // out; the stage says which part of the mail flow hung.
    if (result.code() == ocf_code::err_generic && until.passed())
        return outcome::failed(std::string("deadline passed while ") + words.during + ": " + result.reason());
    if (result.code() == ocf_code::not_running)
        return {result.code(), std::string(words.noun) + ": " + result.reason()};
    return {result.code(), std::string(words.failed) + ": " + result.reason()};
}

std::vector<std::string> mailflow_message(const std::string& token, const mailflow_options& options)
{
    probe_message_text text;
    text.to = smtp_path(options.probe_address);
    text.subject = "msg-probe mail flow check";
    text.body = {
        "Written by msg-probe mailflow to prove that mail submitted here is",
        "delivered into this mailbox; the probe deletes it again on arrival.",
    };
    return probe_message(token, text);
}

// MAIL, RCPT, DATA or the end of the message: a 4xx/5xx is the server
// refusing the probe mail, which is the stage's own verdict.
smtp_reply submission_step(smtp_session& smtp, progress& state, const std::string& line, const std::string& verb,
                           int first, int last)
{
    const smtp_reply reply = smtp.command(line, verb);
    if (reply.code >= 400)
        fail_final(state, outcome::failed("submission refused: " + smtp.excerpt(reply.text()) + " (at " + verb + ")"));
    smtp.expect(reply, first, last, verb);
    return reply;
}

// The SMTP dialogue that hands the probe message over; returns the server's
// acceptance (with Postfix's queue id, which the maillog knows it by).
std::string submit(line_channel& channel, const mailflow_options& options, const credentials* login,
                   const std::vector<std::string>& message, progress& state, const deadline& until)
{
    smtp_session smtp(channel, false, login);
    const std::vector<smtp_extension> offered = smtp.open(options.submission, options.helo_name);
    if (login != nullptr) {
        try {
            smtp.authenticate(offered);
        } catch (const check_failure& failure) {
            if (until.passed())
                throw;
            fail_final(state, {failure.result().code(), "submission login failed: " + failure.result().reason()});
        }
    }
    // The null sender by default: no bounce or delay notice about a probe
    // can ever come back and pile up where no probe run removes it.
    submission_step(smtp, state, "MAIL FROM:" + smtp_path(options.mail_from), "MAIL FROM", 250, 250);
    submission_step(smtp, state, "RCPT TO:" + smtp_path(options.probe_address), "RCPT TO", 250, 251);
    submission_step(smtp, state, "DATA", "DATA", 354, 354);
    for (const std::string& line : message)
        channel.write_line(!line.empty() && line.front() == '.' ? "." + line : line, "probe message");
    const smtp_reply accepted = submission_step(smtp, state, ".", "end of DATA", 250, 250);
    // The mail is queued now: whatever QUIT gets back cannot unsend it.
    smtp.command("QUIT", "QUIT");
    channel.close();
    return smtp.excerpt(accepted.text(), 120);
}

std::string uid_list(const std::vector<std::uint32_t>& uids)
{
    std::string list;
    for (const std::uint32_t uid : uids)
        list += (list.empty() ? "" : ",") + std::to_string(uid);
    return list;
}

// The probe proper, on the connected IMAP channel; throws check_failure.
outcome attend(line_channel& channel, const mailflow_options& options, const credentials& mailbox_login,
               const credentials* submission_login, progress& state, const deadline& until)
{
    imap_session imap(channel, &mailbox_login);
    if (!imap.start(options.mailbox_server))
        imap.log_in();

    state.at = stage::mailbox_open;
    const std::string name = printable_excerpt(options.mailbox, 64);
    imap.expect_ok(imap.command_with_strings("SELECT", {options.mailbox}), "SELECT " + name);
    // Probe mail that arrived after its run gave up on it goes now, before
    // this run adds its own.
    imap.remove_probe_messages({}, {}, options.mailbox);

    const std::string token = random_token();
    const std::string message_id = probe_message_id(token);
    const std::vector<std::string> message = mailflow_message(token, options);
    state.at = stage::submission;
    const steady_clock::time_point began = steady_clock::now();
    std::string accepted;
    const outcome submitted
        = run_dialogue(options.submission, smtp_default_port(false, options.submission.tls), until, "QUIT", [&](line_channel& smtp) {
              accepted = submit(smtp, options, submission_login, message, state, until);
              return outcome::ok();
          });
    if (!submitted.healthy())
        throw check_failure(submitted);
    log_debug("mail flow: probe message " + token + " submitted: " + accepted);

    // One session throughout: NOOP lets the server report new mail (RFC
    // 3501 6.1.2), the search finds ours among it.
    state.at = stage::delivery;
    const steady_clock::time_point give_up = std::min(began + options.max_delay, until.at());
    const std::string missing = "probe message " + token + " not in " + name;
    const auto missing_since_submission = [&] {
        return missing + " " + ms_text(since(began)) + " after submission began (" + accepted + ")";
    };
    std::vector<std::uint32_t> found;
    try {
        for (;;) {
            imap.expect_ok(imap.command("NOOP", "NOOP"), "NOOP");
            found = imap.uid_search("HEADER Message-ID " + imap_quoted(message_id));
            if (!found.empty()) {
                state.round_trip = since(began);
                break;
            }
            const steady_clock::time_point now = steady_clock::now();
            if (now >= give_up)
                break;
            // One last look when max_delay ends; none at the deadline, which
            // leaves no time for it.
            const steady_clock::time_point wake = std::min(now + options.poll_interval, give_up);
            std::this_thread::sleep_until(wake);
            if (wake == until.at())
                break;
        }
    } catch (const check_failure& failure) {
        // The deadline can pass while a poll is answered: the operator needs
        // the missing message and its queue id first, what hung after it.
        if (failure.result().code() != ocf_code::err_generic || !until.passed())
            throw;
        imap_session::fail(missing_since_submission() + "; " + failure.result().reason());
    }
    if (found.empty()) {
        if (give_up < began + options.max_delay)
            imap_session::fail(missing_since_submission());
        fail_final(state, outcome::failed("not delivered within " + ms_text(options.max_delay) + ": " + missing
                                          + " (submitted: " + accepted + ")"));
    }

    state.at = stage::removal;
    imap.remove_probe_messages(found, "probe message " + token + " (UID " + uid_list(found) + ")", options.mailbox);
    state.at = stage::logout;
    imap.expect_ok(imap.command("LOGOUT", "LOGOUT"), "LOGOUT");
    channel.close();

    // Debug only: the agent runs this every monitor interval.
    log_debug("mail flow: probe message " + token + " to " + printable_excerpt(options.probe_address, 64)
             + " arrived in " + ms_text(*state.round_trip));
    if (options.warn_delay > milliseconds::zero() && *state.round_trip > options.warn_delay)
        return outcome::degraded("mail flows slowly: round trip " + ms_text(*state.round_trip)
                                 + ", over the warning delay of " + ms_text(options.warn_delay));
    return outcome::ok();
}

// Bad options are the caller's bug (2), found before any traffic.
void validate(const mailflow_options& options)
{
    const auto usage = [](const std::string& reason) { throw check_failure(outcome(ocf_code::err_args, reason)); };
    if (options.probe_address.empty())
        usage("--probe-address is required");
    require_single_line(options.probe_address, "--probe-address");
    require_single_line(options.mail_from, "--mail-from");
    require_single_line(options.helo_name, "--ehlo");
    require_single_line(options.mailbox, "--mailbox");
    if (options.mailbox.empty())
        usage("--mailbox must not be empty");
    if (!imap_quotable(options.mailbox))
        usage("--mailbox must be ASCII (modified UTF-7 for other characters)");
    if (options.mailbox_credentials_file.empty())
        usage("--imap-credentials-file is required");
    if (options.max_delay <= milliseconds::zero() || options.poll_interval <= milliseconds::zero())
        usage("--max-delay-ms and --poll-interval-ms must be positive");
    if (options.submission.tls != tls_mode::none)
        verification_for(options.submission);
    if (options.mailbox_server.tls != tls_mode::none)
        verification_for(options.mailbox_server);
}

} // namespace

mailflow_result check_mailflow(const mailflow_options& options, const deadline& until)
{
    std::optional<credentials> mailbox_login;
    std::optional<credentials> submission_login;
    try {
        validate(options);
        // Both files are judged before any connection, so an unsafe one is
        // 6 whatever the servers do.
        mailbox_login.emplace(read_credentials_file(options.mailbox_credentials_file));
        if (!options.submission_credentials_file.empty())
            submission_login.emplace(read_credentials_file(options.submission_credentials_file));
    } catch (const check_failure& failure) {
        return {failure.result(), std::nullopt};
    }

    progress state;
    const outcome result = run_dialogue(
        options.mailbox_server, imap_default_port(options.mailbox_server.tls), until, "bye LOGOUT", [&](line_channel& channel) {
            return attend(channel, options, *mailbox_login, submission_login ? &*submission_login : nullptr, state,
                          until);
        });
    // Server text in reasons went through the sessions' excerpt(), which
    // masks the password; nothing else in a reason comes from outside.
    return {labelled(result, state, until), state.round_trip};
}

} // namespace msg
