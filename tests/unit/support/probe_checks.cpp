#include "probe_checks.hpp"

#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace msg_test {

timed_outcome timed(const std::function<msg::outcome()>& check)
{
    const auto started = std::chrono::steady_clock::now();
    msg::outcome result = check();
    return {std::move(result),
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)};
}

std::uint16_t free_port()
{
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

std::string write_credentials(const temp_dir& dir, const std::string& name, const std::string& content,
                              std::filesystem::perms mode)
{
    const std::string path = dir.write(name, content);
    std::filesystem::permissions(path, mode);
    return path;
}

void expect_failure(const timed_outcome& run, const std::string& part, std::chrono::milliseconds within)
{
    EXPECT_EQ(run.result.code(), msg::ocf_code::err_generic) << run.result.reason();
    EXPECT_TRUE(contains(run.result.reason(), part));
    // Not even a part of it: a reason cut at its length limit could keep a prefix.
    EXPECT_FALSE(contains(run.result.reason(), std::string(test_password).substr(0, 4)));
    EXPECT_TRUE(printable_ascii(run.result.reason()));
    EXPECT_LT(run.elapsed, within);
}

void expect_unsafe_credentials_refused(const temp_dir& dir, const fake_server& server,
                                       const std::function<msg::outcome(const std::string& file)>& check)
{
    using std::filesystem::perms;
    const std::string content = std::string("probe\n") + test_password + "\n";
    const perms mode_0644 = perms::owner_read | perms::owner_write | perms::group_read | perms::others_read;
    const std::string world_readable = write_credentials(dir, "world-readable", content, mode_0644);
    const std::string foreign = write_credentials(dir, "foreign", content);
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    ASSERT_EQ(::chown(foreign.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
    const std::string missing = (dir.path() / "absent").string();
    struct refusal {
        std::string file;
        std::string reason;
    };
    for (const auto& [file, reason] : {
             refusal{world_readable, "'" + world_readable + "' has mode 0644: it must be 0600 or stricter"},
             refusal{foreign, "'" + foreign + "' (mode 0600) is owned by nobody"},
             refusal{missing, "cannot open credentials file '" + missing + "': No such file or directory"},
         }) {
        const msg::outcome result = check(file);
        EXPECT_EQ(result.code(), msg::ocf_code::err_configured) << file;
        EXPECT_TRUE(contains(result.reason(), reason));
        EXPECT_FALSE(contains(result.reason(), std::string(test_password).substr(0, 4)));
    }
    EXPECT_EQ(server.connections(), 0u);
}

} // namespace msg_test
