#include "msg/child_process.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/process/args.hpp>
#include <boost/process/async.hpp>
#include <boost/process/async_pipe.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>

#include <fcntl.h>
#include <pty.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>

namespace msg {

namespace bp = boost::process;
namespace asio = boost::asio;

namespace {

// After SIGKILL the kernel ends the child at once unless it sits in an
// uninterruptible sleep; this bounds how long we wait to reap it.
constexpr auto reap_grace = std::chrono::milliseconds(500);
// A child that has exited may have left a background process holding its
// output pipe open; we read what is buffered, then stop waiting for EOF.
constexpr auto drain_grace = std::chrono::milliseconds(200);

// Runs in the forked child just before execve.
struct child_setup : bp::extend::handler {
    // A background service must not outlive the helper that started it, even
    // when the helper is killed (an agent's operation timeout).
    bool die_with_parent = false;

    template <class Executor>
    void on_exec_setup(Executor&) const
    {
        if (die_with_parent) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        }
        // Its own process group, so a timeout kills the tool and everything it
        // started (postfix check runs postfix-script, which runs postconf ...).
        ::setpgid(0, 0);
        // Descriptors the helper holds (sockets, lock files) must not leak into
        // the tool; marking them close-on-exec also keeps Boost's exec-error
        // pipe, which is already close-on-exec, working. Stdio was dup2'ed onto
        // 0-2, which stay open.
        if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            const long max_fd = ::sysconf(_SC_OPEN_MAX);
            for (int fd = 3; fd < (max_fd > 0 && max_fd < 65536 ? max_fd : 65536); ++fd) {
                ::fcntl(fd, F_SETFD, FD_CLOEXEC);
            }
        }
        // The helper may run with signals blocked or ignored by its parent
        // (Pacemaker's executor); the tool must start with defaults.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
    }
};

// Keeps the last `max` bytes read from one stream.
class stream_tail {
public:
    explicit stream_tail(std::size_t max) : max_(max) {}

    std::array<char, 4096>& chunk() { return chunk_; }
    void append(std::size_t n)
    {
        data_.append(chunk_.data(), n);
        if (data_.size() > max_) {
            data_.erase(0, data_.size() - max_);
            truncated_ = true;
        }
    }
    void finish() { done_ = true; }
    bool done() const { return done_; }
    bool truncated() const { return truncated_; }
    std::string take() { return std::move(data_); }

private:
    std::size_t max_;
    std::array<char, 4096> chunk_{};
    std::string data_;
    bool truncated_ = false;
    bool done_ = false;
};

template <class Stream>
void read_until_end(Stream& stream, stream_tail& tail)
{
    stream.async_read_some(asio::buffer(tail.chunk()), [&stream, &tail](const boost::system::error_code& ec, std::size_t n) {
        if (n > 0) {
            tail.append(n);
        }
        // A pty master reports EIO, not EOF, once the last slave is closed.
        if (ec) {
            tail.finish();
            return;
        }
        read_until_end(stream, tail);
    });
}

std::string normalise_tty_text(std::string text)
{
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c != '\r') {
            out.push_back(c);
        }
    }
    return out;
}

bool executable_file(const std::string& path)
{
    return ::access(path.c_str(), X_OK) == 0;
}

// A pseudo-terminal for the child's stderr: the master end is read here, the
// slave end goes to the child as a FILE*, which Boost.Process v1 dup2()s.
struct tty_pair {
    int master = -1;
    FILE* slave = nullptr;

    ~tty_pair()
    {
        if (master >= 0) {
            ::close(master);
        }
        close_slave();
    }
    void close_slave()
    {
        if (slave != nullptr) {
            std::fclose(slave);
            slave = nullptr;
        }
    }
    bool open(std::string& error)
    {
        int slave_fd = -1;
        struct termios raw {};
        ::cfmakeraw(&raw);
        if (::openpty(&master, &slave_fd, nullptr, &raw, nullptr) != 0) {
            error = std::string("cannot allocate a pseudo-terminal: ") + std::strerror(errno);
            return false;
        }
        ::fcntl(master, F_SETFD, FD_CLOEXEC);
        slave = ::fdopen(slave_fd, "w");
        if (slave == nullptr) {
            error = std::string("cannot open the pseudo-terminal: ") + std::strerror(errno);
            ::close(slave_fd);
            return false;
        }
        return true;
    }
};

// resolve_program, or empty with `error` saying why. Checked before forking:
// once descriptors are closed in the child, an execve failure could only
// show as a bare exit status.
std::string resolve_executable(const std::string& program, std::string& error);

// The explicit minimal environment every child gets.
bp::environment child_environment(const child_command& command)
{
    // set(), never operator[]: in Boost 1.74 that goes through find(),
    // which compares the name with each entry regardless of the entry's
    // length and reads past the end of a shorter one (AddressSanitizer:
    // heap-buffer-overflow once msg-status passed its first extra variable).
    bp::environment env;
    env.set("PATH", child_path);
    env.set("LANG", "C");
    for (const auto& [name, value] : command.extra_env) {
        env.set(name, value);
    }
    return env;
}

} // namespace

std::string resolve_program(const std::string& program)
{
    if (program.empty()) {
        return {};
    }
    if (program.find('/') != std::string::npos) {
        return executable_file(program) ? program : std::string();
    }
    std::string_view dirs(child_path);
    while (!dirs.empty()) {
        const auto colon = dirs.find(':');
        const std::string_view dir = dirs.substr(0, colon);
        std::string candidate(dir);
        candidate += '/';
        candidate += program;
        if (executable_file(candidate)) {
            return candidate;
        }
        dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    }
    return {};
}

namespace {

std::string resolve_executable(const std::string& program, std::string& error)
{
    std::string exe = resolve_program(program);
    if (exe.empty()) {
        error = program.find('/') != std::string::npos ? program + " is missing or not executable"
                                                       : program + " not found in " + child_path;
    }
    return exe;
}

} // namespace

std::string child_result::describe_end() const
{
    std::ostringstream text;
    if (!started) {
        text << "could not be started: " << launch_error;
    } else if (timed_out) {
        text << "was still running at the deadline and was killed";
    } else if (exit_code) {
        text << "exited with status " << *exit_code;
    } else if (signal) {
        text << "was killed by signal " << *signal << " (" << ::strsignal(*signal) << ")";
    } else {
        text << "ended in an unknown way";
    }
    return text.str();
}

child_result run_child(const child_command& command, const deadline& limit)
{
    child_result result;
    const std::string exe = resolve_executable(command.program, result.launch_error);
    if (exe.empty()) {
        return result;
    }

    const bp::environment env = child_environment(command);

    asio::io_context io;
    stream_tail out_tail(command.max_output_bytes);
    stream_tail err_tail(command.max_output_bytes);
    bp::async_pipe out_pipe(io);
    std::optional<bp::async_pipe> err_pipe;
    tty_pair tty;
    std::optional<asio::posix::stream_descriptor> err_tty;
    if (command.stderr_is_tty) {
        if (!tty.open(result.launch_error)) {
            return result;
        }
    } else {
        err_pipe.emplace(io);
    }

    bool exited = false;
    auto on_exit = bp::on_exit([&exited](int, const std::error_code&) { exited = true; });
    std::error_code launch_ec;
    bp::child child;
    if (command.stderr_is_tty) {
        child = bp::child(bp::exe = exe, bp::args = command.args, env, bp::std_in < bp::null, bp::std_out > out_pipe,
                          bp::std_err > tty.slave, on_exit, io, child_setup{}, launch_ec);
    } else {
        child = bp::child(bp::exe = exe, bp::args = command.args, env, bp::std_in < bp::null, bp::std_out > out_pipe,
                          bp::std_err > *err_pipe, on_exit, io, child_setup{}, launch_ec);
    }
    if (launch_ec) {
        result.launch_error = exe + ": " + launch_ec.message();
        return result;
    }
    result.started = true;
    const pid_t pid = child.id();
    // Also from the parent: a deadline that passes before the child ran its
    // setpgid() must still find the group.
    ::setpgid(pid, pid);

    read_until_end(out_pipe, out_tail);
    if (command.stderr_is_tty) {
        // Only the child may hold the slave now, so its exit ends the reads.
        tty.close_slave();
        err_tty.emplace(io, tty.master);
        tty.master = -1;
        read_until_end(*err_tty, err_tail);
    } else {
        read_until_end(*err_pipe, err_tail);
    }

    std::optional<steady_clock::time_point> drain_until;
    while (!(exited && out_tail.done() && err_tail.done())) {
        if (exited && !drain_until) {
            drain_until = std::min(limit.at(), steady_clock::now() + drain_grace);
        }
        const auto until = drain_until ? *drain_until : limit.at();
        if (steady_clock::now() >= until || io.stopped()) {
            break;
        }
        io.run_one_until(until);
    }

    if (!exited) {
        result.timed_out = true;
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        const auto reap_until = steady_clock::now() + reap_grace;
        while (!exited && steady_clock::now() < reap_until && !io.stopped()) {
            io.run_one_until(reap_until);
        }
    }

    // Pending reads are abandoned; their handlers die with the io_context
    // without running, so the tails can be read now.
    boost::system::error_code ignored;
    out_pipe.close(ignored);
    if (err_pipe) {
        err_pipe->close(ignored);
    }
    if (err_tty) {
        err_tty->close(ignored);
    }

    if (exited) {
        const int status = child.native_exit_code();
        if (WIFEXITED(status)) {
            result.exit_code = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
            result.signal = WTERMSIG(status);
        }
    } else {
        // Unkillable for now (uninterruptible sleep): do not block on it.
        child.detach();
    }

    result.output_truncated = out_tail.truncated() || err_tail.truncated();
    result.out = out_tail.take();
    result.err = command.stderr_is_tty ? normalise_tty_text(err_tail.take()) : err_tail.take();
    return result;
}

background_child::background_child(const child_command& command)
{
    const std::string exe = resolve_executable(command.program, launch_error_);
    if (exe.empty()) {
        return;
    }
    std::error_code launch_ec;
    child_setup setup;
    setup.die_with_parent = true;
    child_ = std::make_unique<bp::child>(bp::exe = exe, bp::args = command.args, child_environment(command),
                                         bp::std_in < bp::null, bp::std_out > bp::null, bp::std_err > bp::null,
                                         setup, launch_ec);
    if (launch_ec) {
        launch_error_ = exe + ": " + launch_ec.message();
        child_.reset();
        return;
    }
    pid_ = child_->id();
    ::setpgid(pid_, pid_);
}

background_child::~background_child()
{
    stop(std::chrono::milliseconds(500));
}

bool background_child::running()
{
    if (!child_ || ended_) {
        return false;
    }
    std::error_code ec;
    if (!child_->running(ec)) {
        ended_ = true;
    }
    return !ended_;
}

bool background_child::stop(std::chrono::milliseconds grace)
{
    if (!running()) {
        return true;
    }
    // No wait_for (broken in Boost.Process v1): poll the exit instead.
    constexpr auto poll = std::chrono::milliseconds(20);
    constexpr auto term_again_every = std::chrono::milliseconds(100);
    const auto term_until = steady_clock::now() + grace;
    auto next_term = steady_clock::now();
    while (running() && steady_clock::now() < term_until) {
        // Again and again: a master that respawns a child the first TERM
        // killed then waits for that newcomer in its own shutdown (Dovecot's
        // master hung there until SIGKILL in about one stop in eight).
        if (steady_clock::now() >= next_term) {
            ::kill(-pid_, SIGTERM);
            // A frozen service handles its TERM only once it runs again.
            ::kill(-pid_, SIGCONT);
            next_term = steady_clock::now() + term_again_every;
        }
        std::this_thread::sleep_for(poll);
    }
    if (!running()) {
        return true;
    }
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    const auto reap_until = steady_clock::now() + reap_grace;
    while (running() && steady_clock::now() < reap_until) {
        std::this_thread::sleep_for(poll);
    }
    if (running()) {
        // Unkillable for now (uninterruptible sleep): do not block on it.
        child_->detach();
        ended_ = true;
    }
    return false;
}

} // namespace msg
