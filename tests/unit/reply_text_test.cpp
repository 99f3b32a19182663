// msg::printable_excerpt: what may reach an operator's reason line; and the
// small text helpers the protocol parsers share.
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

TEST(UpperAscii, UpperCasesLettersOnly)
{
    EXPECT_EQ(msg::upper_ascii("auth=Plain 8bitmime"), "AUTH=PLAIN 8BITMIME");
    EXPECT_EQ(msg::upper_ascii("\xc3\xa9"), "\xc3\xa9");
}

TEST(SplitWords, SplitsAtAnyWhitespace)
{
    EXPECT_EQ(msg::split_words("  IMAP4rev1\tSTARTTLS  AUTH=PLAIN "),
              (std::vector<std::string>{"IMAP4rev1", "STARTTLS", "AUTH=PLAIN"}));
    EXPECT_TRUE(msg::split_words(" ").empty());
}

} // namespace
