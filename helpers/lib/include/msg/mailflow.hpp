#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace msg {

// What the end-to-end mail flow probe (msg-probe mailflow) sends and where it looks.
struct mailflow_options {
    probe_options submission;                          // SMTP server: default port 25, 465 with implicit TLS
    std::filesystem::path submission_credentials_file; // AUTH PLAIN/LOGIN as this file says; empty: no AUTH
    std::string helo_name;                             // EHLO argument; empty: this host's name
    std::string mail_from;                             // envelope sender; empty: the null sender <>
    std::string probe_address;                         // RCPT TO and To: of the probe message; required

    probe_options mailbox_server;                      // IMAP server: default port 143, 993 with implicit TLS
    std::filesystem::path mailbox_credentials_file;    // LOGIN as this file says; required
    std::string mailbox = "INBOX";                     // where probe_address's mail is delivered

    std::chrono::milliseconds max_delay{30'000};       // no message this long after submission began: 1
    std::chrono::milliseconds warn_delay{0};           // round trip longer than this: degraded (190); 0: never
    std::chrono::milliseconds poll_interval{250};      // pause between two looks into the mailbox
    std::chrono::milliseconds time_limit{60'000};      // --deadline-ms: the whole probe ends within this
};

// How a mail flow probe ended; round_trip is set whenever the probe message
// was found in the mailbox, also when the probe failed afterwards.
struct mailflow_result {
    outcome result;
    std::optional<std::chrono::milliseconds> round_trip; // from the SMTP connection to the message seen over IMAP
};

// Logs in to the mailbox over IMAP first (so a broken mailbox fails before
// any mail is sent) and SELECTs it, removing probe messages of earlier runs
// that are older than ten minutes (with WITHIN); then submits a probe
// message with a random token in its Message-ID and Subject over SMTP
// (EHLO, optional STARTTLS and AUTH, MAIL, RCPT, DATA); then polls the
// mailbox in the same session (NOOP and UID SEARCH HEADER Message-ID every
// poll_interval) until the message is there or max_delay has passed since
// the submission began; then flags it \Deleted and expunges it, and LOGOUT.
// All of it ends by `until`.
// 0 healthy; 190 round trip over warn_delay; 1 a stage broke, the reason
// naming it: "mailbox login failed: ...", "submission refused: 554 ...",
// "submission login failed: ...", "not delivered within N ms ...",
// "deadline passed while <stage>: ..."; 7 nothing listening, "submission:
// nothing listening on ..." or "mailbox: nothing listening on ...";
// 6 unsafe or unreadable credentials or CA file; 2 bad options.
// No password appears in the reason.
mailflow_result check_mailflow(const mailflow_options& options, const deadline& until);

} // namespace msg
