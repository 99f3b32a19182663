// msg::read_credentials_file: only a root-owned file without group or other
// access is trusted, and no refusal ever quotes the secret.
#include "msg/credentials.hpp"
#include "msg/outcome.hpp"

#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

namespace {

namespace fs = std::filesystem;
using msg::ocf_code;
using msg_test::contains;

constexpr const char* secret = "s3cret pass phrase ";

msg::outcome refusal_of(const std::string& path)
{
    try {
        msg::read_credentials_file(path);
    } catch (const msg::check_failure& failure) {
        return failure.result();
    }
    return msg::outcome::ok();
}

class CredentialsFile : public ::testing::Test {
protected:
    msg_test::temp_dir dir_;

    // A file holding `content` with `mode`, owned by root (the tests run as root).
    std::string write(const std::string& content, fs::perms mode = fs::perms::owner_read | fs::perms::owner_write)
    {
        const std::string path = dir_.write("credentials", content);
        fs::permissions(path, mode);
        return path;
    }

    // The refusal for `path`: 6, naming the file, never quoting the password.
    msg::outcome expect_refused(const std::string& path)
    {
        const msg::outcome result = refusal_of(path);
        EXPECT_EQ(result.code(), ocf_code::err_configured) << result.reason();
        EXPECT_TRUE(contains(result.reason(), "'" + path + "'"));
        EXPECT_FALSE(contains(result.reason(), "s3cret"));
        EXPECT_TRUE(msg_test::printable_ascii(result.reason()));
        return result;
    }
};

TEST_F(CredentialsFile, ReadsUsernameAndPasswordKeepingSpaces)
{
    const auto login = msg::read_credentials_file(write(std::string("probe@example.com\n") + secret + "\n"));
    EXPECT_EQ(login.username(), "probe@example.com");
    EXPECT_EQ(login.password(), secret);
}

TEST_F(CredentialsFile, FinalNewlineIsOptional)
{
    const auto login = msg::read_credentials_file(write("probe\npässwörd"));
    EXPECT_EQ(login.username(), "probe");
    EXPECT_EQ(login.password(), "pässwörd");
}

TEST_F(CredentialsFile, ReadOnlyForOwnerIsAccepted)
{
    const auto login = msg::read_credentials_file(write("probe\npw\n", fs::perms::owner_read));
    EXPECT_EQ(login.password(), "pw");
}

TEST_F(CredentialsFile, WorldReadableIsMisconfigured)
{
    using fs::perms;
    const auto path = write(std::string("probe\n") + secret + "\n",
                            perms::owner_read | perms::owner_write | perms::group_read | perms::others_read);
    const auto result = expect_refused(path);
    EXPECT_EQ(result.reason(), "credentials file '" + path
                                   + "' has mode 0644: it must be 0600 or stricter (no group or other access)");
}

TEST_F(CredentialsFile, AnyGroupOrOtherBitIsMisconfigured)
{
    using fs::perms;
    for (const perms extra : {perms::group_read, perms::group_write, perms::group_exec, perms::others_read,
                              perms::others_write, perms::others_exec}) {
        const auto path = write(std::string("probe\n") + secret, perms::owner_read | perms::owner_write | extra);
        const auto result = expect_refused(path);
        EXPECT_TRUE(contains(result.reason(), "must be 0600 or stricter"));
    }
}

TEST_F(CredentialsFile, NotOwnedByRootIsMisconfigured)
{
    ASSERT_EQ(::geteuid(), 0u) << "the unit tests run as root, as the agents' helpers do";
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    const auto path = write(std::string("probe\n") + secret + "\n");
    ASSERT_EQ(::chown(path.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
    const auto result = expect_refused(path);
    EXPECT_EQ(result.reason(), "credentials file '" + path + "' (mode 0600) is owned by nobody (uid "
                                   + std::to_string(nobody->pw_uid) + "), not root");
}

TEST_F(CredentialsFile, MissingFileIsMisconfigured)
{
    const std::string path = (dir_.path() / "absent").string();
    const auto result = expect_refused(path);
    EXPECT_EQ(result.reason(), "cannot open credentials file '" + path + "': No such file or directory");
}

TEST_F(CredentialsFile, DirectoryIsMisconfigured)
{
    const std::string path = (dir_.path() / "subdir").string();
    fs::create_directory(path);
    fs::permissions(path, fs::perms::owner_all);
    EXPECT_TRUE(contains(expect_refused(path).reason(), "is not a regular file"));
}

TEST_F(CredentialsFile, FifoIsRefusedWithoutHanging)
{
    const std::string path = (dir_.path() / "fifo").string();
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    EXPECT_TRUE(contains(expect_refused(path).reason(), "is not a regular file"));
}

TEST_F(CredentialsFile, SymlinkIsJudgedByItsTarget)
{
    const auto target = write("probe\npw\n");
    const std::string link = (dir_.path() / "link").string();
    fs::create_symlink(target, link);
    EXPECT_EQ(msg::read_credentials_file(link).password(), "pw");
    fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
    EXPECT_TRUE(contains(expect_refused(link).reason(), "has mode 0604"));
}

TEST_F(CredentialsFile, MalformedContentIsMisconfiguredWithoutQuotingIt)
{
    struct malformed {
        std::string content;
        std::string reason;
    };
    const std::string pw = secret;
    for (const auto& [content, reason] : {
             malformed{"", "has no password line"},
             malformed{"probe-only-" + pw, "has no password line"},
             malformed{"probe\n", "has an empty password"},
             malformed{"probe\n\n", "has an empty password"},
             malformed{"\n" + pw + "\n", "has an empty username"},
             malformed{"probe\n" + pw + "\nthird\n", "has more than two lines"},
             malformed{"probe\n" + pw + "\n\n", "has more than two lines"},
             malformed{"probe\r\n" + pw + "\r\n", "the username contains CR (DOS line endings?)"},
             malformed{"probe\n" + pw + "\r\n", "the password contains CR (DOS line endings?)"},
             malformed{"probe\n" + pw + std::string(1, '\0') + "x\n", "the password contains NUL"},
             malformed{"probe\n" + std::string(5000, 'p') + "\n", "is larger than 4096 bytes"},
         }) {
        const auto result = expect_refused(write(content));
        EXPECT_TRUE(contains(result.reason(), reason)) << "for content of " << content.size() << " bytes";
    }
}

// msg::read_password_file: the same trust rules for a file holding only a
// password (an LDAP bind password; the DN comes from elsewhere).
TEST_F(CredentialsFile, PasswordFileHoldsThePasswordAloneWithOptionalNewline)
{
    const auto bind = msg::read_password_file(write(std::string(secret) + "\n"), "cn=probe,dc=example,dc=com");
    EXPECT_EQ(bind.username(), "cn=probe,dc=example,dc=com");
    EXPECT_EQ(bind.password(), secret);
    EXPECT_EQ(msg::read_password_file(write(secret), "cn=probe").password(), secret);
}

TEST_F(CredentialsFile, PasswordFileIsJudgedLikeACredentialsFile)
{
    using fs::perms;
    const auto path = write(secret, perms::owner_read | perms::owner_write | perms::group_read);
    msg::outcome result;
    try {
        msg::read_password_file(path, "cn=probe");
    } catch (const msg::check_failure& failure) {
        result = failure.result();
    }
    EXPECT_EQ(result.code(), ocf_code::err_configured);
    EXPECT_EQ(result.reason(),
              "password file '" + path + "' has mode 0640: it must be 0600 or stricter (no group or other access)");
    for (const auto& [content, reason] : {
             std::pair{std::string(secret) + "\nsecond line\n", "has more than one line"},
             std::pair{std::string(secret) + "\r\n", "the password contains CR"},
             std::pair{std::string("\n"), "has an empty password"},
         }) {
        try {
            msg::read_password_file(write(content), "cn=probe");
            ADD_FAILURE() << "accepted " << content.size() << " bytes";
        } catch (const msg::check_failure& failure) {
            EXPECT_EQ(failure.result().code(), ocf_code::err_configured);
            EXPECT_TRUE(contains(failure.result().reason(), reason));
            EXPECT_FALSE(contains(failure.result().reason(), "s3cret"));
        }
    }
}

TEST(Credentials, RedactMasksEveryOccurrenceOfThePassword)
{
    const msg::credentials login("probe", "hunter2");
    EXPECT_EQ(login.redact("NO [AUTHENTICATIONFAILED] hunter2 is wrong, hunter2!"),
              "NO [AUTHENTICATIONFAILED] ******** is wrong, ********!");
    EXPECT_EQ(login.redact("nothing secret"), "nothing secret");
}

TEST(Credentials, MovedFromObjectHoldsNoSecret)
{
    msg::credentials source("probe", "hunter2");
    const msg::credentials target(std::move(source));
    EXPECT_EQ(target.password(), "hunter2");
    EXPECT_EQ(source.password(), ""); // NOLINT(bugprone-use-after-move): that is the point
    EXPECT_EQ(source.redact("hunter2"), "hunter2");
}

} // namespace
