#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace msg {

// What an SMTP or LMTP check does beyond connecting.
struct smtp_options {
    probe_options where;                          // default port: 25, 465 with implicit TLS, 24 for LMTP
    bool lmtp = false;                            // LMTP (LHLO, RFC 2033) instead of SMTP (EHLO)
    std::string helo_name;                        // EHLO/LHLO argument; empty: this host's name
    std::vector<std::string> required_extensions; // "SIZE", "AUTH PLAIN": keyword, then parameters it must list
    bool transaction = false;                     // MAIL FROM, RCPT TO, RSET: proves mail would be taken, sends none
    std::string mail_from;                        // transaction sender; empty: the null sender <>
    std::string rcpt_to = "postmaster";           // transaction recipient (RFC 5321 requires postmaster)
};

// One complete server reply: its code and the text of each line after "NNN-" / "NNN ".
struct smtp_reply {
    int code = 0;
    std::vector<std::string> lines;

    // The reply as the server sent it, lines joined by a space ("250-a 250 b").
    std::string text() const;
};

// An EHLO/LHLO extension line: upper-cased keyword and its parameters ("AUTH", {"PLAIN", "LOGIN"}).
struct smtp_extension {
    std::string keyword;
    std::vector<std::string> parameters;
};

// The extensions a 250 EHLO/LHLO reply announces (every line after the greeting).
std::vector<smtp_extension> parse_extensions(const smtp_reply& ehlo_reply);

// True if `offered` has the keyword of `required` ("AUTH PLAIN") with all of
// its parameters, compared case-insensitively.
bool offers_extension(const std::vector<smtp_extension>& offered, std::string_view required);

// Runs banner (220), EHLO/LHLO, optional STARTTLS and EHLO again, required
// extensions, optional transaction, NOOP and QUIT, all ending by `until`.
// 0 healthy; 1 unhealthy (reply, stall, certificate); 7 nothing listening;
// 190 certificate expiring within where.cert_warn_days; 2/6 bad options.
outcome check_smtp(const smtp_options& options, const deadline& until);

// The port an SMTP server listens on unless told: 25, or 465 with implicit
// TLS; an LMTP server 24 either way.
std::uint16_t smtp_default_port(bool lmtp, tls_mode tls);

} // namespace msg
