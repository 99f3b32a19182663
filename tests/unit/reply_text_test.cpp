// msg::printable_excerpt: what may reach an operator's reason line.
#include "msg/reply_text.hpp"

#include <gtest/gtest.h>

namespace {

TEST(PrintableExcerpt, KeepsOrdinaryText)
{
    EXPECT_EQ(msg::printable_excerpt("452 4.3.1 Insufficient system storage"), "452 4.3.1 Insufficient system storage");
}

TEST(PrintableExcerpt, ReplacesControlAndNonAsciiBytes)
{
    EXPECT_EQ(msg::printable_excerpt("a\x1b[0m\r\nb\tc\xc3\xa9"), "a?[0m??b?c??");
}

TEST(PrintableExcerpt, MarksWhereItCuts)
{
    EXPECT_EQ(msg::printable_excerpt(std::string(300, 'x'), 10), "xxxxxxx...");
    EXPECT_EQ(msg::printable_excerpt(std::string(300, 'x')).size(), 200u);
    EXPECT_EQ(msg::printable_excerpt("abcdefghij", 10), "abcdefghij");
    EXPECT_EQ(msg::printable_excerpt("abcdef", 2), "ab");
}

} // namespace
