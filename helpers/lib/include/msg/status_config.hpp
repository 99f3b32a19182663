#pragma once

#include "msg/imap.hpp"
#include "msg/ldap.hpp"
#include "msg/mailflow.hpp"
#include "msg/nntp.hpp"
#include "msg/pop3.hpp"
#include "msg/smtp.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace msg {

// The options of one probe msg-status can run, by protocol.
using status_probe = std::variant<smtp_options, imap_options, pop3_options, nntp_options, ldap_options,
                                  mailflow_options>;

// One line of msg-status's configuration: a check of a service.
struct status_check {
    std::string service;  // the [section]: "postfix"
    std::string name;     // the key: "smtp", "submission"
    std::string protocol; // smtp, lmtp, imap, pop3, nntp, ldap or mailflow
    status_probe probe;   // what to run, deadline included
};

// The protocols a check may name, in the order --help lists them.
const std::vector<std::string>& status_protocols();

// Parses msg-status's configuration (the grammar msg-status --help
// documents): "[service]" sections of "check = [protocol] [endpoint]
// [option[=value]]..." lines, a line starting with a blank continuing the
// one above; '#' and ';' start comment lines. `origin`
// names the text in reasons. Throws check_failure 6, "ORIGIN:LINE: what
// is wrong", at the first error, and when no check is configured.
std::vector<status_check> parse_status_config(std::string_view text, const std::string& origin);

// Reads and parses the configuration file. It names the files probes read
// secrets from and where they connect, so it must be a regular file owned
// by root and writable by no one else (group/other may read it; it holds
// no secret itself). Throws check_failure 6 otherwise, or when it is
// missing, unreadable, over 64 KiB or malformed.
std::vector<status_check> read_status_config(const std::filesystem::path& file);

} // namespace msg
