#include "fake_server.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace msg_test {

namespace {

constexpr int poll_ms = 20;

void require(bool ok, const std::string& what)
{
    if (!ok)
        throw std::runtime_error("fake server: " + what + ": " + std::strerror(errno));
}

bool starts_with_nocase(const std::string& text, const std::string& prefix)
{
    return text.size() >= prefix.size()
           && std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
                  return std::toupper(static_cast<unsigned char>(a)) == std::toupper(static_cast<unsigned char>(b));
              });
}

// One accepted connection, plain or TLS, whose blocking calls give up when
// the server stops, so a test never waits on its own fake.
class connection {
public:
    connection(int fd, const std::atomic<bool>& stopping) : fd_(fd), stopping_(stopping) {}
    ~connection()
    {
        if (ssl_ != nullptr)
            SSL_free(ssl_);
        if (context_ != nullptr)
            SSL_CTX_free(context_);
        ::close(fd_);
    }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // False when the client went away or the server stops.
    bool wait_readable()
    {
        if (ssl_ != nullptr && SSL_pending(ssl_) > 0)
            return true;
        while (!stopping_) {
            pollfd watch{fd_, POLLIN, 0};
            const int ready = ::poll(&watch, 1, poll_ms);
            if (ready > 0)
                return true;
            if (ready < 0 && errno != EINTR)
                return false;
        }
        return false;
    }

    // Bytes read, 0 at end of stream or when stopping.
    std::size_t receive(char* data, std::size_t size)
    {
        while (wait_readable()) {
            if (ssl_ != nullptr) {
                std::size_t got = 0;
                if (SSL_read_ex(ssl_, data, size, &got) == 1)
                    return got;
                if (SSL_get_error(ssl_, 0) == SSL_ERROR_WANT_READ)
                    continue;
                return 0;
            }
            const ssize_t got = ::recv(fd_, data, size, 0);
            if (got > 0)
                return static_cast<std::size_t>(got);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            return 0;
        }
        return 0;
    }

    bool send_all(const std::string& data)
    {
        std::size_t sent = 0;
        while (sent < data.size() && !stopping_) {
            pollfd watch{fd_, POLLOUT, 0};
            if (::poll(&watch, 1, poll_ms) <= 0)
                continue;
            if ((watch.revents & (POLLERR | POLLHUP)) != 0)
                return false;
            const std::size_t chunk = std::min<std::size_t>(data.size() - sent, 16 * 1024);
            if (ssl_ != nullptr) {
                std::size_t wrote = 0;
                if (SSL_write_ex(ssl_, data.data() + sent, chunk, &wrote) == 1) {
                    sent += wrote;
                    continue;
                }
                const int error = SSL_get_error(ssl_, 0);
                if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ)
                    continue;
                return false;
            }
            const ssize_t wrote = ::send(fd_, data.data() + sent, chunk, MSG_NOSIGNAL);
            if (wrote < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (wrote < 0)
                return false;
            sent += static_cast<std::size_t>(wrote);
        }
        return sent == data.size();
    }

    // One line without its line ending; false when the client left first.
    bool read_line(std::string& line)
    {
        for (;;) {
            const auto end = buffer_.find('\n');
            if (end != std::string::npos) {
                line = buffer_.substr(0, end);
                buffer_.erase(0, end + 1);
                if (!line.empty() && line.back() == '\r')
                    line.pop_back();
                return true;
            }
            char chunk[4096];
            const std::size_t got = receive(chunk, sizeof chunk);
            if (got == 0)
                return false;
            buffer_.append(chunk, got);
        }
    }

    // Exactly `count` bytes; false when the client left first.
    bool read_exact(std::size_t count, std::string& data)
    {
        while (buffer_.size() < count) {
            char chunk[4096];
            const std::size_t got = receive(chunk, std::min(sizeof chunk, count - buffer_.size()));
            if (got == 0)
                return false;
            buffer_.append(chunk, got);
        }
        data = buffer_.substr(0, count);
        buffer_.erase(0, count);
        return true;
    }

    bool start_tls(const pem_credentials& credentials, std::string& problem)
    {
        context_ = SSL_CTX_new(TLS_server_method());
        const std::string& pem_cert = credentials.certificate;
        const std::string& pem_key = credentials.private_key;
        BIO* cert_bio = BIO_new_mem_buf(pem_cert.data(), static_cast<int>(pem_cert.size()));
        BIO* key_bio = BIO_new_mem_buf(pem_key.data(), static_cast<int>(pem_key.size()));
        X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
        EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
        const bool loaded = cert != nullptr && key != nullptr && SSL_CTX_use_certificate(context_, cert) == 1
                            && SSL_CTX_use_PrivateKey(context_, key) == 1;
        X509_free(cert);
        EVP_PKEY_free(key);
        BIO_free(cert_bio);
        BIO_free(key_bio);
        if (!loaded) {
            problem = "cannot load the fake server's certificate";
            return false;
        }
        ssl_ = SSL_new(context_);
        SSL_set_fd(ssl_, fd_);
        // Non-blocking, driven by poll, so a client that never finishes the
        // handshake cannot pin this thread.
        while (!stopping_) {
            const int done = SSL_accept(ssl_);
            if (done == 1)
                return true;
            const int error = SSL_get_error(ssl_, done);
            if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
                // The client's verification failures end up here: expected
                // in certificate tests, so not a problem.
                ERR_clear_error();
                return false;
            }
            pollfd watch{fd_, static_cast<short>(error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
            ::poll(&watch, 1, poll_ms);
        }
        return false;
    }

    // Waits `span`; false when the client hung up (or the server stops) meanwhile.
    bool pause(std::chrono::milliseconds span)
    {
        const auto until = std::chrono::steady_clock::now() + span;
        while (!stopping_ && std::chrono::steady_clock::now() < until) {
            // POLLRDHUP only: what the client sends meanwhile stays unread
            // and does not wake this loop; its leaving does.
            pollfd watch{fd_, POLLRDHUP, 0};
            if (::poll(&watch, 1, poll_ms) > 0)
                return false;
        }
        return !stopping_;
    }

    // Until the client closes or the server stops.
    void stall()
    {
        char sink[4096];
        while (receive(sink, sizeof sink) > 0) {
        }
    }

private:
    int fd_;
    const std::atomic<bool>& stopping_;
    std::string buffer_;
    SSL_CTX* context_ = nullptr;
    SSL* ssl_ = nullptr;
};

} // namespace

server_script& server_script::send(std::string text)
{
    steps_.push_back({step::kind::send, std::move(text), 0, {}});
    return *this;
}

server_script& server_script::send_filler(std::size_t count)
{
    steps_.push_back({step::kind::send_filler, {}, count, {}});
    return *this;
}

server_script& server_script::expect(std::string prefix)
{
    steps_.push_back({step::kind::expect, std::move(prefix), 0, {}});
    return *this;
}

server_script& server_script::start_tls(pem_credentials credentials)
{
    steps_.push_back({step::kind::start_tls, {}, 0, std::move(credentials)});
    return *this;
}

server_script& server_script::expect_tagged(std::string prefix)
{
    steps_.push_back({step::kind::expect_tagged, std::move(prefix), 0, {}});
    return *this;
}

server_script& server_script::send_tagged(std::string text)
{
    steps_.push_back({step::kind::send_tagged, std::move(text), 0, {}});
    return *this;
}

server_script& server_script::receive_literal()
{
    steps_.push_back({step::kind::receive_literal, {}, 0, {}});
    return *this;
}

server_script& server_script::echo_literal(std::string prefix, std::string suffix)
{
    steps_.push_back({step::kind::echo_literal, std::move(prefix), 0, {}, std::move(suffix)});
    return *this;
}

server_script& server_script::receive_block()
{
    steps_.push_back({step::kind::receive_block, {}, 0, {}});
    return *this;
}

server_script& server_script::echo_block(std::string prefix)
{
    steps_.push_back({step::kind::echo_block, std::move(prefix), 0, {}});
    return *this;
}

server_script& server_script::respond(responder handler)
{
    steps_.push_back({step::kind::respond, {}, 0, {}, {}, std::move(handler)});
    return *this;
}

server_script& server_script::trickle(std::string text, std::chrono::milliseconds pause)
{
    step added{step::kind::trickle, std::move(text), 0, {}};
    added.pause = pause;
    steps_.push_back(std::move(added));
    return *this;
}

server_script& server_script::repeat(std::string text)
{
    steps_.push_back({step::kind::repeat, std::move(text), 0, {}});
    return *this;
}

server_script& server_script::stall()
{
    steps_.push_back({step::kind::stall, {}, 0, {}});
    return *this;
}

server_script& server_script::close()
{
    steps_.push_back({step::kind::close, {}, 0, {}});
    return *this;
}

server_script healthy_smtp(const std::vector<std::string>& extensions, const std::string& hello)
{
    std::string reply = "250";
    reply += extensions.empty() ? " " : "-";
    reply += "fake.example.com greets you\r\n";
    for (std::size_t i = 0; i < extensions.size(); ++i)
        reply += std::string("250") + (i + 1 == extensions.size() ? " " : "-") + extensions[i] + "\r\n";
    server_script script;
    script.send("220 fake.example.com ESMTP ready\r\n")
        .expect(hello + " ")
        .send(reply)
        .expect("NOOP")
        .send("250 2.0.0 Ok\r\n")
        .expect("QUIT")
        .send("221 2.0.0 Bye\r\n");
    return script;
}

fake_server::fake_server(server_script script) : script_(std::move(script))
{
    // A client that gives up closes its end; writing to it must fail with
    // EPIPE rather than kill the test binary (OpenSSL writes with write(2)).
    ::signal(SIGPIPE, SIG_IGN);
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    require(listener_ >= 0, "socket");
    const int on = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    require(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0, "bind");
    require(::listen(listener_, 16) == 0, "listen");
    socklen_t length = sizeof address;
    require(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0, "getsockname");
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
}

fake_server::fake_server(server_script script, std::string socket_path)
    : script_(std::move(script)), socket_path_(std::move(socket_path))
{
    ::signal(SIGPIPE, SIG_IGN);
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    require(listener_ >= 0, "socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof address.sun_path)
        throw std::runtime_error("fake server: socket path too long: " + socket_path_);
    std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
    ::unlink(socket_path_.c_str());
    require(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0, "bind " + socket_path_);
    require(::listen(listener_, 16) == 0, "listen");
    thread_ = std::thread([this] { serve(); });
}

fake_server::~fake_server()
{
    stopping_ = true;
    thread_.join();
    ::close(listener_);
    if (!socket_path_.empty())
        ::unlink(socket_path_.c_str());
}

std::vector<std::string> fake_server::received() const
{
    const std::lock_guard lock(mutex_);
    return received_;
}

std::vector<std::string> fake_server::received_at_least(std::size_t count, std::chrono::milliseconds wait) const
{
    const auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
        std::vector<std::string> lines = received();
        if (lines.size() >= count || std::chrono::steady_clock::now() >= until)
            return lines;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::vector<std::string> fake_server::literals() const
{
    const std::lock_guard lock(mutex_);
    return literals_;
}

std::vector<std::string> fake_server::problems() const
{
    const std::lock_guard lock(mutex_);
    return problems_;
}

void fake_server::note_problem(std::string text)
{
    const std::lock_guard lock(mutex_);
    problems_.push_back(std::move(text));
}

void fake_server::serve()
{
    while (!stopping_) {
        pollfd watch{listener_, POLLIN, 0};
        if (::poll(&watch, 1, poll_ms) <= 0)
            continue;
        // Non-blocking: every wait goes through poll and notices stopping_.
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            continue;
        ++connections_;
        play(fd);
    }
}

namespace {

// The literal length a line ends with, "{12}" or "{12+}"; npos if none.
std::size_t announced_literal(const std::string& line)
{
    const auto open = line.rfind('{');
    if (line.empty() || line.back() != '}' || open == std::string::npos)
        return std::string::npos;
    std::string digits = line.substr(open + 1, line.size() - open - 2);
    if (!digits.empty() && digits.back() == '+')
        digits.pop_back();
    if (digits.empty() || digits.size() > 9
        || !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
        return std::string::npos;
    return std::stoul(digits);
}

} // namespace

void fake_server::play(int fd)
{
    connection peer(fd, stopping_);
    // IMAP state: the tag of the last tagged command, the last line read
    // (where a literal is announced) and the last literal (or NNTP block) received.
    std::string tag;
    std::string last_line;
    std::string literal;
    for (const auto& step : script_.steps()) {
        using kind = server_script::step::kind;
        switch (step.what) {
        case kind::expect_tagged: {
            if (!peer.read_line(last_line)) {
                note_problem("client left while the server expected a tagged " + step.text);
                return;
            }
            {
                const std::lock_guard lock(mutex_);
                received_.push_back(last_line);
            }
            const auto space = last_line.find(' ');
            tag = last_line.substr(0, space);
            if (space == std::string::npos || !starts_with_nocase(last_line.substr(space + 1), step.text)) {
                note_problem("expected TAG " + step.text + ", got " + last_line);
                return;
            }
            break;
        }
        case kind::send_tagged:
            if (!peer.send_all(tag + " " + step.text))
                return;
            break;
        case kind::receive_literal: {
            const std::size_t length = announced_literal(last_line);
            if (length == std::string::npos) {
                note_problem("expected a literal announced at the end of " + last_line);
                return;
            }
            std::string rest;
            if (!peer.read_exact(length, literal) || !peer.read_line(rest)) {
                note_problem("client left while sending a literal");
                return;
            }
            const std::lock_guard lock(mutex_);
            literals_.push_back(literal);
            if (!rest.empty())
                received_.push_back(rest);
            last_line = rest;
            break;
        }
        case kind::echo_literal:
            if (!peer.send_all(step.text + "{" + std::to_string(literal.size()) + "}\r\n" + literal + step.suffix))
                return;
            break;
        case kind::receive_block: {
            literal.clear();
            for (;;) {
                if (!peer.read_line(last_line)) {
                    note_problem("client left before the \".\" ending its block");
                    return;
                }
                if (last_line == ".")
                    break;
                literal += last_line + "\r\n";
            }
            const std::lock_guard lock(mutex_);
            literals_.push_back(literal);
            break;
        }
        case kind::echo_block:
            if (!peer.send_all(step.text + literal + ".\r\n"))
                return;
            break;
        case kind::send:
            if (!peer.send_all(step.text))
                return;
            break;
        case kind::send_filler:
            // The client is expected to give up part way: not a problem.
            if (!peer.send_all(std::string(step.count, 'x')))
                return;
            break;
        case kind::expect: {
            std::string line;
            if (!peer.read_line(line)) {
                note_problem("client left while the server expected " + step.text);
                return;
            }
            {
                const std::lock_guard lock(mutex_);
                received_.push_back(line);
            }
            last_line = line;
            if (!starts_with_nocase(line, step.text)) {
                note_problem("expected " + step.text + ", got " + line);
                return;
            }
            break;
        }
        case kind::start_tls: {
            std::string problem;
            if (!peer.start_tls(step.credentials, problem)) {
                if (!problem.empty())
                    note_problem(problem);
                return;
            }
            break;
        }
        case kind::respond:
            for (;;) {
                if (!peer.read_line(last_line))
                    return;
                {
                    const std::lock_guard lock(mutex_);
                    received_.push_back(last_line);
                }
                const reaction answer = step.handler(last_line);
                if (!answer.reply.empty() && !peer.send_all(answer.reply))
                    return;
                if (answer.next == reaction::then::stall)
                    peer.stall();
                if (answer.next != reaction::then::go_on)
                    return;
            }
        case kind::trickle:
            for (const char byte : step.text) {
                if (!peer.send_all(std::string(1, byte)) || !peer.pause(step.pause))
                    return;
            }
            break;
        case kind::repeat: {
            // Batches of the text, so the client, not this loop, is the bottleneck.
            std::string batch;
            while (batch.size() < 16 * 1024)
                batch += step.text;
            while (peer.send_all(batch)) {
            }
            return;
        }
        case kind::stall:
            peer.stall();
            return;
        case kind::close:
            return;
        }
    }
}

} // namespace msg_test
