#include "msg/credentials.hpp"

#include "msg/outcome.hpp"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iomanip>
#include <sstream>

namespace msg {

namespace {

// Two short lines; anything larger is not a credentials file.
constexpr std::size_t max_file_size = 4096;

void wipe_string(std::string& text) noexcept
{
    if (!text.empty())
        OPENSSL_cleanse(text.data(), text.size());
    text.clear();
}

// Wipes a buffer on every way out of the reader, exceptions included.
class wiped_on_exit {
public:
    explicit wiped_on_exit(std::string& text) : text_(text) {}
    ~wiped_on_exit() { wipe_string(text_); }
    wiped_on_exit(const wiped_on_exit&) = delete;
    wiped_on_exit& operator=(const wiped_on_exit&) = delete;

private:
    std::string& text_;
};

class file_descriptor {
public:
    explicit file_descriptor(int fd) : fd_(fd) {}
    ~file_descriptor()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

std::string octal_mode(mode_t mode)
{
    std::ostringstream text;
    text << std::oct << std::setw(4) << std::setfill('0') << (mode & 07777);
    return text.str();
}

// "nobody (uid 65534)", or just the uid when it has no name.
std::string describe_owner(uid_t uid)
{
    std::ostringstream text;
    passwd entry{};
    passwd* found = nullptr;
    char names[1024];
    if (getpwuid_r(uid, &entry, names, sizeof names, &found) == 0 && found != nullptr)
        text << found->pw_name << " (uid " << uid << ")";
    else
        text << "uid " << uid;
    return text.str();
}

[[noreturn]] void refuse(const std::string& reason)
{
    throw check_failure(outcome::misconfigured(reason));
}

// A value taken from the file; the reason names only which one is wrong.
void require_sendable(std::string_view value, const std::string& file, const char* which)
{
    if (value.empty())
        refuse(file + " has an empty " + which);
    if (value.find('\r') != std::string_view::npos)
        refuse(file + ": the " + which + " contains CR (DOS line endings?)");
    if (value.find('\0') != std::string_view::npos)
        refuse(file + ": the " + which + " contains NUL");
}

} // namespace

credentials::credentials(std::string_view username, std::string_view password)
    : username_(username), password_(password)
{
}

credentials::~credentials()
{
    wipe();
}

credentials::credentials(credentials&& other) noexcept : username_(other.username_), password_(other.password_)
{
    // Copy, then wipe the source: std::string's move would leave a short
    // password's bytes behind in the moved-from object's inline buffer.
    other.wipe();
}

void credentials::wipe() noexcept
{
    wipe_string(password_);
    wipe_string(username_);
}

std::string credentials::redact(std::string_view text) const
{
    std::string out(text);
    if (password_.empty())
        return out;
    const std::string mask = "********";
    for (auto at = out.find(password_); at != std::string::npos; at = out.find(password_, at + mask.size()))
        out.replace(at, password_.size(), mask);
    return out;
}

namespace {

// Reads a secret file `label` names in reasons ("credentials file '...'"),
// after checking on the open descriptor that only root can read it;
// `holds` says what it should contain ("a username and password"). The
// caller wipes what it returns.
std::string read_private_file(const std::filesystem::path& path, const std::string& label, const std::string& holds)
{
    const std::string file = label + " '" + path.string() + "'";
    // O_NONBLOCK: opening a FIFO planted at the path must not hang the probe.
    const file_descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (fd.get() < 0)
        refuse("cannot open " + file + ": " + std::strerror(errno));
    // Checked on the open descriptor, not the path, so what is checked is
    // what is read even if the path is swapped in between.
    struct stat status {};
    if (::fstat(fd.get(), &status) != 0)
        refuse("cannot stat " + file + ": " + std::strerror(errno));
    const std::string mode = octal_mode(status.st_mode);
    if (!S_ISREG(status.st_mode))
        refuse(file + " is not a regular file");
    if (status.st_uid != 0)
        refuse(file + " (mode " + mode + ") is owned by " + describe_owner(status.st_uid) + ", not root");
    if ((status.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        refuse(file + " has mode " + mode + ": it must be 0600 or stricter (no group or other access)");
    const std::string too_large = file + " is larger than 4096 bytes: not " + holds;
    if (status.st_size > static_cast<off_t>(max_file_size))
        refuse(too_large);

    std::string content;
    wiped_on_exit wipe_content(content);
    content.reserve(max_file_size + 1);
    char chunk[512];
    for (;;) {
        const ssize_t got = ::read(fd.get(), chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            refuse("cannot read " + file + ": " + std::strerror(errno));
        if (got == 0)
            break;
        content.append(chunk, static_cast<std::size_t>(got));
        OPENSSL_cleanse(chunk, sizeof chunk);
        // Grown since the stat: refuse rather than read on.
        if (content.size() > max_file_size)
            refuse(too_large);
    }
    // Swapped out, not copied: the caller's string is then the only copy.
    std::string result;
    result.swap(content);
    return result;
}

} // namespace

credentials read_credentials_file(const std::filesystem::path& path)
{
    const std::string file = "credentials file '" + path.string() + "'";
    std::string content = read_private_file(path, "credentials file", "a username and password");
    const wiped_on_exit wipe_content(content);

    const std::string_view text(content);
    const auto first_end = text.find('\n');
    if (first_end == std::string_view::npos)
        refuse(file + " has no password line (line 1: username, line 2: password)");
    const std::string_view username = text.substr(0, first_end);
    std::string_view password = text.substr(first_end + 1);
    if (const auto second_end = password.find('\n'); second_end != std::string_view::npos) {
        if (second_end + 1 != password.size())
            refuse(file + " has more than two lines (line 1: username, line 2: password)");
        password = password.substr(0, second_end);
    }
    require_sendable(username, file, "username");
    require_sendable(password, file, "password");
    return credentials(username, password);
}

credentials read_password_file(const std::filesystem::path& path, std::string_view username)
{
    const std::string file = "password file '" + path.string() + "'";
    std::string content = read_private_file(path, "password file", "a password");
    const wiped_on_exit wipe_content(content);

    std::string_view password(content);
    if (!password.empty() && password.back() == '\n')
        password.remove_suffix(1);
    if (password.find('\n') != std::string_view::npos)
        refuse(file + " has more than one line (it holds only the password)");
    require_sendable(password, file, "password");
    return credentials(username, password);
}

} // namespace msg
