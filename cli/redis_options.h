// consentctl's options for reaching Redis, shared by set, get, erase and
// watch: their names (redis-cli's, as the contract lists them, and the
// Sentinel credentials beyond it), their help text, and the address (or
// Sentinels) and RedisOptions they mean.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "cli/command.h"
#include "cli/redis_connection.h"
#include "cli/redis_primary.h"

namespace consent::cli {

// Options that take a value, and flags (no value).
std::set<std::string> redis_value_options(std::set<std::string> more = {});
std::set<std::string> redis_flags();

struct RedisTarget {
    RedisAddress address;                  // --redis HOST:PORT (unused with sentinel:)
    RedisOptions options;                  // for the data nodes
    std::optional<SentinelTarget> sentinel;  // --redis sentinel:NAME --sentinels ...
};

// UsageError for options that contradict each other or are malformed;
// Failure for TLS files that cannot be read or used.
RedisTarget redis_target(const Args& a);

// The session the options name: the server, or the primary the Sentinels
// name (redis_primary.h).
RedisSession open_session(const Args& a);

}  // namespace consent::cli

#define CONSENT_REDIS_OPTIONS_HELP                                                                 \
    "  --redis ADDRESS   HOST:PORT, [IPV6]:PORT or unix:/PATH (default 127.0.0.1:6379), or\n"      \
    "                    sentinel:MASTER_NAME: the primary the Sentinels name (ROLE checked)\n"   \
    "  --user NAME       AUTH as this ACL user (Redis 6+); needs a password\n"                     \
    "  --password SECRET AUTH with this password (default: $REDISCLI_AUTH, which keeps it\n"       \
    "                    out of the process list)\n"                                               \
    "  --db N            SELECT this database (default 0)\n"                                       \
    "  --tls             connect with TLS (to the Sentinels as well); the server's certificate\n"  \
    "                    must verify against the CAs and name the host of --redis (or --sni)\n"    \
    "  --cacert FILE     CAs that verify the server (default: the system's CA store)\n"            \
    "  --cert FILE       client certificate, for servers with tls-auth-clients (with --key)\n"     \
    "  --key FILE        the client certificate's private key (PEM, unencrypted)\n"                \
    "  --sni NAME        name sent as SNI and verified (default: the host of --redis, or the\n"    \
    "                    host a Sentinel names; a Sentinel is checked against its own host)\n"     \
    "  --insecure        no verification of the certificate's chain or name: anyone on the\n"      \
    "                    path can read and change the traffic and the password\n"                  \
    "  --sentinels LIST  with sentinel:, the Sentinels as HOST:PORT,HOST:PORT,... (port\n"         \
    "                    default 26379; [IPV6]:PORT and unix:/PATH too), asked in this order\n"    \
    "  --sentinel-user NAME  AUTH to the Sentinels as this ACL user; needs a password\n"           \
    "  --sentinel-password SECRET  AUTH to the Sentinels (default: $CONSENTCTL_SENTINEL_AUTH);\n"  \
    "                    --user and --password are for the Redis servers only\n"
