#include "fuzz_peer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>

namespace msg_fuzz {

namespace {

[[noreturn]] void give_up(const std::string& what)
{
    std::fprintf(stderr, "fuzz harness: %s: %s\n", what.c_str(), std::strerror(errno));
    std::abort();
}

} // namespace

scratch_dir::scratch_dir()
{
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/msg-fuzz.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
        give_up("mkdtemp " + pattern);
    path_ = pattern;
}

scratch_dir::~scratch_dir()
{
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

scripted_peer::scripted_peer() : socket_path_((dir_.path() / "peer.sock").string())
{
    if (::pipe2(client_returned_, O_CLOEXEC | O_NONBLOCK) != 0)
        give_up("pipe2");
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0)
        give_up("socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof address.sun_path)
        give_up("socket path too long: " + socket_path_);
    std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
    if (::bind(listener_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        give_up("bind " + socket_path_);
    if (::listen(listener_, 8) != 0)
        give_up("listen");
    server_ = std::thread([this] { serve(); });
}

scripted_peer::~scripted_peer()
{
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    server_.join();
    ::close(listener_);
    ::close(client_returned_[0]);
    ::close(client_returned_[1]);
}

msg::outcome scripted_peer::converse(std::string_view reply, const std::function<msg::outcome()>& client)
{
    {
        const std::lock_guard lock(mutex_);
        reply_.assign(reply);
        job_pending_ = true;
        client_done_ = false;
        job_finished_ = false;
    }
    changed_.notify_all();
    msg::outcome result = client();
    // Wakes a peer still waiting for a connection (a client that refused
    // its options never connects); written before client_done_ is set, so
    // the peer drains it in this round.
    const char byte = 0;
    if (::write(client_returned_[1], &byte, 1) != 1)
        give_up("write");
    std::unique_lock lock(mutex_);
    client_done_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return job_finished_; });
    return result;
}

void scripted_peer::serve()
{
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [this] { return job_pending_ || stopping_; });
            if (stopping_)
                return;
            job_pending_ = false;
        }
        // One connection per round; a client that returned without
        // connecting ends the round too. A pending connection wins: the
        // client may have connected and hung up before the peer woke.
        for (;;) {
            pollfd waiting[2] = {{listener_, POLLIN, 0}, {client_returned_[0], POLLIN, 0}};
            if (::poll(waiting, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                give_up("poll");
            }
            if ((waiting[0].revents & POLLIN) != 0) {
                const int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                if (connection < 0)
                    give_up("accept");
                answer(connection);
                ::close(connection);
                break;
            }
            if ((waiting[1].revents & POLLIN) != 0)
                break;
        }
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return client_done_; });
        char drained[16];
        while (::read(client_returned_[0], drained, sizeof drained) > 0) {
        }
        job_finished_ = true;
        lock.unlock();
        changed_.notify_all();
    }
}

void scripted_peer::answer(int connection)
{
    std::string_view rest = reply_;
    while (!rest.empty()) {
        const ssize_t sent = ::send(connection, rest.data(), rest.size(), MSG_NOSIGNAL);
        if (sent <= 0)
            break; // the client hung up first: it had heard enough
        rest.remove_prefix(static_cast<std::size_t>(sent));
    }
    ::shutdown(connection, SHUT_WR);
    // Everything the client says is read, so it never blocks on a full
    // buffer, until it closes (which every probe does before returning).
    char ignored[4096];
    while (::recv(connection, ignored, sizeof ignored, 0) > 0) {
    }
}

namespace {

// The one peer of this process (a fuzz target runs one input at a time).
scripted_peer& shared_peer()
{
    static scripted_peer peer;
    return peer;
}

} // namespace

const std::filesystem::path& credentials_file()
{
    static const scratch_dir dir;
    static const std::filesystem::path file = [] {
        const std::filesystem::path path = dir.path() / "credentials";
        std::ofstream out(path);
        out << "fuzzer\n" << fuzz_password << "\n";
        out.close();
        if (!out || ::chmod(path.c_str(), 0600) != 0)
            give_up("writing " + path.string());
        return path;
    }();
    return file;
}

fuzz_input split_input(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return {};
    return {data[0], std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1)};
}

msg::probe_options peer_endpoint(bool starttls, const std::string& server_name)
{
    return endpoint_of(shared_peer(), starttls, server_name);
}

msg::probe_options endpoint_of(const scripted_peer& peer, bool starttls, const std::string& server_name)
{
    msg::probe_options where;
    where.socket_path = peer.socket_path();
    where.time_limit = std::chrono::milliseconds(fuzz_time_limit_ms);
    if (starttls) {
        where.tls = msg::tls_mode::starttls;
        where.server_name = server_name;
    }
    return where;
}

void fuzz_reply_check(const std::uint8_t* data, std::size_t size, const std::function<msg::outcome(fuzz_run&)>& check)
{
    fuzz_run run{split_input(data, size), msg::deadline::after(std::chrono::milliseconds(fuzz_time_limit_ms))};
    const msg::outcome result = shared_peer().converse(run.input.server_bytes, [&] { return check(run); });
    // The server can be a perfect one; it can never make a probe report anything but health or failure.
    require_sound_outcome(result, {msg::ocf_code::success, msg::ocf_code::err_generic}, run.holds_password);
    require_no_deadline_wait(run.until);
}

void require(bool holds, std::string_view what)
{
    if (holds)
        return;
    std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()), what.data());
    std::abort();
}

void require_sound_outcome(const msg::outcome& result, std::initializer_list<msg::ocf_code> allowed,
                           bool holds_password)
{
    const std::string& reason = result.reason();
    if (!reason.empty())
        std::fprintf(stderr, "exit %d: %.300s\n", result.exit_status(), reason.c_str());
    require(std::find(allowed.begin(), allowed.end(), result.code()) != allowed.end(),
            "exit code outside those this check may give");
    require(result.healthy() == reason.empty(), "a reason exactly when not healthy");
    require(reason.size() <= 1024, "reason longer than 1024 bytes");
    require(std::all_of(reason.begin(), reason.end(), [](char c) { return c >= 0x20 && c < 0x7f; }),
            "reason holds a byte that is not printable ASCII (CR, LF, escape...)");
    require(!holds_password || reason.find(fuzz_password) == std::string::npos, "reason holds the password");
}

void require_no_deadline_wait(const msg::deadline& until)
{
    require(!until.passed(), "check ran to its deadline although the server had hung up");
}

} // namespace msg_fuzz
