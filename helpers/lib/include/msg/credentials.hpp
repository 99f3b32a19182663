#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace msg {

// A username and password for a probe's login. The password never goes to
// argv, the environment, logs or reasons; its bytes are wiped from memory
// when the object goes away (best effort: a moved-from object is wiped too).
class credentials {
public:
    credentials(std::string_view username, std::string_view password);
    ~credentials();
    credentials(const credentials&) = delete;
    credentials& operator=(const credentials&) = delete;
    credentials(credentials&& other) noexcept;
    credentials& operator=(credentials&& other) = delete;

    const std::string& username() const { return username_; }
    const std::string& password() const { return password_; }

    // `text` with every occurrence of the password replaced by "********":
    // for reasons quoting a server that echoes what it was sent.
    std::string redact(std::string_view text) const;

private:
    void wipe() noexcept;

    std::string username_;
    std::string password_;
};

// Reads a probe's credentials file. Format: line 1 the username, line 2 the
// password, each ended by LF (optional after the password); only the LF is
// stripped, so spaces belong to the value; nothing may follow line 2.
// The file must be a regular file owned by root with no group or other
// permission bits (0600 or 0400). Throws check_failure 6 otherwise, or when
// it is missing, unreadable, over 4 KiB, malformed, or holds CR or NUL; the
// reason names the file (and its mode once known), never its content.
credentials read_credentials_file(const std::filesystem::path& path);

// Reads a file that holds only a password (an LDAP bind password, whose DN
// is given separately) and pairs it with `username`. One trailing LF is
// stripped (ldapsearch -y would send it as part of the password); any other
// LF, a CR or a NUL is refused. The same ownership, mode and size rules and
// refusals (check_failure 6) as read_credentials_file, naming the file
// "password file '...'", never its content.
credentials read_password_file(const std::filesystem::path& path, std::string_view username);

} // namespace msg
