#include "msg/status_config.hpp"

#include "msg/outcome.hpp"
#include "msg/reply_text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

namespace msg {

namespace {

constexpr std::size_t max_config_bytes = 64 * 1024;
constexpr long max_ms = 24L * 60 * 60 * 1000;

// A mistake in one line; the parser adds where it is.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// One word of a check line: "starttls", "ca-file=/etc/ssl/ca.pem",
// "bind-dn=\"cn=probe user,dc=example\"" (quotes removed).
struct word {
    std::string key;
    std::optional<std::string> value;
    std::string text; // as written, for reasons
};

std::string trimmed(std::string_view text)
{
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos)
        return {};
    const auto last = text.find_last_not_of(" \t");
    return std::string(text.substr(first, last - first + 1));
}

// Splits at blanks outside double quotes; inside them \" and \\ stand for " and \.
std::vector<word> split_words_quoted(std::string_view text)
{
    std::vector<word> words;
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == ' ' || text[i] == '\t') {
            ++i;
            continue;
        }
        std::string raw;
        std::string unquoted;
        bool quoted = false;
        while (i < text.size() && (quoted || (text[i] != ' ' && text[i] != '\t'))) {
            const char c = text[i++];
            raw.push_back(c);
            if (c == '"') {
                quoted = !quoted;
                continue;
            }
            if (quoted && c == '\\' && i < text.size() && (text[i] == '"' || text[i] == '\\')) {
                raw.push_back(text[i]);
                unquoted.push_back(text[i++]);
                continue;
            }
            unquoted.push_back(c);
        }
        if (quoted)
            throw config_error("unterminated quote in " + printable_excerpt(raw, 60));
        word next;
        next.text = raw;
        const auto equals = raw.find('=');
        const auto unquoted_equals = unquoted.find('=');
        if (equals != std::string::npos && raw.find('"') > equals) {
            next.key = unquoted.substr(0, unquoted_equals);
            next.value = unquoted.substr(unquoted_equals + 1);
        } else {
            next.key = unquoted;
        }
        words.push_back(std::move(next));
    }
    return words;
}

long parse_number(const word& option, long min, long max)
{
    const std::string& text = *option.value;
    long value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < min || value > max) {
        std::ostringstream reason;
        reason << option.key << " must be a whole number from " << min << " to " << max << ", not '"
               << printable_excerpt(text, 40) << "'";
        throw config_error(reason.str());
    }
    return value;
}

// What one option word does to the options being built.
struct option_rule {
    bool takes_value;
    std::function<void(const word&)> apply;
};
using option_rules = std::map<std::string, option_rule>;

option_rule flag(std::function<void()> set)
{
    return {false, [set = std::move(set)](const word&) { set(); }};
}

option_rule text(std::string& target)
{
    return {true, [&target](const word& option) { target = *option.value; }};
}

option_rule path(std::filesystem::path& target)
{
    return {true, [&target](const word& option) { target = *option.value; }};
}

option_rule list(std::vector<std::string>& target)
{
    return {true, [&target](const word& option) { target.push_back(*option.value); }};
}

template <typename Number>
option_rule number(Number& target, long min, long max)
{
    return {true, [&target, min, max](const word& option) {
                target = static_cast<Number>(parse_number(option, min, max));
            }};
}

option_rule milliseconds_rule(std::chrono::milliseconds& target, long min)
{
    return {true, [&target, min](const word& option) {
                target = std::chrono::milliseconds(parse_number(option, min, max_ms));
            }};
}

option_rule seconds_rule(std::chrono::seconds& target)
{
    return {true, [&target](const word& option) {
                target = std::chrono::seconds(parse_number(option, 0, max_ms / 1000));
            }};
}

// host, host:port, [v6]:port, or an absolute path (a unix socket).
void apply_endpoint(probe_options& where, const std::string& endpoint)
{
    if (endpoint.front() == '/') {
        where.socket_path = endpoint;
        return;
    }
    std::string host = endpoint;
    std::string port;
    if (endpoint.front() == '[') {
        const auto close = endpoint.find(']');
        if (close == std::string::npos || (close + 1 < endpoint.size() && endpoint[close + 1] != ':'))
            throw config_error("malformed address '" + printable_excerpt(endpoint, 60) + "'");
        host = endpoint.substr(1, close - 1);
        if (close + 1 < endpoint.size())
            port = endpoint.substr(close + 2);
    } else if (std::count(endpoint.begin(), endpoint.end(), ':') == 1) {
        host = endpoint.substr(0, endpoint.find(':'));
        port = endpoint.substr(endpoint.find(':') + 1);
    }
    if (host.empty())
        throw config_error("no host in '" + printable_excerpt(endpoint, 60) + "'");
    where.host = host;
    if (!port.empty() || endpoint.back() == ':')
        where.port = static_cast<std::uint16_t>(parse_number({"port", port, port}, 1, 65535));
}

// The shared connection vocabulary, under `prefix` ("" or "smtp-").
void add_connection_rules(option_rules& rules, probe_options& where, const std::string& prefix = "")
{
    rules[prefix + "starttls"] = flag([&where] { where.tls = tls_mode::starttls; });
    rules[prefix + "tls"] = flag([&where] { where.tls = tls_mode::implicit; });
    rules[prefix + "server-name"] = text(where.server_name);
    if (!prefix.empty()) {
        rules[prefix + "host"] = text(where.host);
        rules[prefix + "port"] = number(where.port, 1, 65535);
        return;
    }
    rules["ca-file"] = text(where.ca_file);
    rules["cert-warn-days"] = number(where.cert_warn_days, 0, 36500);
    rules["deadline-ms"] = milliseconds_rule(where.time_limit, 1);
}

// The options of `protocol` and what each does to `probe`; the endpoint
// (the first word when it is none of them) is applied by `endpoint`.
struct protocol_grammar {
    option_rules rules;
    std::function<void(const std::string&)> endpoint; // empty: the protocol takes none
};

protocol_grammar grammar_for(const std::string& protocol, status_probe& probe)
{
    protocol_grammar grammar;
    option_rules& rules = grammar.rules;
    if (protocol == "smtp" || protocol == "lmtp") {
        auto& o = probe.emplace<smtp_options>();
        o.lmtp = protocol == "lmtp";
        add_connection_rules(rules, o.where);
        rules[o.lmtp ? "lhlo" : "ehlo"] = text(o.helo_name);
        rules["require-ext"] = list(o.required_extensions);
        rules["transaction"] = flag([&o] { o.transaction = true; });
        rules["mail-from"] = text(o.mail_from);
        rules["rcpt-to"] = text(o.rcpt_to);
        grammar.endpoint = [&o](const std::string& endpoint) { apply_endpoint(o.where, endpoint); };
    } else if (protocol == "imap") {
        auto& o = probe.emplace<imap_options>();
        add_connection_rules(rules, o.where);
        rules["credentials-file"] = path(o.credentials_file);
        rules["mailbox"] = text(o.mailbox);
        rules["round-trip"] = flag([&o] { o.round_trip = true; });
        grammar.endpoint = [&o](const std::string& endpoint) { apply_endpoint(o.where, endpoint); };
    } else if (protocol == "pop3") {
        auto& o = probe.emplace<pop3_options>();
        add_connection_rules(rules, o.where);
        rules["credentials-file"] = path(o.credentials_file);
        grammar.endpoint = [&o](const std::string& endpoint) { apply_endpoint(o.where, endpoint); };
    } else if (protocol == "nntp") {
        auto& o = probe.emplace<nntp_options>();
        add_connection_rules(rules, o.where);
        rules["credentials-file"] = path(o.credentials_file);
        rules["group"] = text(o.group);
        rules["round-trip"] = flag([&o] { o.round_trip = true; });
        grammar.endpoint = [&o](const std::string& endpoint) { apply_endpoint(o.where, endpoint); };
    } else if (protocol == "ldap") {
        auto& o = probe.emplace<ldap_options>();
        o.uri = "ldapi:///";
        rules["starttls"] = flag([&o] { o.starttls = true; });
        rules["ca-file"] = text(o.ca_file);
        rules["cert-warn-days"] = number(o.cert_warn_days, 0, 36500);
        rules["deadline-ms"] = milliseconds_rule(o.time_limit, 1);
        rules["suffix"] = text(o.suffix);
        rules["bind-dn"] = text(o.bind_dn);
        rules["bind-password-file"] = path(o.bind_password_file);
        rules["sasl-external"] = flag([&o] { o.sasl_external = true; });
        rules["probe-entry"] = text(o.probe_entry);
        rules["write-probe-attr"] = text(o.write_probe_attribute);
        rules["provider-uri"] = text(o.provider_uri);
        rules["provider-starttls"] = flag([&o] { o.provider_starttls = true; });
        rules["max-replication-lag-s"] = seconds_rule(o.max_replication_lag);
        rules["warn-replication-lag-s"] = seconds_rule(o.warn_replication_lag);
        rules["db-dir"] = path(o.db_dir);
        rules["maxsize-warn-percent"] = number(o.maxsize_warn_percent, 1, 100);
        rules["maxsize-bytes"] = number(o.maxsize_bytes, 0, std::numeric_limits<long>::max());
        grammar.endpoint = [&o](const std::string& uri) { o.uri = uri; };
    } else {
        auto& o = probe.emplace<mailflow_options>();
        add_connection_rules(rules, o.submission, "smtp-");
        add_connection_rules(rules, o.mailbox_server, "imap-");
        rules["smtp-credentials-file"] = path(o.submission_credentials_file);
        rules["ehlo"] = text(o.helo_name);
        rules["mail-from"] = text(o.mail_from);
        rules["rcpt-to"] = rules["probe-address"] = text(o.probe_address);
        rules["credentials-file"] = rules["imap-credentials-file"] = path(o.mailbox_credentials_file);
        rules["mailbox"] = text(o.mailbox);
        rules["ca-file"] = {true, [&o](const word& option) {
                                o.submission.ca_file = o.mailbox_server.ca_file = *option.value;
                            }};
        rules["max-delay-ms"] = milliseconds_rule(o.max_delay, 1);
        rules["warn-delay-ms"] = milliseconds_rule(o.warn_delay, 0);
        rules["poll-interval-ms"] = milliseconds_rule(o.poll_interval, 1);
        rules["deadline-ms"] = milliseconds_rule(o.time_limit, 1);
    }
    return grammar;
}

bool is_protocol(const std::string& name)
{
    const auto& known = status_protocols();
    return std::find(known.begin(), known.end(), name) != known.end();
}

bool is_name(std::string_view text)
{
    return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
        return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.';
    });
}

std::string protocol_list()
{
    std::string list;
    for (const auto& name : status_protocols())
        list += (list.empty() ? "" : ", ") + name;
    return list;
}

// "check = [protocol] [endpoint] [option[=value]]..." in section `service`.
status_check parse_check(const std::string& service, const std::string& key, const std::string& value)
{
    status_check check;
    check.service = service;
    check.name = key;
    std::vector<word> words = split_words_quoted(value);
    if (!words.empty() && !words.front().value && is_protocol(words.front().key)) {
        check.protocol = words.front().key;
        words.erase(words.begin());
    } else if (is_protocol(key)) {
        check.protocol = key;
    } else {
        throw config_error("'" + key + "' is no protocol: begin its value with one of " + protocol_list());
    }

    protocol_grammar grammar = grammar_for(check.protocol, check.probe);
    if (!words.empty() && !words.front().value && grammar.rules.count(words.front().key) == 0) {
        if (!grammar.endpoint)
            throw config_error(check.protocol + " takes no address, only options: '"
                               + printable_excerpt(words.front().text, 60) + "'");
        grammar.endpoint(words.front().key);
        words.erase(words.begin());
    }
    for (const word& option : words) {
        const auto rule = grammar.rules.find(option.key);
        if (rule == grammar.rules.end())
            throw config_error("unknown " + check.protocol + " option '" + printable_excerpt(option.text, 60) + "'");
        if (rule->second.takes_value != option.value.has_value())
            throw config_error(option.key + (rule->second.takes_value ? " needs a value: " + option.key + "=..."
                                                                      : " takes no value"));
        rule->second.apply(option);
    }
    if (const auto* flow = std::get_if<mailflow_options>(&check.probe)) {
        if (flow->probe_address.empty() || flow->mailbox_credentials_file.empty())
            throw config_error("mailflow needs probe-address=... and imap-credentials-file=...");
    }
    return check;
}

} // namespace

const std::vector<std::string>& status_protocols()
{
    static const std::vector<std::string> known{"smtp", "lmtp", "imap", "pop3", "nntp", "ldap", "mailflow"};
    return known;
}

std::vector<status_check> parse_status_config(std::string_view text, const std::string& origin)
{
    // Logical lines first: a line that starts with a blank continues the
    // check above it (mailflow's options rarely fit on one line).
    struct logical_line {
        std::size_t number;
        std::string text;
    };
    std::vector<logical_line> logical;
    std::size_t number = 0;
    std::istringstream lines{std::string(text)};
    for (std::string raw; std::getline(lines, raw);) {
        ++number;
        const std::string line = trimmed(raw);
        if (line.empty() || line.front() == '#' || line.front() == ';')
            continue;
        const bool continues = (raw.front() == ' ' || raw.front() == '\t') && !logical.empty()
                               && logical.back().text.front() != '[';
        if (continues)
            logical.back().text += " " + line;
        else
            logical.push_back({number, line});
    }

    std::vector<status_check> checks;
    std::set<std::pair<std::string, std::string>> seen;
    std::string service;
    for (const auto& [at, line] : logical) {
        try {
            if (line.front() == '[') {
                if (line.back() != ']' || !is_name(trimmed(line.substr(1, line.size() - 2))))
                    throw config_error("malformed section header: " + printable_excerpt(line, 60));
                service = trimmed(line.substr(1, line.size() - 2));
                continue;
            }
            const auto equals = line.find('=');
            if (equals == std::string::npos)
                throw config_error("expected 'check = [protocol] [address] [option=value]...': "
                                   + printable_excerpt(line, 60));
            const std::string key = trimmed(line.substr(0, equals));
            if (!is_name(key))
                throw config_error("malformed check name '" + printable_excerpt(key, 60) + "'");
            if (service.empty())
                throw config_error("check '" + key + "' outside a [service] section");
            if (!seen.insert({service, key}).second)
                throw config_error("check '" + key + "' twice in [" + service + "]");
            checks.push_back(parse_check(service, key, line.substr(equals + 1)));
        } catch (const config_error& error) {
            throw check_failure(outcome::misconfigured(origin + ":" + std::to_string(at) + ": " + error.what()));
        }
    }
    if (checks.empty())
        throw check_failure(outcome::misconfigured(origin + ": no checks configured"));
    return checks;
}

std::vector<status_check> read_status_config(const std::filesystem::path& file)
{
    const std::string name = "configuration file '" + file.string() + "'";
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        throw check_failure(outcome::misconfigured("cannot open " + name + ": " + std::strerror(errno)));
    std::string text;
    try {
        struct stat info {};
        if (::fstat(fd, &info) != 0)
            throw check_failure(outcome::misconfigured("cannot stat " + name + ": " + std::strerror(errno)));
        if (!S_ISREG(info.st_mode))
            throw check_failure(outcome::misconfigured(name + " is not a regular file"));
        // It decides which files root reads secrets from and where they are
        // sent: anyone who may write it may take them.
        if (info.st_uid != 0)
            throw check_failure(outcome::misconfigured(name + " is not owned by root"));
        if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
            std::ostringstream reason;
            reason << name << " is writable by group or others (mode " << std::oct << std::setw(4)
                   << std::setfill('0') << (info.st_mode & 07777) << "): it must not be";
            throw check_failure(outcome::misconfigured(reason.str()));
        }
        if (static_cast<std::size_t>(info.st_size) > max_config_bytes)
            throw check_failure(outcome::misconfigured(name + " is over 64 KiB"));
        char chunk[4096];
        for (;;) {
            const ssize_t got = ::read(fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                throw check_failure(outcome::misconfigured("cannot read " + name + ": " + std::strerror(errno)));
            if (got == 0)
                break;
            text.append(chunk, static_cast<std::size_t>(got));
            if (text.size() > max_config_bytes)
                throw check_failure(outcome::misconfigured(name + " is over 64 KiB"));
        }
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    return parse_status_config(text, file.string());
}

} // namespace msg
