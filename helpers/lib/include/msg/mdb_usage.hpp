#pragma once

#include "msg/outcome.hpp"

#include <cstdint>
#include <filesystem>

namespace msg {

// How full an LMDB environment (a slapd back-mdb database) is, in bytes.
struct mdb_usage {
    std::uint64_t page_size = 0;
    std::uint64_t map_bytes = 0;         // the map size the environment records (olcDbMaxSize)
    std::uint64_t high_water_bytes = 0;  // pages ever allocated: (last page number + 1) * page size
    std::uint64_t free_bytes = 0;        // pages on the free list, which writes reuse first

    // Pages holding data: what counts towards a full map.
    std::uint64_t used_bytes() const { return high_water_bytes > free_bytes ? high_water_bytes - free_bytes : 0; }
};

// Reads the usage of the environment in `dir` through liblmdb, read-only
// and as one more reader beside a live slapd (one short read transaction).
// Throws check_failure 1 when data.mdb or lock.mdb is missing (the database
// moved away under a running slapd; the lock file is never created, as a
// root-owned one would lock slapd out) or LMDB cannot open or read it.
mdb_usage read_mdb_usage(const std::filesystem::path& dir);

// Degraded (190) when the used pages exceed `warn_percent` of the map
// (`maxsize_bytes`, or the environment's own map size when 0), with both
// sizes in the reason; ok otherwise. Throws as read_mdb_usage.
outcome check_mdb_usage(const std::filesystem::path& dir, int warn_percent, std::uint64_t maxsize_bytes);

} // namespace msg
