#include "msg/helper_dir.hpp"

#include <system_error>

namespace msg {

std::filesystem::path own_helper_dir(const std::filesystem::path& fallback)
{
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return (ec ? fallback : self).parent_path();
}

} // namespace msg
