// msg::describe_certificate and msg::check_certificate_expiry on
// certificates made at test time.
#include "msg/outcome.hpp"
#include "msg/tls.hpp"

#include "test_certificates.hpp"
#include "text_assertions.hpp"

#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>

namespace {

using namespace std::chrono_literals;
using msg::ocf_code;

msg::certificate_info describe(const msg_test::pem_credentials& credentials)
{
    BIO* bio = BIO_new_mem_buf(credentials.certificate.data(), static_cast<int>(credentials.certificate.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr)
        throw std::runtime_error("unreadable test certificate");
    msg::certificate_info info = msg::describe_certificate(cert);
    X509_free(cert);
    return info;
}

msg::certificate_info expiring_in(std::chrono::seconds remaining)
{
    msg::certificate_info info;
    info.subject = "CN=mx.example.com";
    info.not_after = "Jan  1 00:00:00 2030 GMT";
    info.remaining = remaining;
    return info;
}

TEST(Certificate, DescribesSubjectAndTimeLeft)
{
    const auto lifetime = std::chrono::hours(24 * 10 + 12);
    const auto info = describe(msg_test::self_signed({"mx.example.com"}, {-1h, lifetime}));
    EXPECT_EQ(info.subject, "CN=mx.example.com");
    EXPECT_TRUE(msg_test::contains(info.not_after, "GMT"));
    EXPECT_GT(info.remaining, lifetime - 1min);
    EXPECT_LE(info.remaining, lifetime);
    EXPECT_EQ(info.days_to_expiry(), 10);
}

TEST(Certificate, ExpiredCertificateHasNegativeTimeLeft)
{
    const auto info = describe(msg_test::self_signed({"mx.example.com"}, {-48h, -36h}));
    EXPECT_LT(info.remaining, -35h);
    EXPECT_EQ(info.days_to_expiry(), -2);
}

TEST(Certificate, DaysToExpiryRoundsDown)
{
    EXPECT_EQ(expiring_in(std::chrono::hours(24 * 3)).days_to_expiry(), 3);
    EXPECT_EQ(expiring_in(std::chrono::hours(24 * 3) - 1s).days_to_expiry(), 2);
    EXPECT_EQ(expiring_in(0s).days_to_expiry(), 0);
    EXPECT_EQ(expiring_in(-1s).days_to_expiry(), -1);
}

TEST(CertificateExpiry, WithinWarningIsDegraded)
{
    const auto result = msg::check_certificate_expiry(expiring_in(std::chrono::hours(24 * 3 + 5)), 7);
    EXPECT_EQ(result.code(), ocf_code::degraded);
    EXPECT_EQ(result.reason(),
              "TLS certificate CN=mx.example.com expires in 3 days, on Jan  1 00:00:00 2030 GMT (warning at 7 days)");
}

TEST(CertificateExpiry, LastDayIsCountedInHours)
{
    const auto result = msg::check_certificate_expiry(expiring_in(5h + 10min), 1);
    EXPECT_EQ(result.code(), ocf_code::degraded);
    EXPECT_TRUE(msg_test::contains(result.reason(), "expires in 5 hours"));
}

TEST(CertificateExpiry, BeyondWarningIsHealthy)
{
    EXPECT_TRUE(msg::check_certificate_expiry(expiring_in(std::chrono::hours(24 * 8)), 7).healthy());
}

TEST(CertificateExpiry, ZeroWarningDaysNeverWarns)
{
    EXPECT_TRUE(msg::check_certificate_expiry(expiring_in(1h), 0).healthy());
}

TEST(CertificateExpiry, ExpiredIsFailureEvenWithoutWarning)
{
    const auto result = msg::check_certificate_expiry(expiring_in(-1h), 0);
    EXPECT_EQ(result.code(), ocf_code::err_generic);
    EXPECT_EQ(result.reason(), "TLS certificate CN=mx.example.com expired on Jan  1 00:00:00 2030 GMT");
}

} // namespace
