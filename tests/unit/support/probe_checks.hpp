#pragma once

#include "fake_server.hpp"
#include "test_certificates.hpp"

#include "msg/outcome.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace msg_test {

// What a check returned and how long it took.
struct timed_outcome {
    msg::outcome result;
    std::chrono::milliseconds elapsed;
};

// Runs `check`, timing it.
timed_outcome timed(const std::function<msg::outcome()>& check);

// A port on 127.0.0.1 that nothing listens on (bound, read, closed).
std::uint16_t free_port();

// The password in test credentials files; no reason may ever contain it.
inline constexpr const char* test_password = "S3cret pw";

// Writes `content` to dir/name with `mode` (owned by the tests' user, root)
// and returns the path: a credentials file as msg::read_credentials_file takes it.
std::string write_credentials(const temp_dir& dir, const std::string& name, const std::string& content,
                              std::filesystem::perms mode = std::filesystem::perms::owner_read
                                                            | std::filesystem::perms::owner_write);

// A fixture for a probe that logs in (Options: msg::imap_options,
// msg::pop3_options): a temp dir holding a valid credentials file for user
// "probe" with test_password, and options aimed at a fake server.
template <typename Options>
class login_probe_fixture : public ::testing::Test {
protected:
    temp_dir dir_;
    std::string credentials_ = write_credentials(std::string("probe\n") + test_password + "\n");

    // Replaces the credentials file's content and mode; returns its path.
    std::string write_credentials(const std::string& content,
                                  std::filesystem::perms mode = std::filesystem::perms::owner_read
                                                                | std::filesystem::perms::owner_write) const
    {
        return msg_test::write_credentials(dir_, "credentials", content, mode);
    }

    Options options_for(const fake_server& server, std::chrono::milliseconds limit = std::chrono::seconds(1)) const
    {
        Options options;
        options.where.port = server.port();
        options.where.time_limit = limit;
        return options;
    }

    Options login_options(const fake_server& server, std::chrono::milliseconds limit = std::chrono::seconds(1)) const
    {
        Options options = options_for(server, limit);
        options.credentials_file = credentials_;
        return options;
    }
};

// The failure a bad reply must give: 1, a printable reason holding `part`
// and nothing of test_password, within `within`.
void expect_failure(const timed_outcome& run, const std::string& part, std::chrono::milliseconds within);

// The credentials-file contract of every probe that logs in: a world-readable
// (0644), foreign-owned (nobody) or missing file is 6, found before `server`
// is ever contacted, and the reason names the file but never the password.
// `check` runs the probe against `server` with the credentials file given.
void expect_unsafe_credentials_refused(const temp_dir& dir, const fake_server& server,
                                       const std::function<msg::outcome(const std::string& file)>& check);

} // namespace msg_test
