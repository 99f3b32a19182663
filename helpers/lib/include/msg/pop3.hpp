#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include <cstdint>
#include <filesystem>

namespace msg {

// What a POP3 check does beyond greeting and CAPA.
struct pop3_options {
    probe_options where;                    // default port 110, 995 with implicit TLS
    std::filesystem::path credentials_file; // USER/PASS as this file says (credentials.hpp), then STAT; empty: neither
};

// Runs greeting (+OK), CAPA, optional STLS and CAPA again, optional USER,
// PASS and STAT, then QUIT, all ending by `until`. A server without CAPA
// (-ERR) is accepted; one whose CAPA omits USER is not sent the password.
// 0 healthy; 1 unhealthy (-ERR, stall, malformed reply, certificate);
// 7 nothing listening; 190 certificate expiring within
// where.cert_warn_days; 6 bad credentials file or CA file; 2 bad options.
// The password never appears in the reason.
outcome check_pop3(const pop3_options& options, const deadline& until);

// The port a POP3 server listens on unless told: 110, or 995 with implicit TLS.
std::uint16_t pop3_default_port(tls_mode tls);

} // namespace msg
