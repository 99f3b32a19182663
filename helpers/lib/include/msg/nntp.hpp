#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace msg {

// Bounds on one multi-line NNTP reply (CAPABILITIES, ARTICLE): a reply
// still going past either, or one that never ends with ".", fails the check.
inline constexpr std::size_t nntp_max_reply_lines = 4096;
inline constexpr std::size_t nntp_max_reply_bytes = 1024 * 1024;

// What an NNTP check does beyond greeting, CAPABILITIES and DATE.
struct nntp_options {
    probe_options where;                    // default port 119, 563 with implicit TLS
    std::filesystem::path credentials_file; // AUTHINFO USER/PASS as this file says (credentials.hpp); empty: none
    std::string group;                      // GROUP it; empty: none (required for round_trip)
    bool round_trip = false;                // POST a probe article to group and read it back by Message-ID
};

// Runs greeting (200/201), CAPABILITIES, MODE READER (unless the server
// lists READER; INN's innd does not), optional STARTTLS and CAPABILITIES
// again, optional AUTHINFO USER/PASS, optional GROUP, DATE, the optional
// round trip (POST, then ARTICLE by its random Message-ID), and QUIT, all
// ending by `until`. Multi-line replies are read dot-stuffed, bounded by
// nntp_max_reply_lines and nntp_max_reply_bytes.
// 0 healthy; 1 unhealthy (400 "throttled" greeting and any other refusal
// with the server's text, stall, reply that never ends, certificate);
// 7 nothing listening; 190 certificate expiring within
// where.cert_warn_days; 6 bad credentials file or CA file; 2 bad options.
// The password never appears in the reason.
outcome check_nntp(const nntp_options& options, const deadline& until);

// The port an NNTP server listens on unless told: 119, or 563 with implicit TLS.
std::uint16_t nntp_default_port(tls_mode tls);

} // namespace msg
