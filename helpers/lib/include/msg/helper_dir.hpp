#pragma once

#include <filesystem>

namespace msg {

// The directory this helper's own executable is in (/proc/self/exe): the
// helpers are installed side by side, so one finds another there (msg-probe
// and msg-status run msg-probe-ldap). `fallback`'s directory (argv[0]) when
// /proc cannot tell.
std::filesystem::path own_helper_dir(const std::filesystem::path& fallback);

} // namespace msg
