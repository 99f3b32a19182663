#pragma once

#include "msg/deadline.hpp"
#include "msg/outcome.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace msg {

// What an LDAP check (msg-probe ldap) does. Only `uri` is required; each
// further field adds a step.
struct ldap_options {
    // ldap://HOST[:PORT], ldaps://HOST[:PORT] or ldapi://%2Fpath%2Fto%2Fsocket
    // (ldapi:/// is /var/run/slapd/ldapi); one URI, no list.
    std::string uri;
    bool starttls = false;     // StartTLS (extended operation) first; only for ldap://
    std::string ca_file;       // PEM trust anchors for ldaps:// and StartTLS; empty: libldap's default store
    int cert_warn_days = 0;    // certificate valid for fewer days: degraded (190); 0: never
    std::chrono::milliseconds time_limit{10'000};  // --deadline-ms: the whole check ends within this

    std::string suffix;        // base-scope search of this DN; empty: of the rootDSE
    std::string bind_dn;       // simple bind as this DN, the password from bind_password_file
    std::filesystem::path bind_password_file;  // read_password_file: root-owned, 0600, the password alone
    bool sasl_external = false;  // SASL EXTERNAL bind (ldapi:// peer credentials); excludes bind_dn

    std::string probe_entry;            // this entry must exist (base search)
    std::string write_probe_attribute;  // replace this attribute of probe_entry with the current time

    std::string provider_uri;  // compare the suffix's contextCSN here with this provider's
    bool provider_starttls = false;
    std::chrono::seconds max_replication_lag{0};   // lag above this fails (1); 0: never
    std::chrono::seconds warn_replication_lag{0};  // lag above this is degraded (190); 0: never

    std::filesystem::path db_dir;       // the suffix's MDB environment: check_mdb_usage; empty: no check
    int maxsize_warn_percent = 0;       // used pages above this share of the map: degraded (190); 0: no warning
    std::uint64_t maxsize_bytes = 0;    // olcDbMaxSize; 0: the map size the environment records (see mdb_usage.hpp)
};

// The first pair of `options` that contradict each other, as check_ldap
// reports it (OCF_ERR_ARGS): "--write-probe-attr needs --probe-entry", ...;
// nullopt when none do. Needs no libldap (msg-status checks its ldap rows
// with it before running msg-probe-ldap); the URIs are not checked here.
std::optional<std::string> ldap_options_conflict(const ldap_options& options);

// Runs the LDAP check, ending by `until` whatever libldap does: connect
// (through line_channel, so refusal and absence are told apart), ldaps://
// handshake or StartTLS, bind, base search of the suffix or rootDSE, probe
// entry, write probe, MDB usage, replication lag. libldap runs on a worker
// thread with its network and operation timeouts taken from the deadline;
// should it still block (name resolution), the check is abandoned at
// `until` with the stage it was in.
// 0 healthy; 1 unhealthy: no or bad reply, stall, rejected bind (49 too:
// the service refuses its configured identity), missing suffix or probe
// entry (noSuchObject), failed write probe (a full MDB map: error 80),
// bad certificate, replication lag over the limit, missing database files,
// a full MDB map;
// 7 nothing listening (refused, ldapi socket absent); 190 degraded:
// certificate expiring within cert_warn_days, lag over the warning level,
// provider unreachable (lag unknown), MDB usage over maxsize_warn_percent;
// 6 unsafe or unreadable password file or CA file; 2 contradictory options
// or a malformed URI. The password never appears in the reason.
outcome check_ldap(const ldap_options& options, const deadline& until);

// The time a CSN (contextCSN, entryCSN: "YYYYmmddHHMMSS.uuuuuuZ#..."
// in UTC) names; nullopt when it is not one, or its year is outside 1970
// to 2200.
std::optional<std::chrono::system_clock::time_point> csn_time(std::string_view csn);

} // namespace msg
