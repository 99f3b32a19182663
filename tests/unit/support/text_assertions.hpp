#pragma once

#include <gtest/gtest.h>

#include <string>

namespace msg_test {

// EXPECT_TRUE(contains(reason, "452")) prints both strings when it fails.
inline ::testing::AssertionResult contains(const std::string& text, const std::string& part)
{
    if (text.find(part) != std::string::npos)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// True if every byte of `text` is printable ASCII (what a reason line may hold).
inline ::testing::AssertionResult printable_ascii(const std::string& text)
{
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte >= 0x7f)
            return ::testing::AssertionFailure() << "byte " << static_cast<int>(byte) << " in \"" << text << "\"";
    }
    return ::testing::AssertionSuccess();
}

} // namespace msg_test
