#include "msg/line_channel.hpp"

#include "msg/outcome.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace msg {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using socket_type = asio::generic::stream_protocol::socket;

namespace {

std::string within(std::chrono::milliseconds limit)
{
    std::ostringstream text;
    text << " within " << limit.count() << " ms";
    return text.str();
}

bool is_closed_by_peer(const error_code& ec)
{
    // A TLS peer that drops the TCP connection without close_notify shows
    // up as stream_truncated rather than eof; to an operator both are "closed".
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
           || ec == asio::error::connection_reset;
}

struct resolution {
    std::mutex mutex;
    std::condition_variable finished;
    bool done = false;
    int status = 0;
    std::vector<asio::ip::tcp::endpoint> endpoints;
};

// getaddrinfo cannot be cancelled, and Asio's resolver joins its lookup
// thread when the io_context is destroyed, so a hung DNS server would hang
// the probe past its deadline. The lookup therefore runs on a detached thread
// that owns its state; at the deadline the probe walks away from it.
std::vector<asio::ip::tcp::endpoint> resolve(const std::string& host, std::uint16_t port, const deadline& until,
                                             std::chrono::milliseconds limit)
{
    error_code not_numeric;
    const auto address = asio::ip::make_address(host, not_numeric);
    if (!not_numeric)
        return {asio::ip::tcp::endpoint(address, port)};

    auto state = std::make_shared<resolution>();
    std::thread([state, host, port] {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* list = nullptr;
        const int status = getaddrinfo(host.c_str(), nullptr, &hints, &list);
        std::vector<asio::ip::tcp::endpoint> found;
        for (const addrinfo* entry = list; status == 0 && entry != nullptr; entry = entry->ai_next) {
            if (entry->ai_family != AF_INET && entry->ai_family != AF_INET6)
                continue;
            asio::ip::tcp::endpoint endpoint;
            std::memcpy(endpoint.data(), entry->ai_addr, entry->ai_addrlen);
            endpoint.port(port);
            found.push_back(endpoint);
        }
        if (list != nullptr)
            freeaddrinfo(list);
        const std::lock_guard lock(state->mutex);
        state->status = status;
        state->endpoints = std::move(found);
        state->done = true;
        state->finished.notify_all();
    }).detach();

    std::unique_lock lock(state->mutex);
    if (!state->finished.wait_until(lock, until.at(), [&] { return state->done; }))
        throw check_failure(outcome::failed("host name '" + host + "' not resolved" + within(limit)));
    if (state->status != 0)
        throw check_failure(outcome::failed("cannot resolve host name '" + host + "': " + gai_strerror(state->status)));
    if (state->endpoints.empty())
        throw check_failure(outcome::failed("host name '" + host + "' has no IPv4 or IPv6 address"));
    return state->endpoints;
}

std::string describe_endpoint(const std::string& host, std::uint16_t port)
{
    probe_options target;
    target.host = host;
    target.port = port;
    return describe_target(target, port);
}

} // namespace

struct line_channel::impl {
    explicit impl(const deadline& end)
        : until(end)
        , limit(end.budget_ms())
        , socket(io)
    {
    }

    deadline until;
    std::chrono::milliseconds limit;
    asio::io_context io;
    socket_type socket;
    // Declared before `tls`, which refers to it, so it is destroyed after it.
    std::unique_ptr<asio::ssl::context> tls_context;
    std::optional<asio::ssl::stream<socket_type>> tls;
    // Received bytes not yet returned as a line; never more than one line's limit.
    std::string input;
    std::string peer;
    std::optional<certificate_info> certificate;
    std::string rejected_subject;

    socket_type& raw() { return tls ? tls->next_layer() : socket; }
    bool is_open() { return raw().is_open(); }

    template <typename Operation>
    void on_stream(Operation&& operation)
    {
        if (tls)
            operation(*tls);
        else
            operation(socket);
    }

    // Runs the io_context until `done` or the deadline. Asio 1.18 has no
    // per-operation cancellation, so at the deadline the socket is closed:
    // that completes the pending operation with operation_aborted, and the
    // handler runs before returning because it refers to the caller's frame.
    bool run(const bool& done)
    {
        io.restart();
        while (!done && io.run_one_until(until.at()) > 0) {
        }
        if (done)
            return true;
        error_code ignored;
        raw().close(ignored);
        io.restart();
        io.run();
        return false;
    }

    [[noreturn]] void fail(outcome result)
    {
        error_code ignored;
        raw().close(ignored);
        throw check_failure(std::move(result));
    }

    // A read of `awaited` ended with `ec`; `detail` says how far it got, if that helps.
    [[noreturn]] void fail_read(const error_code& ec, const std::string& awaited, const std::string& detail = {})
    {
        if (is_closed_by_peer(ec))
            fail(outcome::failed("connection closed by " + peer + " while waiting for " + awaited + detail));
        fail(outcome::failed("reading " + awaited + " from " + peer + " failed: " + ec.message() + detail));
    }

    void require_open(std::string_view what)
    {
        if (!is_open())
            throw check_failure(outcome::failed("connection already closed before " + std::string(what)));
    }
};

tls_verification verification_for(const probe_options& options)
{
    if (!options.server_name.empty())
        return {options.ca_file, options.server_name};
    // A unix socket has no host name to hold the certificate against, and
    // skipping the name check would trust any certificate the CA ever signed.
    if (!options.socket_path.empty())
        throw check_failure(outcome(ocf_code::err_args, "TLS over a unix socket needs --server-name"));
    return {options.ca_file, options.host};
}

line_channel::line_channel(const deadline& until) : impl_(std::make_unique<impl>(until)) {}

line_channel::~line_channel() = default;

void line_channel::connect(const probe_options& options, std::uint16_t default_port)
{
    if (!options.socket_path.empty())
        connect_unix(options.socket_path);
    else
        connect_tcp(options.host, effective_port(options, default_port));
    if (options.tls == tls_mode::implicit)
        start_tls(verification_for(options));
}

void line_channel::connect_tcp(const std::string& host, std::uint16_t port)
{
    impl& self = *impl_;
    self.peer = describe_endpoint(host, port);
    error_code last_error;
    for (const auto& endpoint : resolve(host, port, self.until, self.limit)) {
        bool done = false;
        error_code result;
        self.socket.async_connect(asio::generic::stream_protocol::endpoint(endpoint), [&](const error_code& ec) {
            result = ec;
            done = true;
        });
        if (!self.run(done))
            self.fail(outcome::failed("no connection to " + self.peer + within(self.limit)));
        if (!result)
            return;
        last_error = result;
        error_code ignored;
        self.socket.close(ignored);
    }
    if (last_error == asio::error::connection_refused)
        self.fail(outcome::not_running("nothing listening on " + self.peer + " (connection refused)"));
    self.fail(outcome::failed("cannot connect to " + self.peer + ": " + last_error.message()));
}

void line_channel::connect_unix(const std::string& path)
{
    impl& self = *impl_;
    self.peer = path;
    asio::local::stream_protocol::endpoint endpoint;
    try {
        endpoint = asio::local::stream_protocol::endpoint(path);
    } catch (const boost::system::system_error& error) {
        throw check_failure(
            outcome(ocf_code::err_args, "unusable socket path '" + path + "': " + error.code().message()));
    }
    bool done = false;
    error_code result;
    self.socket.async_connect(asio::generic::stream_protocol::endpoint(endpoint), [&](const error_code& ec) {
        result = ec;
        done = true;
    });
    if (!self.run(done))
        self.fail(outcome::failed("no connection to " + path + within(self.limit)));
    if (!result)
        return;
    if (result == asio::error::connection_refused)
        self.fail(outcome::not_running("nothing listening on " + path + " (connection refused)"));
    if (result == boost::system::errc::no_such_file_or_directory)
        self.fail(outcome::not_running("nothing listening on " + path + " (socket absent)"));
    self.fail(outcome::failed("cannot connect to " + path + ": " + result.message()));
}

void line_channel::start_tls(const tls_verification& verification)
{
    impl& self = *impl_;
    self.require_open("TLS handshake");
    // Bytes that arrived before the handshake were sent in plaintext yet
    // would be read as if protected (the STARTTLS injection of CVE-2011-0411).
    if (!self.input.empty())
        self.fail(outcome::failed("server " + self.peer + " sent plaintext after accepting STARTTLS"));

    self.tls_context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    configure_tls_client(self.tls_context->native_handle(), verification);
    self.tls_context->set_verify_callback([&self](bool preverified, asio::ssl::verify_context& context) {
        // Remember whose certificate failed: OpenSSL's reason alone does not
        // say which one in a chain it was.
        if (!preverified && self.rejected_subject.empty()) {
            if (const X509* cert = X509_STORE_CTX_get_current_cert(context.native_handle()))
                self.rejected_subject = describe_certificate(cert).subject;
        }
        return preverified;
    });
    self.tls.emplace(std::move(self.socket), *self.tls_context);
    require_server_name(self.tls->native_handle(), verification);

    bool done = false;
    error_code result;
    self.tls->async_handshake(asio::ssl::stream_base::client, [&](const error_code& ec) {
        result = ec;
        done = true;
    });
    if (!self.run(done))
        self.fail(outcome::failed("no TLS handshake with " + self.peer + within(self.limit)));
    if (result) {
        const long verify = SSL_get_verify_result(self.tls->native_handle());
        if (verify != X509_V_OK) {
            std::string reason = "TLS certificate of " + self.peer + " rejected: "
                                 + X509_verify_cert_error_string(verify);
            if (!self.rejected_subject.empty())
                reason += " (" + self.rejected_subject + ")";
            self.fail(outcome::failed(reason));
        }
        if (is_closed_by_peer(result))
            self.fail(outcome::failed("connection closed during TLS handshake with " + self.peer));
        std::string reason = "TLS handshake with " + self.peer + " failed: " + result.message();
        // The classic mix-up: --tls against a port that speaks plaintext first.
        if (result.category() == asio::error::get_ssl_category()
            && ERR_GET_REASON(static_cast<unsigned long>(result.value())) == SSL_R_WRONG_VERSION_NUMBER)
            reason += " (not a TLS port? --starttls upgrades a plaintext one)";
        self.fail(outcome::failed(reason));
    }
    if (const X509* cert = SSL_get0_peer_certificate(self.tls->native_handle()))
        self.certificate = describe_certificate(cert);
}

std::string line_channel::read_line(std::size_t max_len, std::string_view what)
{
    impl& self = *impl_;
    self.require_open(what);
    bool done = false;
    error_code result;
    std::size_t line_end = 0;
    // The buffer's cap is what keeps a server that never sends a newline
    // from growing our memory: read_until stops with not_found when full.
    auto buffer = asio::dynamic_buffer(self.input, max_len + 2);
    self.on_stream([&](auto& stream) {
        asio::async_read_until(stream, buffer, '\n', [&](const error_code& ec, std::size_t length) {
            result = ec;
            line_end = length;
            done = true;
        });
    });
    const std::string awaited(what);
    if (!self.run(done))
        self.fail(outcome::failed("no " + awaited + within(self.limit)));
    if (result == asio::error::not_found) {
        std::ostringstream reason;
        reason << awaited << ": line longer than " << max_len << " bytes";
        self.fail(outcome::failed(reason.str()));
    }
    if (result)
        self.fail_read(result, awaited);
    std::string line = self.input.substr(0, line_end - 1);
    self.input.erase(0, line_end);
    if (!line.empty() && line.back() == '\r')
        line.pop_back();
    if (line.size() > max_len) {
        std::ostringstream reason;
        reason << awaited << ": line longer than " << max_len << " bytes";
        self.fail(outcome::failed(reason.str()));
    }
    return line;
}

std::string line_channel::read_exact(std::size_t count, std::string_view what)
{
    impl& self = *impl_;
    self.require_open(what);
    const std::string awaited(what);
    if (self.input.size() < count) {
        bool done = false;
        error_code result;
        // Capped at `count` and read to exactly that: a server that lies
        // about a length can make us wait (until the deadline) but never
        // buffer more than the caller allowed or swallow the next line.
        auto buffer = asio::dynamic_buffer(self.input, count);
        const std::size_t missing = count - self.input.size();
        self.on_stream([&](auto& stream) {
            asio::async_read(stream, buffer, asio::transfer_exactly(missing), [&](const error_code& ec, std::size_t) {
                result = ec;
                done = true;
            });
        });
        const bool in_time = self.run(done);
        std::ostringstream progress;
        progress << " (got " << self.input.size() << " of " << count << " bytes)";
        if (!in_time)
            self.fail(outcome::failed("no " + awaited + within(self.limit) + progress.str()));
        if (result)
            self.fail_read(result, awaited, progress.str());
    }
    std::string data = self.input.substr(0, count);
    self.input.erase(0, count);
    return data;
}

void line_channel::write_line(std::string_view line, std::string_view what)
{
    impl& self = *impl_;
    const std::string command(what);
    if (line.find_first_of("\r\n") != std::string_view::npos)
        throw check_failure(outcome(ocf_code::err_args, "refusing to send " + command + ": it contains CR or LF"));
    self.require_open(what);
    std::string data(line);
    data += "\r\n";
    bool done = false;
    error_code result;
    self.on_stream([&](auto& stream) {
        asio::async_write(stream, asio::buffer(data), [&](const error_code& ec, std::size_t) {
            result = ec;
            done = true;
        });
    });
    if (!self.run(done))
        self.fail(outcome::failed("could not send " + command + " to " + self.peer + within(self.limit)));
    if (result) {
        if (is_closed_by_peer(result) || result == asio::error::broken_pipe)
            self.fail(outcome::failed("connection closed by " + self.peer + " before " + command + " was sent"));
        self.fail(outcome::failed("sending " + command + " to " + self.peer + " failed: " + result.message()));
    }
}

void line_channel::close()
{
    error_code ignored;
    impl_->raw().close(ignored);
}

int line_channel::release_descriptor()
{
    impl& self = *impl_;
    self.require_open("handing the connection over");
    if (self.tls)
        throw check_failure(outcome(ocf_code::err_args, "a TLS connection cannot be handed over"));
    if (!self.input.empty())
        self.fail(outcome::failed("server " + self.peer + " sent data before the client spoke"));
    error_code ec;
    const int fd = self.socket.release(ec);
    if (ec)
        self.fail(outcome::failed("cannot hand over the connection to " + self.peer + ": " + ec.message()));
    // Asio leaves its descriptors non-blocking; the new owner expects the
    // default, as if it had connected the socket itself.
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        const std::string error = std::strerror(errno);
        ::close(fd);
        throw check_failure(outcome::failed("cannot hand over the connection to " + self.peer + ": " + error));
    }
    return fd;
}

const std::optional<certificate_info>& line_channel::peer_certificate() const
{
    return impl_->certificate;
}

const std::string& line_channel::peer() const
{
    return impl_->peer;
}

std::chrono::milliseconds line_channel::time_limit() const
{
    return impl_->limit;
}

} // namespace msg
