#pragma once

#include <string>

namespace msg {

// What the round trips of msg-probe (IMAP APPEND, NNTP POST) share: a probe
// message is told apart from all others by a random token in its Message-ID.

// 32 hex digits from the CSPRNG. Throws check_failure (1) if none can be drawn.
std::string random_token();

// The current local time as RFC 5322 writes it: "Thu, 26 Nov 2026 12:20:08 +0100".
std::string rfc5322_date_now();

} // namespace msg
