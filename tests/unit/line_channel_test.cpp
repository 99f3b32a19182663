// msg::line_channel: line framing, limits and closing, below any protocol.
#include "msg/deadline.hpp"
#include "msg/line_channel.hpp"
#include "msg/outcome.hpp"
#include "msg/probe_options.hpp"

#include "fake_server.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>

namespace {

using namespace std::chrono_literals;
using msg::ocf_code;
using msg_test::fake_server;
using msg_test::server_script;

msg::outcome failure_of(const std::function<void()>& action)
{
    try {
        action();
    } catch (const msg::check_failure& failure) {
        return failure.result();
    }
    return msg::outcome::ok();
}

TEST(LineChannel, ReadsPipelinedLinesOneAtATime)
{
    fake_server server(server_script().send("first\r\nsecond\nthird\r\n").stall());
    msg::line_channel channel(msg::deadline::after(1s));
    channel.connect_tcp("127.0.0.1", server.port());
    EXPECT_EQ(channel.peer(), "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(channel.read_line(64, "line"), "first");
    EXPECT_EQ(channel.read_line(64, "line"), "second");
    EXPECT_EQ(channel.read_line(64, "line"), "third");
}

TEST(LineChannel, LineOfExactlyMaxLenIsAccepted)
{
    fake_server server(server_script().send("0123456789\r\n").stall());
    msg::line_channel channel(msg::deadline::after(1s));
    channel.connect_tcp("127.0.0.1", server.port());
    EXPECT_EQ(channel.read_line(10, "line"), "0123456789");
}

TEST(LineChannel, LineLongerThanMaxLenFails)
{
    fake_server server(server_script().send("01234567890\r\n").stall());
    msg::line_channel channel(msg::deadline::after(1s));
    channel.connect_tcp("127.0.0.1", server.port());
    const auto result = failure_of([&] { channel.read_line(10, "greeting"); });
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "greeting: line longer than 10 bytes");
}

TEST(LineChannel, EndlessLineFailsWithoutWaitingForDeadline)
{
    fake_server server(server_script().send_filler(1024 * 1024).stall());
    msg::line_channel channel(msg::deadline::after(5s));
    channel.connect_tcp("127.0.0.1", server.port());
    const auto started = std::chrono::steady_clock::now();
    const auto result = failure_of([&] { channel.read_line(512, "greeting"); });
    EXPECT_EQ(result.reason(), "greeting: line longer than 512 bytes");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
}

TEST(LineChannel, DeadlineBoundsEveryOperationTogether)
{
    // Lines arrive in time, then nothing: the second read only gets what is
    // left of the one deadline, not a fresh timeout.
    fake_server server(server_script().send("one\r\n").stall());
    const auto started = std::chrono::steady_clock::now();
    msg::line_channel channel(msg::deadline::after(600ms));
    channel.connect_tcp("127.0.0.1", server.port());
    EXPECT_EQ(channel.read_line(64, "line"), "one");
    const auto result = failure_of([&] { channel.read_line(64, "second line"); });
    EXPECT_EQ(result.reason(), "no second line within 600 ms");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 900ms);
}

TEST(LineChannel, ClosedChannelRefusesFurtherReads)
{
    fake_server server(server_script().stall());
    msg::line_channel channel(msg::deadline::after(300ms));
    channel.connect_tcp("127.0.0.1", server.port());
    EXPECT_EQ(failure_of([&] { channel.read_line(64, "banner"); }).reason(), "no banner within 300 ms");
    EXPECT_EQ(failure_of([&] { channel.read_line(64, "reply"); }).reason(),
              "connection already closed before reply");
}

TEST(LineChannel, WriteSendsCrLfAndRefusesEmbeddedLineBreaks)
{
    fake_server server(server_script().expect("HELLO there").send("ok\r\n").stall());
    msg::line_channel channel(msg::deadline::after(1s));
    channel.connect_tcp("127.0.0.1", server.port());
    const auto injected = failure_of([&] { channel.write_line("HELLO\r\nQUIT", "HELLO"); });
    EXPECT_EQ(injected.code(), ocf_code::err_args);
    channel.write_line("HELLO there", "HELLO");
    EXPECT_EQ(channel.read_line(64, "reply"), "ok");
    EXPECT_EQ(server.received(), (std::vector<std::string>{"HELLO there"}));
}

TEST(LineChannel, ReadExactTakesBufferedBytesFirstAndLeavesTheRest)
{
    // The literal's first bytes arrive with its announcing line, so they
    // are already buffered; the line after it must still be intact.
    fake_server server(
        server_script().send("* 1 FETCH (BODY[] {12}\r\nhello\r\n").send("world)\r\nnext\r\n").stall());
    msg::line_channel channel(msg::deadline::after(1s));
    channel.connect_tcp("127.0.0.1", server.port());
    EXPECT_EQ(channel.read_line(64, "line"), "* 1 FETCH (BODY[] {12}");
    EXPECT_EQ(channel.read_exact(12, "literal"), "hello\r\nworld");
    EXPECT_EQ(channel.read_line(64, "line"), ")");
    EXPECT_EQ(channel.read_line(64, "line"), "next");
    EXPECT_EQ(channel.read_exact(0, "empty literal"), "");
}

TEST(LineChannel, ReadExactShortThenCloseSaysHowMuchArrived)
{
    fake_server server(server_script().send("0123").close());
    msg::line_channel channel(msg::deadline::after(1s));
    channel.connect_tcp("127.0.0.1", server.port());
    const auto started = std::chrono::steady_clock::now();
    const auto result = failure_of([&] { channel.read_exact(10, "literal"); });
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "connection closed by 127.0.0.1:" + std::to_string(server.port())
                                   + " while waiting for literal (got 4 of 10 bytes)");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 500ms);
}

TEST(LineChannel, ReadExactShortThenStallEndsAtDeadline)
{
    fake_server server(server_script().send("0123").stall());
    const auto started = std::chrono::steady_clock::now();
    msg::line_channel channel(msg::deadline::after(500ms));
    channel.connect_tcp("127.0.0.1", server.port());
    const auto result = failure_of([&] { channel.read_exact(1000, "literal"); });
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "no literal within 500 ms (got 4 of 1000 bytes)");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 800ms);
}

TEST(LineChannel, ReleasedDescriptorIsBlockingAndConnected)
{
    fake_server server(server_script().expect("PING").send("PONG\r\n").stall());
    msg::line_channel channel(msg::deadline::after(1s));
    EXPECT_EQ(failure_of([&] { channel.release_descriptor(); }).code(), ocf_code::err_generic);
    channel.connect_tcp("127.0.0.1", server.port());
    const int fd = channel.release_descriptor();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    ASSERT_EQ(::write(fd, "PING\r\n", 6), 6);
    char reply[6] = {};
    ASSERT_EQ(::recv(fd, reply, sizeof reply, MSG_WAITALL), 6);
    EXPECT_EQ(std::string(reply, 6), "PONG\r\n");
    ::close(fd);
    EXPECT_EQ(failure_of([&] { channel.read_line(64, "reply"); }).reason(),
              "connection already closed before reply");
}

TEST(LineChannel, OverlongSocketPathIsUsageError)
{
    msg::line_channel channel(msg::deadline::after(1s));
    const auto result = failure_of([&] { channel.connect_unix("/tmp/" + std::string(200, 's')); });
    EXPECT_EQ(result.code(), ocf_code::err_args);
}

TEST(LineChannel, DescribesTargets)
{
    msg::probe_options options;
    EXPECT_EQ(msg::describe_target(options, 25), "127.0.0.1:25");
    options.host = "::1";
    options.port = 2525;
    EXPECT_EQ(msg::describe_target(options, 25), "[::1]:2525");
    options.socket_path = "/run/dovecot/lmtp";
    EXPECT_EQ(msg::describe_target(options, 24), "/run/dovecot/lmtp");
}

} // namespace
