#pragma once

#include "test_certificates.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace msg_test {

// How a test slapd is set up beyond the defaults.
struct slapd_setup {
    bool syncprov = false;                    // load syncprov on the suffix, so it keeps a contextCSN
    std::optional<pem_credentials> tls;       // serve StartTLS and ldaps:// with this certificate
    std::uint64_t maxsize_bytes = 64 << 20;   // olcDbMaxSize
};

// A real slapd (Debian's, MDB) from a cn=config directory in a temp dir, as
// in stock-agents-measured.md 1.1: suffix dc=example,dc=com holding
// cn=monitor-probe, rootDN cn=admin,dc=example,dc=com with test_password,
// root allowed to manage cn=config through ldapi:// (SASL EXTERNAL).
// Listens on a free 127.0.0.1 port (and another for ldaps:// with TLS) and
// on an ldapi socket in the temp dir. Runs in the foreground (-d 0) as this
// process's child, with its output in log(); stopped by pid, never by name.
class test_slapd {
public:
    static constexpr const char* suffix = "dc=example,dc=com";
    static constexpr const char* root_dn = "cn=admin,dc=example,dc=com";
    static constexpr const char* probe_entry = "cn=monitor-probe,dc=example,dc=com";

    // Writes and loads the configuration and data (slapadd); start() runs it.
    explicit test_slapd(slapd_setup setup = {});
    ~test_slapd();
    test_slapd(const test_slapd&) = delete;
    test_slapd& operator=(const test_slapd&) = delete;

    // Starts slapd and waits (up to 10 s) until it answers on every listener;
    // throws std::runtime_error (with its log) if it does not.
    void start();
    // SIGTERM (and SIGCONT), then SIGKILL after 5 s; reaps it. Safe to repeat.
    void stop();
    pid_t pid() const { return pid_; }

    std::string ldap_uri() const;
    std::string ldaps_uri() const;   // empty without TLS
    std::string ldapi_uri() const;   // ldapi://%2F... of socket_path()
    std::filesystem::path socket_path() const { return dir_.path() / "run" / "ldapi"; }
    const std::filesystem::path& dir() const { return dir_.path(); }
    std::filesystem::path config_dir() const { return dir_.path() / "slapd.d"; }
    std::filesystem::path db_dir() const { return dir_.path() / "db"; }
    std::filesystem::path pid_file() const { return dir_.path() / "run" / "slapd.pid"; }
    std::filesystem::path args_file() const { return dir_.path() / "run" / "slapd.args"; }
    // A root-only file holding test_password (the rootDN's), for --bind-password-file.
    std::filesystem::path password_file() const { return dir_.path() / "rootpw"; }
    std::string log() const;

    // Runs an LDAP tool (ldapmodify, ldapadd, ldapsearch, ...) with `args`
    // plus -H ldapi_uri(); `ldif`, when not empty, is passed with -f.
    // Returns its exit status; stdout and stderr go to `output`.
    int run_tool(const std::string& tool, std::vector<std::string> args, const std::string& ldif,
                 std::string* output = nullptr) const;
    // ldapmodify -Y EXTERNAL as root over ldapi: changes cn=config at runtime.
    int modify_config(const std::string& ldif, std::string* output = nullptr) const;
    // ldapadd/ldapmodify as the rootDN (-x -D root_dn -y password_file()), -c to continue on errors.
    int write_as_root(const std::string& ldif, std::string* output = nullptr) const;

private:
    bool answering() const;

    temp_dir dir_;
    slapd_setup setup_;
    std::uint16_t port_ = 0;
    std::uint16_t tls_port_ = 0;
    pid_t pid_ = 0;
};

// "ldapi://%2Ftmp%2F..." for a socket path.
std::string ldapi_uri_for(const std::filesystem::path& socket);

} // namespace msg_test
