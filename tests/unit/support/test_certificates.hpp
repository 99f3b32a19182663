#pragma once

#include <openssl/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace msg_test {

// A certificate and its private key, both PEM.
struct pem_credentials {
    std::string certificate;
    std::string private_key;
};

// Validity relative to now: negative offsets lie in the past.
struct validity {
    std::chrono::seconds not_before;
    std::chrono::seconds not_after;
};

// Valid from an hour ago for `days` days.
validity valid_for_days(long days);

// Valid from 40 days ago until yesterday: expired, but not by seconds.
validity expired_yesterday();

// A throwaway CA, made at test time, that signs server certificates.
class test_ca {
public:
    test_ca();
    ~test_ca();
    test_ca(const test_ca&) = delete;
    test_ca& operator=(const test_ca&) = delete;

    // The CA certificate, PEM: what a client passes as --ca-file.
    const std::string& certificate_pem() const { return certificate_pem_; }

    // A server certificate for `names` (DNS names or IP addresses, the
    // first also its CN), signed by this CA.
    pem_credentials issue(const std::vector<std::string>& names, validity when) const;

private:
    EVP_PKEY* key_ = nullptr;
    X509* certificate_ = nullptr;
    std::string certificate_pem_;
};

// A server certificate for `names` that is its own issuer.
pem_credentials self_signed(const std::vector<std::string>& names, validity when);

// A private directory under /tmp, removed with everything in it on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Writes `content` to path()/name and returns the full path.
    std::string write(const std::string& name, const std::string& content) const;

private:
    std::filesystem::path path_;
};

} // namespace msg_test
