#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace msg {

// What the round trips of msg-probe (IMAP APPEND, NNTP POST, mailflow) share: a probe
// message is told apart from all others by a random token in its Message-ID.

// 32 hex digits from the CSPRNG. Throws check_failure (1) if none can be drawn.
std::string random_token();

// The current local time as RFC 5322 writes it: "Thu, 26 Nov 2026 12:20:08 +0100".
std::string rfc5322_date_now();

// Every probe message's Message-ID ends in this (RFC 6761: no real domain
// can carry it), which is how a run recognizes what earlier runs left.
inline constexpr const char* probe_id_suffix = "@msg-probe.invalid>";

// "<msg-probe.TOKEN@msg-probe.invalid>".
std::string probe_message_id(std::string_view token);

// What a probe message says besides its token.
struct probe_message_text {
    std::string to = "msg-probe <msg-probe@msg-probe.invalid>"; // To: header
    std::string subject = "msg-probe store check";            // Subject: header, before the token
    std::vector<std::string> body;                            // lines before the "Token:" line
};

// A probe message, line by line without line endings (CR LF on the wire),
// with probe_message_id(token) as its Message-ID and the token in its Subject.
std::vector<std::string> probe_message(std::string_view token, const probe_message_text& text);

} // namespace msg
