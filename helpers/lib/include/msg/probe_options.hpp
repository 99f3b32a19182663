#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace msg {

// How a probe secures its connection.
enum class tls_mode {
    none,     // plain text throughout
    starttls, // plain text, then the protocol's STARTTLS command
    implicit, // TLS from the first byte (smtps, imaps, ...)
};

// Where and how to connect: the vocabulary every msg-probe protocol shares
// (--host, --port, --socket, --tls/--starttls, --ca-file, --server-name,
// --cert-warn-days, --deadline-ms).
struct probe_options {
    std::string host = "127.0.0.1";   // numeric address or name; ignored when socket_path is set
    std::uint16_t port = 0;           // 0: the protocol's default port
    std::string socket_path;          // non-empty: connect to this unix socket instead of host:port
    tls_mode tls = tls_mode::none;
    std::string ca_file;              // PEM trust anchors; empty: the system CA store
    std::string server_name;          // name the certificate must carry, sent as SNI; empty: host
    int cert_warn_days = 0;           // certificate valid for fewer days: degraded (190); 0: never
    std::chrono::milliseconds time_limit{10'000}; // --deadline-ms: the whole check ends within this
};

// The port to dial: options.port, or the protocol's default when it is 0.
inline std::uint16_t effective_port(const probe_options& options, std::uint16_t default_port)
{
    return options.port != 0 ? options.port : default_port;
}

// "host:port" ("[v6]:port") or the socket path, as reasons name the server.
std::string describe_target(const probe_options& options, std::uint16_t default_port);

} // namespace msg
