#pragma once

#include "msg/ldap.hpp"
#include "msg/outcome.hpp"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace msg {

// The binary that runs the LDAP check, in the directory of the helpers.
// Only it loads libldap and the ~20 libraries behind it (GnuTLS, SASL,
// p11-kit, ...); msg-probe and msg-status run it instead of linking them.
inline constexpr const char* ldap_probe_name = "msg-probe-ldap";

// What libldap would load and never use, kept out of the check's memory:
// GnuTLS initialises itself (and p11-kit's trust modules) when loaded, so
// GNUTLS_NO_IMPLICIT_INIT makes libldap do it only once a TLS connection
// needs it; Cyrus SASL loads every plugin in its directory, and the check
// binds only simple or with EXTERNAL, which is built into libsasl2.
// Inline: msg-probe, which execs the binary, needs no more of this file.
inline std::vector<std::pair<std::string, std::string>> ldap_probe_environment()
{
    return {{"GNUTLS_NO_IMPLICIT_INIT", "1"}, {"SASL_PATH", "/dev/null"}};
}

// msg-probe-ldap's arguments for `options`, every option given as
// --name=value (a value may start with '-'); only options that differ from
// the defaults and that check_ldap would use (no provider settings without
// a provider). The password stays in its file: only the file's path is
// passed.
std::vector<std::string> ldap_probe_arguments(const ldap_options& options);

// Runs `probe` (msg-probe-ldap) with ldap_probe_arguments(options) as a
// child process (minimal environment, own process group), bounded by the
// check's own time limit plus a short grace for the child to report its
// own deadline. The result is the child's: its exit code as the OCF code
// and its reason line, exactly what check_ldap would have returned in
// process (contradictory options are refused with check_ldap's reason
// before any child runs). A child that cannot start, is killed or
// overruns fails with why (5 when the binary is missing).
outcome run_ldap_probe(const ldap_options& options, const std::filesystem::path& probe);

} // namespace msg
