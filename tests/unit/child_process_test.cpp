#include "msg/child_process.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using msg::child_command;
using msg::deadline;
using msg::run_child;

namespace {

child_command shell(const std::string& script)
{
    child_command command;
    command.program = "/bin/sh";
    command.args = {"-c", script};
    return command;
}

// State letter from /proc/PID/stat, or 0 when the process is gone.
char proc_state(pid_t pid)
{
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
        return 0;
    }
    const auto close = line.rfind(')');
    return close == std::string::npos || close + 2 >= line.size() ? char{0} : line[close + 2];
}

bool dead_or_zombie(pid_t pid)
{
    const char state = proc_state(pid);
    return state == 0 || state == 'Z' || state == 'X';
}

std::set<std::string> env_names(const std::string& env_output)
{
    std::set<std::string> names;
    std::istringstream lines(env_output);
    std::string line;
    while (std::getline(lines, line)) {
        names.insert(line.substr(0, line.find('=')));
    }
    return names;
}

} // namespace

TEST(ChildProcess, CapturesOutputAndExitStatus)
{
    const auto result = run_child(shell("echo out; echo err >&2; exit 3"), deadline::after(5s));
    ASSERT_TRUE(result.started) << result.launch_error;
    EXPECT_FALSE(result.timed_out);
    ASSERT_TRUE(result.exit_code.has_value());
    EXPECT_EQ(*result.exit_code, 3);
    EXPECT_FALSE(result.signal.has_value());
    EXPECT_EQ(result.out, "out\n");
    EXPECT_EQ(result.err, "err\n");
    EXPECT_FALSE(result.succeeded());
    EXPECT_EQ(result.describe_end(), "exited with status 3");
}

TEST(ChildProcess, SuccessfulRunSucceeds)
{
    const auto result = run_child(shell("printf 'a\\nb\\n'"), deadline::after(5s));
    EXPECT_TRUE(result.succeeded());
    EXPECT_EQ(result.out, "a\nb\n");
    EXPECT_TRUE(result.err.empty());
}

TEST(ChildProcess, ChildAndGrandchildKilledAtDeadline)
{
    // Orphans would otherwise go to this machine's slow-reaping PID 1; as a
    // subreaper the test sees them die (as zombies it reaps itself).
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    const auto started = std::chrono::steady_clock::now();
    const auto result = run_child(shell("sleep 30 & echo $!; sleep 30"), deadline::after(300ms));
    const auto elapsed = std::chrono::steady_clock::now() - started;

    ASSERT_TRUE(result.started) << result.launch_error;
    EXPECT_TRUE(result.timed_out);
    EXPECT_FALSE(result.succeeded());
    EXPECT_TRUE(result.signal.has_value() && *result.signal == SIGKILL) << result.describe_end();
    EXPECT_GE(elapsed, 300ms);
    // Deadline plus the reap grace, with slack for a loaded machine; the
    // child alone would have run 30 s.
    EXPECT_LT(elapsed, 2s);
    EXPECT_EQ(result.describe_end(), "was still running at the deadline and was killed");

    const pid_t grandchild = static_cast<pid_t>(std::stol(result.out));
    ASSERT_GT(grandchild, 1);
    // SIGKILL went to the whole group, so the background sleep is dead too.
    bool gone = false;
    for (int i = 0; i < 50 && !gone; ++i) {
        gone = dead_or_zombie(grandchild);
        if (!gone) {
            ::usleep(10000);
        }
    }
    EXPECT_TRUE(gone) << "grandchild " << grandchild << " survived the deadline";
    ::waitpid(grandchild, nullptr, WNOHANG);
    if (!gone) {
        ::kill(grandchild, SIGKILL);
    }
}

TEST(ChildProcess, ExitedChildDoesNotWaitForBackgroundHolderOfItsOutput)
{
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    const auto started = std::chrono::steady_clock::now();
    const auto result = run_child(shell("sleep 5 & echo $!"), deadline::after(4s));
    const auto elapsed = std::chrono::steady_clock::now() - started;
    ASSERT_TRUE(result.started);
    EXPECT_TRUE(result.succeeded()) << result.describe_end();
    EXPECT_LT(elapsed, 2s);  // not the background sleep's 5 s
    const pid_t background = static_cast<pid_t>(std::stol(result.out));
    ASSERT_GT(background, 1);
    ::kill(background, SIGKILL);
    ::waitpid(background, nullptr, 0);
}

TEST(ChildProcess, EnvironmentIsMinimalAndExplicit)
{
    ASSERT_EQ(::setenv("MSG_SECRET_TEST", "do-not-leak", 1), 0);
    auto command = shell("env");
    command.extra_env = {{"MSG_PASSED", "yes"}};
    const auto result = run_child(command, deadline::after(5s));
    ::unsetenv("MSG_SECRET_TEST");

    ASSERT_TRUE(result.succeeded()) << result.describe_end();
    EXPECT_EQ(result.out.find("do-not-leak"), std::string::npos) << result.out;
    EXPECT_EQ(result.out.find("MSG_SECRET_TEST"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("LANG=C\n"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("MSG_PASSED=yes\n"), std::string::npos) << result.out;
    // dash adds PWD itself; nothing else may appear.
    const std::set<std::string> allowed{"PATH", "LANG", "MSG_PASSED", "PWD"};
    for (const auto& name : env_names(result.out)) {
        EXPECT_TRUE(allowed.count(name) == 1) << "unexpected variable " << name;
    }
}

TEST(ChildProcess, OutputKeepsOnlyTheTail)
{
    auto command = shell("head -c 200000 /dev/zero | tr '\\0' a; echo; echo LAST");
    command.max_output_bytes = 64 * 1024;
    const auto result = run_child(command, deadline::after(5s));
    ASSERT_TRUE(result.succeeded()) << result.describe_end();
    EXPECT_TRUE(result.output_truncated);
    EXPECT_EQ(result.out.size(), 64u * 1024u);
    EXPECT_EQ(result.out.substr(result.out.size() - 5), "LAST\n");
}

TEST(ChildProcess, MissingProgramIsReportedNotStarted)
{
    child_command absolute;
    absolute.program = "/nonexistent/msg-no-such-tool";
    const auto by_path = run_child(absolute, deadline::after(1s));
    EXPECT_FALSE(by_path.started);
    EXPECT_NE(by_path.launch_error.find("/nonexistent/msg-no-such-tool"), std::string::npos);

    child_command bare;
    bare.program = "msg-no-such-tool";
    const auto by_name = run_child(bare, deadline::after(1s));
    EXPECT_FALSE(by_name.started);
    EXPECT_EQ(by_name.launch_error, "msg-no-such-tool not found in /usr/sbin:/usr/bin:/sbin:/bin");
    EXPECT_FALSE(by_name.succeeded());
}

TEST(ChildProcess, BareNameIsFoundInMinimalPath)
{
    EXPECT_EQ(msg::resolve_program("sh"), "/usr/bin/sh");
    child_command command;
    command.program = "true";
    EXPECT_TRUE(run_child(command, deadline::after(5s)).succeeded());
}

TEST(ChildProcess, SignalEndingTheChildIsReported)
{
    const auto result = run_child(shell("kill -TERM $$; sleep 5"), deadline::after(5s));
    ASSERT_TRUE(result.started);
    EXPECT_FALSE(result.timed_out);
    EXPECT_FALSE(result.exit_code.has_value());
    ASSERT_TRUE(result.signal.has_value());
    EXPECT_EQ(*result.signal, SIGTERM);
}

TEST(ChildProcess, RunsInItsOwnProcessGroup)
{
    // Fields 1 and 5 of /proc/self/stat of the shell: pid and process group.
    const auto result = run_child(shell("read -r line < /proc/$$/stat; set -- ${line##*) }; echo $$ $3"),
                                  deadline::after(5s));
    ASSERT_TRUE(result.succeeded()) << result.describe_end() << result.err;
    std::istringstream fields(result.out);
    long pid = 0;
    long pgrp = 0;
    fields >> pid >> pgrp;
    EXPECT_GT(pid, 1);
    EXPECT_EQ(pid, pgrp);
    EXPECT_NE(pgrp, static_cast<long>(::getpgrp()));
}

TEST(ChildProcess, InheritsNoDescriptorsBeyondStdio)
{
    const int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
    ASSERT_GE(leaked, 3);
    // ls lists the shell's descriptors (a glob would count its own directory fd).
    const auto result = run_child(shell("ls /proc/$$/fd"), deadline::after(5s));
    ::close(leaked);
    ASSERT_TRUE(result.succeeded()) << result.describe_end() << result.err;
    EXPECT_EQ(result.out, "0\n1\n2\n");
}

TEST(ChildProcess, StderrCanBeATerminal)
{
    auto command = shell("if [ -t 2 ]; then echo 'fatal: on a tty' >&2; exit 1; fi; echo 'no tty' >&2; exit 2");
    command.stderr_is_tty = true;
    const auto on_tty = run_child(command, deadline::after(5s));
    ASSERT_TRUE(on_tty.started) << on_tty.launch_error;
    ASSERT_TRUE(on_tty.exit_code.has_value()) << on_tty.describe_end();
    EXPECT_EQ(*on_tty.exit_code, 1);
    EXPECT_EQ(on_tty.err, "fatal: on a tty\n");

    command.stderr_is_tty = false;
    const auto on_pipe = run_child(command, deadline::after(5s));
    ASSERT_TRUE(on_pipe.exit_code.has_value());
    EXPECT_EQ(*on_pipe.exit_code, 2);
    EXPECT_EQ(on_pipe.err, "no tty\n");
}

TEST(ChildProcess, StdinIsEmpty)
{
    const auto result = run_child(shell("wc -c"), deadline::after(5s));
    ASSERT_TRUE(result.succeeded()) << result.describe_end();
    EXPECT_EQ(result.out, "0\n");
}

TEST(BackgroundChild, StopsOnTermWithItsProcessGroup)
{
    msg::background_child service(shell("sleep 300 & wait"));
    ASSERT_TRUE(service.started()) << service.launch_error();
    const pid_t pid = service.pid();
    EXPECT_EQ(::getpgid(pid), pid);
    EXPECT_TRUE(service.running());
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(service.stop(2s));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_FALSE(service.running());
    EXPECT_TRUE(dead_or_zombie(pid));
}

TEST(BackgroundChild, ChildSpawnedAfterTheTermIsStoppedToo)
{
    // Dovecot's master in miniature: the first TERM kills its worker, it
    // spawns a new one before it notices its own TERM, and its shutdown then
    // waits for that newcomer. One TERM to the group would leave the
    // newcomer running until the KILL.
    msg::background_child service(shell("stopping=; trap stopping=1 TERM; "
                                        "while :; do sleep 300 & wait $!; "
                                        "[ -n \"$stopping\" ] && { sleep 300 & wait $!; exit 0; }; done"));
    ASSERT_TRUE(service.started()) << service.launch_error();
    std::this_thread::sleep_for(200ms);
    const pid_t pid = service.pid();
    EXPECT_TRUE(service.stop(3s)) << "ended by KILL, not TERM";
    EXPECT_TRUE(dead_or_zombie(pid));
}

TEST(BackgroundChild, IgnoredTermEndsInKill)
{
    msg::background_child service(shell("trap '' TERM; while :; do sleep 0.05; done"));
    ASSERT_TRUE(service.started());
    std::this_thread::sleep_for(100ms);
    const pid_t pid = service.pid();
    EXPECT_FALSE(service.stop(300ms));
    EXPECT_TRUE(dead_or_zombie(pid));
}

TEST(BackgroundChild, FrozenServiceIsStopped)
{
    msg::background_child service(shell("sleep 300"));
    ASSERT_TRUE(service.started());
    ::kill(service.pid(), SIGSTOP);
    EXPECT_TRUE(service.stop(2s));
    EXPECT_FALSE(service.running());
}

TEST(BackgroundChild, MissingProgramIsNotStarted)
{
    child_command command;
    command.program = "/nonexistent/msg-test-daemon";
    msg::background_child service(command);
    EXPECT_FALSE(service.started());
    EXPECT_NE(service.launch_error().find("/nonexistent/msg-test-daemon"), std::string::npos);
    EXPECT_FALSE(service.running());
    EXPECT_TRUE(service.stop(10ms));
}

TEST(BackgroundChild, DiesWithTheProcessThatStartedIt)
{
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    const pid_t owner = ::fork();
    if (owner == 0) {
        ::close(pipe_fds[0]);
        msg::background_child service(shell("sleep 300"));
        const pid_t pid = service.pid();
        (void)!::write(pipe_fds[1], &pid, sizeof pid);
        // Dies without running any destructor, as on SIGKILL.
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    pid_t service_pid = 0;
    ASSERT_EQ(::read(pipe_fds[0], &service_pid, sizeof service_pid), static_cast<ssize_t>(sizeof service_pid));
    ::close(pipe_fds[0]);
    ::waitpid(owner, nullptr, 0);
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!dead_or_zombie(service_pid) && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(dead_or_zombie(service_pid));
}
