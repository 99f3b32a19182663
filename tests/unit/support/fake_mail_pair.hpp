#pragma once

#include "fake_server.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace msg_test {

// How a fake_mail_pair behaves; the defaults make a healthy stack.
struct fake_mail_setup {
    // SMTP side.
    bool delivers = true;                          // false: mail is accepted, then never shows up
    std::chrono::milliseconds delivery_delay{0};   // from the end of DATA to the message being in the mailbox
    bool smtp_auth = false;                        // EHLO offers AUTH with smtp_auth_mechanisms
    std::string smtp_auth_mechanisms = "PLAIN LOGIN";
    std::map<std::string, std::string> smtp_replies; // verb (EHLO AUTH MAIL RCPT DATA "." QUIT) -> reply instead
    std::string smtp_stall_at;                     // verb the SMTP server goes silent at instead of replying

    // IMAP side.
    std::string imap_capabilities = "IMAP4rev1 LITERAL+ UIDPLUS WITHIN";
    std::map<std::string, std::string> imap_replies; // verb (LOGIN SELECT NOOP "UID SEARCH" ...) -> tagged reply text
    std::string imap_stall_at;                     // verb the IMAP server goes silent at ...
    std::size_t imap_stall_occurrence = 1;         // ... the Nth time it comes
    std::size_t old_probe_messages = 0;            // probe messages of an earlier run, over ten minutes old
};

// A fake SMTP server that "delivers" what it takes into a mailbox that a
// fake IMAP server serves, both in-process on 127.0.0.1: the whole mail
// flow in miniature, for unit tests. The IMAP side knows LOGIN (user
// "probe", test_password), SELECT, NOOP, UID SEARCH (HEADER Message-ID,
// OLDER 600 for the old probe messages), UID STORE, UID EXPUNGE, EXPUNGE
// and LOGOUT; the SMTP side EHLO, AUTH PLAIN/LOGIN (same credentials),
// MAIL, RCPT, DATA (dot-unstuffed) and QUIT.
class fake_mail_pair {
public:
    explicit fake_mail_pair(fake_mail_setup setup = {});
    ~fake_mail_pair();
    fake_mail_pair(const fake_mail_pair&) = delete;
    fake_mail_pair& operator=(const fake_mail_pair&) = delete;

    std::uint16_t smtp_port() const { return smtp_.port(); }
    std::uint16_t imap_port() const { return imap_.port(); }
    const fake_server& smtp() const { return smtp_; }
    const fake_server& imap() const { return imap_; }

    // Every message the SMTP side took, CR LF lines, dot-unstuffed.
    std::vector<std::string> submitted() const;
    // UIDs of the messages still in the mailbox (not expunged), delivered or not yet.
    std::vector<std::uint32_t> mailbox_uids() const;

    struct state;

private:
    std::shared_ptr<state> state_;
    fake_server smtp_;
    fake_server imap_;
};

} // namespace msg_test
