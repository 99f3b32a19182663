#pragma once

#include "msg/deadline.hpp"
#include "msg/probe_options.hpp"
#include "msg/tls.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace msg {

// The verification `options` ask for: ca_file, and server_name or else host.
// Throws 2 for TLS over a unix socket without server_name.
tls_verification verification_for(const probe_options& options);

// A line-oriented client connection (TCP or unix socket, optionally TLS)
// whose every operation ends by one deadline. Operations throw
// check_failure; after a failure or a passed deadline the channel is closed.
// `what` arguments name the awaited step in reasons ("SMTP banner",
// "reply to EHLO") and never carry data sent or received.
class line_channel {
public:
    // An unconnected channel bounded by `until`.
    explicit line_channel(const deadline& until);
    ~line_channel();
    line_channel(const line_channel&) = delete;
    line_channel& operator=(const line_channel&) = delete;

    // Connects as `options` say (unix socket, else host:port or default_port),
    // then handshakes when options.tls is implicit. Throws 7 when nothing
    // listens (refused, socket absent), 6 for a bad CA file, 1 otherwise.
    void connect(const probe_options& options, std::uint16_t default_port);

    // Connects to host:port, resolving names within the deadline. Throws 7 when refused, 1 otherwise.
    void connect_tcp(const std::string& host, std::uint16_t port);

    // Connects to the unix socket at `path`. Throws 7 when absent or refused, 2 for an over-long path, 1 otherwise.
    void connect_unix(const std::string& path);

    // TLS handshake on the open connection, verifying the server. Throws 1
    // on any failure, also when plaintext arrived after the STARTTLS reply.
    void start_tls(const tls_verification& verification);

    // The next line without its line ending; throws 1 on a line longer than
    // max_len bytes (buffering at most max_len + 2), on close, or at the deadline.
    std::string read_line(std::size_t max_len, std::string_view what);

    // Exactly `count` bytes (an IMAP literal {N}), taking buffered input
    // first; throws 1 on close (saying how many arrived) or at the deadline.
    // Buffers at most `count` bytes: the caller bounds it.
    std::string read_exact(std::size_t count, std::string_view what);

    // Sends `line` followed by CR LF. Throws 2 if `line` holds CR or LF, 1 on failure or at the deadline.
    void write_line(std::string_view line, std::string_view what);

    // Closes the connection; safe to call repeatedly.
    void close();

    // Hands the connected socket over to a library that does its own I/O
    // (libldap): returns its descriptor, in blocking mode, which the caller
    // now owns; the channel is closed. Throws 1 when not connected or when
    // bytes are buffered, 2 after start_tls (the TLS state cannot move).
    int release_descriptor();

    // The verified server certificate once start_tls succeeded; nullopt before.
    const std::optional<certificate_info>& peer_certificate() const;

    // "127.0.0.1:25", "[::1]:25" or the socket path; empty before connecting.
    const std::string& peer() const;

    // The time the channel had when created, as timeout reasons quote it.
    std::chrono::milliseconds time_limit() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace msg
