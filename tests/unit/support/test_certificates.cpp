#include "test_certificates.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <stdlib.h>

#include <fstream>
#include <stdexcept>

namespace msg_test {

namespace {

void require(bool ok, const char* what)
{
    if (!ok)
        throw std::runtime_error(std::string("test certificate: ") + what + " failed");
}

EVP_PKEY* new_key()
{
    // P-256 keeps generation in the millisecond range, so every test can
    // make its own certificates.
    EVP_PKEY* key = EVP_EC_gen("P-256");
    require(key != nullptr, "EVP_EC_gen");
    return key;
}

bool is_ip_address(const std::string& name)
{
    unsigned char scratch[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name.c_str(), scratch) == 1 || inet_pton(AF_INET6, name.c_str(), scratch) == 1;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value)
{
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
    require(extension != nullptr, "X509V3_EXT_conf_nid");
    require(X509_add_ext(cert, extension, -1) == 1, "X509_add_ext");
    X509_EXTENSION_free(extension);
}

// A certificate for `subject_cn` and `key`, not yet signed; issuer
// defaults to itself.
X509* new_certificate(const std::string& subject_cn, EVP_PKEY* key, validity when)
{
    X509* cert = X509_new();
    require(cert != nullptr, "X509_new");
    require(X509_set_version(cert, X509_VERSION_3) == 1, "X509_set_version");
    unsigned char serial[16];
    require(RAND_bytes(serial, sizeof serial) == 1, "RAND_bytes");
    serial[0] &= 0x7f; // a positive serial
    BIGNUM* number = BN_bin2bn(serial, sizeof serial, nullptr);
    require(number != nullptr && BN_to_ASN1_INTEGER(number, X509_get_serialNumber(cert)) != nullptr, "serial");
    BN_free(number);
    require(X509_gmtime_adj(X509_getm_notBefore(cert), static_cast<long>(when.not_before.count())) != nullptr,
            "notBefore");
    require(X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(when.not_after.count())) != nullptr,
            "notAfter");
    X509_NAME* name = X509_get_subject_name(cert);
    require(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(subject_cn.c_str()), -1, -1, 0)
                == 1,
            "subject");
    require(X509_set_issuer_name(cert, name) == 1, "issuer");
    require(X509_set_pubkey(cert, key) == 1, "X509_set_pubkey");
    return cert;
}

void add_server_extensions(X509* cert, X509* issuer, const std::vector<std::string>& names)
{
    std::string alt_names;
    for (const auto& name : names)
        alt_names += (alt_names.empty() ? "" : ",") + std::string(is_ip_address(name) ? "IP:" : "DNS:") + name;
    add_extension(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert, issuer, NID_key_usage, "critical,digitalSignature");
    add_extension(cert, issuer, NID_ext_key_usage, "serverAuth");
    add_extension(cert, issuer, NID_subject_alt_name, alt_names);
}

std::string pem_of(X509* cert)
{
    BIO* bio = BIO_new(BIO_s_mem());
    require(bio != nullptr && PEM_write_bio_X509(bio, cert) == 1, "PEM_write_bio_X509");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(size));
    BIO_free(bio);
    return pem;
}

std::string pem_of(EVP_PKEY* key)
{
    BIO* bio = BIO_new(BIO_s_mem());
    require(bio != nullptr && PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
            "PEM_write_bio_PrivateKey");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(size));
    BIO_free(bio);
    return pem;
}

} // namespace

validity valid_for_days(long days)
{
    return {-std::chrono::hours(1), std::chrono::hours(24) * days};
}

validity expired_yesterday()
{
    return {-std::chrono::hours(24 * 40), -std::chrono::hours(24)};
}

test_ca::test_ca()
{
    key_ = new_key();
    certificate_ = new_certificate("msg-probe test CA", key_, valid_for_days(30));
    add_extension(certificate_, certificate_, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(certificate_, certificate_, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(certificate_, certificate_, NID_subject_key_identifier, "hash");
    require(X509_sign(certificate_, key_, EVP_sha256()) > 0, "X509_sign");
    certificate_pem_ = pem_of(certificate_);
}

test_ca::~test_ca()
{
    X509_free(certificate_);
    EVP_PKEY_free(key_);
}

pem_credentials test_ca::issue(const std::vector<std::string>& names, validity when) const
{
    EVP_PKEY* key = new_key();
    X509* cert = new_certificate(names.at(0), key, when);
    require(X509_set_issuer_name(cert, X509_get_subject_name(certificate_)) == 1, "issuer");
    add_server_extensions(cert, certificate_, names);
    add_extension(cert, certificate_, NID_authority_key_identifier, "keyid:always");
    require(X509_sign(cert, key_, EVP_sha256()) > 0, "X509_sign");
    pem_credentials out{pem_of(cert), pem_of(key)};
    X509_free(cert);
    EVP_PKEY_free(key);
    return out;
}

pem_credentials self_signed(const std::vector<std::string>& names, validity when)
{
    EVP_PKEY* key = new_key();
    X509* cert = new_certificate(names.at(0), key, when);
    add_server_extensions(cert, cert, names);
    require(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign");
    pem_credentials out{pem_of(cert), pem_of(key)};
    X509_free(cert);
    EVP_PKEY_free(key);
    return out;
}

temp_dir::temp_dir()
{
    std::string pattern = (std::filesystem::temp_directory_path() / "msg-unit-XXXXXX").string();
    require(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
    path_ = pattern;
}

temp_dir::~temp_dir()
{
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

std::string temp_dir::write(const std::string& name, const std::string& content) const
{
    const std::filesystem::path file = path_ / name;
    std::ofstream out(file, std::ios::binary);
    out << content;
    require(static_cast<bool>(out), "writing a temp file");
    return file.string();
}

} // namespace msg_test
