#include "msg/tls.hpp"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <sstream>

namespace msg {

namespace {

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;

std::string drain(BIO* bio)
{
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

// The most recent OpenSSL error, for reasons; clears the queue so a later
// failure does not report a stale entry.
std::string last_openssl_error()
{
    const unsigned long code = ERR_peek_last_error();
    ERR_clear_error();
    if (code == 0)
        return "unknown error";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

bool is_ip_address(const std::string& name)
{
    unsigned char scratch[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name.c_str(), scratch) == 1 || inet_pton(AF_INET6, name.c_str(), scratch) == 1;
}

std::string plural(long count, const char* unit)
{
    std::ostringstream text;
    text << count << ' ' << unit << (count == 1 ? "" : "s");
    return text.str();
}

// Makes `param` reject a certificate that does not name `name` (a DNS name,
// or an address matched against iPAddress entries).
bool expect_server_name(X509_VERIFY_PARAM* param, const std::string& name)
{
    if (is_ip_address(name))
        return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) == 1;
}

} // namespace

long certificate_info::days_to_expiry() const
{
    constexpr long seconds_per_day = 86'400;
    const long seconds = static_cast<long>(remaining.count());
    // Round towards minus infinity so an expired certificate is never "0 days".
    return seconds >= 0 ? seconds / seconds_per_day : -((-seconds + seconds_per_day - 1) / seconds_per_day);
}

void configure_tls_client(SSL_CTX* ctx, const tls_verification& verification)
{
    // TLS 1.0/1.1 are gone from every maintained MTA; a server that still
    // offers only those deserves a failed check, not a silent downgrade.
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (verification.ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1)
            throw check_failure(outcome::misconfigured("cannot load the system CA store: " + last_openssl_error()));
    } else if (SSL_CTX_load_verify_locations(ctx, verification.ca_file.c_str(), nullptr) != 1) {
        throw check_failure(outcome::misconfigured("cannot load CA file '" + verification.ca_file + "': "
                                                   + last_openssl_error()));
    }
}

void require_server_name(SSL* ssl, const tls_verification& verification)
{
    const std::string& name = verification.server_name;
    // RFC 6066 forbids an address as SNI; the address is still checked
    // against the certificate's iPAddress entries.
    const bool accepted = expect_server_name(SSL_get0_param(ssl), name)
                          && (is_ip_address(name) || SSL_set_tlsext_host_name(ssl, name.c_str()) == 1);
    if (!accepted)
        throw check_failure(outcome::failed("cannot verify TLS server name '" + name + "': " + last_openssl_error()));
}

std::string certificate_rejection(X509* cert, const tls_verification& verification)
{
    const std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), &X509_STORE_free);
    const std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> context(X509_STORE_CTX_new(),
                                                                                  &X509_STORE_CTX_free);
    if (!store || !context)
        return "cannot set up certificate verification: " + last_openssl_error();
    const bool anchors_loaded = verification.ca_file.empty()
                                    ? X509_STORE_set_default_paths(store.get()) == 1
                                    : X509_STORE_load_file(store.get(), verification.ca_file.c_str()) == 1;
    if (!anchors_loaded || X509_STORE_CTX_init(context.get(), store.get(), cert, nullptr) != 1)
        return "cannot set up certificate verification: " + last_openssl_error();
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(context.get());
    if (X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER) != 1
        || !expect_server_name(param, verification.server_name))
        return "cannot set up certificate verification: " + last_openssl_error();
    if (X509_verify_cert(context.get()) == 1)
        return {};
    return std::string(X509_verify_cert_error_string(X509_STORE_CTX_get_error(context.get()))) + " ("
           + describe_certificate(cert).subject + ")";
}

certificate_info describe_certificate(const X509* cert)
{
    certificate_info info;
    const bio_ptr subject(BIO_new(BIO_s_mem()), &BIO_free);
    if (subject && X509_NAME_print_ex(subject.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0)
        info.subject = drain(subject.get());
    const ASN1_TIME* not_after = X509_get0_notAfter(cert);
    const bio_ptr expiry(BIO_new(BIO_s_mem()), &BIO_free);
    if (expiry && ASN1_TIME_print(expiry.get(), not_after) == 1)
        info.not_after = drain(expiry.get());
    int days = 0;
    int seconds = 0;
    // A null "from" means now.
    if (ASN1_TIME_diff(&days, &seconds, nullptr, not_after) == 1)
        info.remaining = std::chrono::seconds(static_cast<long>(days) * 86'400 + seconds);
    return info;
}

outcome check_certificate_expiry(const certificate_info& cert, int warn_days)
{
    const std::string who = "TLS certificate " + (cert.subject.empty() ? std::string("(no subject)") : cert.subject);
    if (cert.remaining <= std::chrono::seconds::zero())
        return outcome::failed(who + " expired on " + cert.not_after);
    if (warn_days <= 0 || cert.remaining >= std::chrono::hours(24) * warn_days)
        return outcome::ok();
    const long days = cert.days_to_expiry();
    const long hours = std::chrono::duration_cast<std::chrono::hours>(cert.remaining).count();
    const std::string left = days >= 1 ? plural(days, "day") : plural(hours, "hour");
    return outcome::degraded(who + " expires in " + left + ", on " + cert.not_after + " (warning at "
                             + plural(warn_days, "day") + ")");
}

} // namespace msg
