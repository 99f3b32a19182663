#include "msg/smtp_session.hpp"

#include "msg/dialogue.hpp"
#include "msg/log.hpp"
#include "msg/reply_text.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cctype>
#include <sstream>

namespace msg {

namespace {

// RFC 5321 caps reply lines at 512 bytes; real servers overshoot with long
// greetings, so allow more, but never a server that streams without newlines.
constexpr std::size_t max_reply_line = 2048;
// EHLO replies are the longest; a few dozen lines is already generous.
constexpr std::size_t max_reply_lines = 128;

std::string this_host_name()
{
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0')
        return "localhost";
    return name;
}

// A string that held a secret, wiped before its memory is freed (best
// effort, as credentials.hpp promises for the password itself).
class wiped_string {
public:
    wiped_string() = default;
    ~wiped_string() { OPENSSL_cleanse(text_.data(), text_.size()); }
    wiped_string(const wiped_string&) = delete;
    wiped_string& operator=(const wiped_string&) = delete;
    std::string& text() { return text_; }

private:
    std::string text_;
};

// Appends the base64 of `bytes` to `out`, in place, so no unwiped copy is made.
void append_base64(wiped_string& out, std::string_view bytes)
{
    const std::size_t start = out.text().size();
    out.text().resize(start + 4 * ((bytes.size() + 2) / 3) + 1);
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.text().data() + start),
                                        reinterpret_cast<const unsigned char*>(bytes.data()),
                                        static_cast<int>(bytes.size()));
    out.text().resize(start + static_cast<std::size_t>(written));
}

// Appends the AUTH PLAIN initial response (RFC 4616: empty authorization
// identity, NUL, user, NUL, password) in base64 to `out`.
void append_plain_response(wiped_string& out, const credentials& login)
{
    wiped_string message;
    message.text().reserve(login.username().size() + login.password().size() + 2);
    message.text().push_back('\0');
    message.text() += login.username();
    message.text().push_back('\0');
    message.text() += login.password();
    append_base64(out, message.text());
}

// Replaces every occurrence of `secret` in `text` by asterisks.
void mask_all(std::string& text, std::string_view secret)
{
    const std::string_view mask = "********";
    if (secret.empty())
        return;
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + mask.size()))
        text.replace(at, secret.size(), mask);
}

} // namespace

smtp_session::smtp_session(line_channel& channel, bool lmtp, const credentials* login)
    : channel_(channel), lmtp_(lmtp), login_(login), protocol_(lmtp ? "LMTP" : "SMTP")
{
}

smtp_reply smtp_session::read_reply(const std::string& what)
{
    smtp_reply reply;
    for (;;) {
        const std::string line = channel_.read_line(max_reply_line, reply.lines.empty() ? what : "complete " + what);
        const bool well_formed = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0]))
                                 && std::isdigit(static_cast<unsigned char>(line[1]))
                                 && std::isdigit(static_cast<unsigned char>(line[2]))
                                 && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
        if (!well_formed)
            throw check_failure(outcome::failed("malformed " + what + ": " + excerpt(line)));
        reply.code = std::stoi(line.substr(0, 3));
        reply.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
        if (line.size() == 3 || line[3] == ' ')
            return reply;
        if (reply.lines.size() >= max_reply_lines) {
            std::ostringstream reason;
            reason << what << " longer than " << max_reply_lines << " lines";
            throw check_failure(outcome::failed(reason.str()));
        }
    }
}

smtp_reply smtp_session::command(const std::string& line, const std::string& verb)
{
    channel_.write_line(line, verb);
    smtp_reply reply = read_reply("reply to " + verb);
    std::ostringstream note;
    note << protocol_ << ' ' << channel_.peer() << ": " << verb << " -> " << reply.code;
    log_debug(note.str());
    return reply;
}

void smtp_session::expect(const smtp_reply& reply, int first, int last, const std::string& step) const
{
    if (reply.code >= first && reply.code <= last)
        return;
    const std::string text = excerpt(reply.text());
    if (reply.code >= 400)
        throw check_failure(outcome::failed(step + " rejected: " + text));
    throw check_failure(outcome::failed("unexpected reply to " + step + ": " + text));
}

std::vector<smtp_extension> smtp_session::open(const probe_options& where, const std::string& helo_name)
{
    const std::string hello = lmtp_ ? "LHLO" : "EHLO";
    const std::string hello_line = hello + " " + (helo_name.empty() ? this_host_name() : helo_name);

    expect(read_reply(protocol_ + " banner"), 220, 220, protocol_ + " session");
    smtp_reply greeting = command(hello_line, hello);
    expect(greeting, 250, 250, hello);

    if (where.tls == tls_mode::starttls) {
        if (!offers_extension(parse_extensions(greeting), "STARTTLS"))
            throw check_failure(outcome::failed("STARTTLS not offered by " + channel_.peer()));
        expect(command("STARTTLS", "STARTTLS"), 220, 220, "STARTTLS");
        channel_.start_tls(verification_for(where));
        // RFC 3207: everything learnt before TLS is void, extensions included.
        greeting = command(hello_line, hello);
        expect(greeting, 250, 250, hello);
    }
    return parse_extensions(greeting);
}

void smtp_session::authenticate(const std::vector<smtp_extension>& offered)
{
    if (login_ == nullptr)
        throw check_failure(outcome::failed("SMTP AUTH without credentials"));
    const credentials& login = *login_;
    const std::string who = printable_excerpt(login.username(), 64);
    if (offers_extension(offered, "AUTH PLAIN")) {
        wiped_string line;
        line.text() = "AUTH PLAIN ";
        append_plain_response(line, login);
        expect(command(line.text(), "AUTH PLAIN"), 235, 235, "AUTH PLAIN as " + who);
        return;
    }
    if (offers_extension(offered, "AUTH LOGIN")) {
        expect(command("AUTH LOGIN", "AUTH LOGIN"), 334, 334, "AUTH LOGIN as " + who);
        wiped_string user;
        append_base64(user, login.username());
        expect(command(user.text(), "AUTH LOGIN username"), 334, 334, "AUTH LOGIN as " + who);
        wiped_string secret;
        append_base64(secret, login.password());
        expect(command(secret.text(), "AUTH LOGIN password"), 235, 235, "AUTH LOGIN as " + who);
        return;
    }
    // Postfix (smtpd_tls_auth_only) and others offer AUTH only under TLS.
    const bool secured = channel_.peer_certificate().has_value();
    const std::string hint = secured ? std::string() : std::string(" over plaintext (use STARTTLS or TLS)");
    throw check_failure(outcome::failed("AUTH PLAIN or LOGIN not offered by " + channel_.peer() + hint));
}

std::string smtp_session::excerpt(std::string_view text, std::size_t max_chars) const
{
    if (login_ == nullptr)
        return printable_excerpt(text, max_chars);
    // A server may quote the AUTH line it rejects ("535 ... AUTH PLAIN
    // AGZ..."), and base64 is the password in all but name: the encodings
    // authenticate() sends are masked like the password itself.
    std::string masked(text);
    wiped_string plain;
    append_plain_response(plain, *login_);
    mask_all(masked, plain.text());
    wiped_string password;
    append_base64(password, login_->password());
    mask_all(masked, password.text());
    return printable_excerpt(login_->redact(masked), max_chars);
}

std::string smtp_path(const std::string& address)
{
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>')
        return address;
    return "<" + address + ">";
}

} // namespace msg
