#pragma once

#include "msg/outcome.hpp"

#include <openssl/types.h>

#include <chrono>
#include <string>

namespace msg {

// How a TLS client decides to trust a server.
struct tls_verification {
    std::string ca_file;     // PEM trust anchors; empty: the system CA store
    std::string server_name; // DNS name or IP address the certificate must match; never empty
};

// What an operator needs to know about the server's certificate.
struct certificate_info {
    std::string subject;             // RFC 2253 one-liner, e.g. "CN=mx.example.com,O=Example"
    std::string not_after;           // as OpenSSL prints it, e.g. "Jan  1 00:00:00 2030 GMT"
    std::chrono::seconds remaining{}; // until notAfter; negative once expired

    // Whole days until notAfter, rounded down; negative once expired.
    long days_to_expiry() const;
};

// Turns peer verification on for `ctx`: TLS 1.2 or later, trust anchors from
// verification.ca_file or the system store. Throws check_failure (6) if the
// CA file cannot be loaded.
void configure_tls_client(SSL_CTX* ctx, const tls_verification& verification);

// Makes `ssl` send SNI (for names, not addresses) and reject a certificate
// that does not match verification.server_name. Throws check_failure (1).
void require_server_name(SSL* ssl, const tls_verification& verification);

// Why `cert` fails verification against verification.ca_file (or the system
// store) and verification.server_name, as OpenSSL names it, with the
// certificate's subject: "certificate has expired (CN=...)". Empty when it
// passes. For clients (libldap) whose own TLS layer refuses a certificate
// without saying why; `cert` alone is checked, without the chain the server
// may have sent with it.
std::string certificate_rejection(X509* cert, const tls_verification& verification);

// Subject and validity of `cert`, measured against the current time.
certificate_info describe_certificate(const X509* cert);

// Degraded (190) with a reason when `cert` expires within `warn_days` days;
// ok when warn_days is 0 or the certificate lives longer.
outcome check_certificate_expiry(const certificate_info& cert, int warn_days);

} // namespace msg
