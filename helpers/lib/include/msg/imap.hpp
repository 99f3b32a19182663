#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace msg {

// The largest literal {N} an IMAP server may send the probe, in bytes; a
// larger announcement fails the check at once, before anything is read.
inline constexpr std::size_t imap_max_literal_bytes = 1024 * 1024;

// What an IMAP check does beyond greeting and CAPABILITY.
struct imap_options {
    probe_options where;                    // default port 143, 993 with implicit TLS
    std::filesystem::path credentials_file; // LOGIN as this file says (credentials.hpp); empty: no login
    std::string mailbox;                    // SELECT it after LOGIN; empty: none (INBOX for round_trip)
    bool round_trip = false;                // APPEND a probe message there, FETCH it, delete and EXPUNGE it
};

// Runs greeting (* OK or * PREAUTH), CAPABILITY, optional STARTTLS and
// CAPABILITY again, optional LOGIN, SELECT and round trip, then LOGOUT, all
// ending by `until`. The round trip creates a missing mailbox, finds its
// message by APPENDUID or by UID SEARCH on its random Message-ID, and
// removes only that message (UID EXPUNGE; plain EXPUNGE without UIDPLUS).
// 0 healthy; 1 unhealthy (BYE, NO/BAD, stall, lying literal, certificate,
// LOGINDISABLED); 7 nothing listening; 190 certificate expiring within
// where.cert_warn_days; 6 bad credentials file or CA file; 2 bad options.
// The password never appears in the reason.
outcome check_imap(const imap_options& options, const deadline& until);

// The port an IMAP server listens on unless told: 143, or 993 with implicit TLS.
std::uint16_t imap_default_port(tls_mode tls);

} // namespace msg
