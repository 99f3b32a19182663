// The parts of an LDAP check's options that need no libldap: here, not in
// ldap.cpp, so msg-status can use them without linking libldap.
#include "msg/ldap.hpp"

namespace msg {

std::optional<std::string> ldap_options_conflict(const ldap_options& options)
{
    if (options.sasl_external && !options.bind_dn.empty())
        return "--sasl-external and --bind-dn exclude each other";
    if (options.bind_dn.empty() != options.bind_password_file.empty())
        return "--bind-dn and --bind-password-file go together";
    if (!options.write_probe_attribute.empty() && options.probe_entry.empty())
        return "--write-probe-attr needs --probe-entry";
    if (options.maxsize_warn_percent > 0 && options.db_dir.empty())
        return "--maxsize-warn-percent needs --db-dir";
    return std::nullopt;
}

} // namespace msg
