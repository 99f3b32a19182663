#pragma once

#include "test_certificates.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace msg_test {

// What a respond() step makes of one line the client sent.
struct reaction {
    enum class then { go_on, stall, close };
    std::string reply;           // sent as is (include the CR LF); may be empty
    then next = then::go_on;     // after the reply: read on, go silent, or hang up
};

// Turns each line a client sends (without its line ending) into a reaction.
using responder = std::function<reaction(const std::string& line)>;

// What a fake server does on each connection, step by step.
class server_script {
public:
    struct step {
        enum class kind {
            send,
            send_filler,
            expect,
            start_tls,
            stall,
            close,
            expect_tagged,
            send_tagged,
            receive_literal,
            echo_literal,
            receive_block,
            echo_block,
            respond,
            trickle,
            repeat,
        };
        kind what;
        std::string text;          // send(_tagged): bytes; expect(_tagged): command prefix; echo_*: prefix
        std::size_t count = 0;     // send_filler: bytes without a newline
        pem_credentials credentials; // start_tls
        std::string suffix{};      // echo_literal: what follows the literal
        responder handler{};       // respond
        std::chrono::milliseconds pause{}; // trickle: between two bytes
    };

    // Sends `text` as is (include the CR LF).
    server_script& send(std::string text);
    // Sends `count` bytes of 'x' and no newline.
    server_script& send_filler(std::size_t count);
    // Reads one line; records a problem unless it starts with `prefix` (case-insensitive).
    server_script& expect(std::string prefix);
    // Server side of a TLS handshake with `credentials`.
    server_script& start_tls(pem_credentials credentials);
    // IMAP: reads one line "TAG rest"; records a problem unless rest starts
    // with `prefix` (case-insensitive). The tag is kept for send_tagged.
    server_script& expect_tagged(std::string prefix);
    // IMAP: sends the last expect_tagged's tag, a space, then `text` (include the CR LF).
    server_script& send_tagged(std::string text);
    // IMAP: the last line read announced a literal {N} (or {N+}): reads its N
    // bytes (kept for literals() and echo_literal) and the rest of the line.
    server_script& receive_literal();
    // IMAP: sends `prefix`, "{N}" CR LF, the last literal received, then `suffix`.
    server_script& echo_literal(std::string prefix, std::string suffix);
    // NNTP, POP3: reads lines up to a line "." (a dot-stuffed block such as
    // a posted article) and keeps them, CR LF joined and still dot-stuffed,
    // for literals() and echo_block.
    server_script& receive_block();
    // Sends `prefix`, the last block received and the line "." that ends it.
    server_script& echo_block(std::string prefix);
    // Reads lines until the client leaves, answering each as `handler`
    // says: for dialogues whose length no script can know in advance (a
    // client polling until something happens). Lines go to received().
    server_script& respond(responder handler);
    // Sends `text` one byte at a time, `pause` between two (a slowloris
    // server: always sending, never finishing a line in time).
    server_script& trickle(std::string text, std::chrono::milliseconds pause);
    // Sends `text` over and over until the client leaves or the server stops
    // (an endless multiline reply); always the last step.
    server_script& repeat(std::string text);
    // Keeps the connection open and silent until the client leaves or the server stops.
    server_script& stall();
    // Closes the connection (also what happens after the last step).
    server_script& close();

    const std::vector<step>& steps() const { return steps_; }

private:
    std::vector<step> steps_;
};

// The usual well-behaved SMTP (or LMTP) conversation up to QUIT, advertising `extensions`.
server_script healthy_smtp(const std::vector<std::string>& extensions = {"PIPELINING", "SIZE 10240000", "8BITMIME"},
                           const std::string& hello = "EHLO");

// An in-process server on 127.0.0.1 (kernel-chosen port) or a unix socket
// that plays one script to every connection, on its own thread.
class fake_server {
public:
    explicit fake_server(server_script script);
    fake_server(server_script script, std::string socket_path);
    ~fake_server();
    fake_server(const fake_server&) = delete;
    fake_server& operator=(const fake_server&) = delete;

    std::uint16_t port() const { return port_; }

    // Every line clients sent, in order, without line endings.
    std::vector<std::string> received() const;
    // received(), once it has `count` lines or `wait` has passed: for lines a
    // client sends on its way out, which the server may not have read yet.
    std::vector<std::string> received_at_least(std::size_t count,
                                               std::chrono::milliseconds wait = std::chrono::seconds(2)) const;
    // Every literal (receive_literal) and block (receive_block) clients sent, in order.
    std::vector<std::string> literals() const;
    // Deviations from the script ("expected QUIT, got ..."); empty when the client behaved.
    std::vector<std::string> problems() const;
    // Connections accepted so far.
    std::size_t connections() const { return connections_.load(); }

private:
    void serve();
    void play(int fd);
    void note_problem(std::string text);

    server_script script_;
    std::string socket_path_;
    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> connections_{0};
    mutable std::mutex mutex_;
    std::vector<std::string> received_;
    std::vector<std::string> literals_;
    std::vector<std::string> problems_;
    std::thread thread_;
};

} // namespace msg_test
