// consentctl's options for reaching Redis, shared by set, get, erase and
// watch: their names (redis-cli's, as the contract lists them), their help
// text, and the address and RedisOptions they mean.
#pragma once

#include <set>
#include <string>

#include "cli/command.h"
#include "cli/redis_connection.h"

namespace consent::cli {

// Options that take a value, and flags (no value).
std::set<std::string> redis_value_options(std::set<std::string> more = {});
std::set<std::string> redis_flags();

struct RedisTarget {
    RedisAddress address;
    RedisOptions options;
};

// UsageError for options that contradict each other or are malformed;
// Failure for TLS files that cannot be read or used.
RedisTarget redis_target(const Args& a);

}  // namespace consent::cli

#define CONSENT_REDIS_OPTIONS_HELP                                                                 \
    "  --redis ADDRESS   HOST:PORT, [IPV6]:PORT or unix:/PATH (default 127.0.0.1:6379)\n"          \
    "  --user NAME       AUTH as this ACL user (Redis 6+); needs a password\n"                     \
    "  --password SECRET AUTH with this password (default: $REDISCLI_AUTH, which keeps it\n"       \
    "                    out of the process list)\n"                                               \
    "  --db N            SELECT this database (default 0)\n"                                       \
    "  --tls             connect with TLS; the server's certificate must verify against\n"         \
    "                    the CAs and name the host of --redis (or --sni)\n"                        \
    "  --cacert FILE     CAs that verify the server (default: the system's CA store)\n"            \
    "  --cert FILE       client certificate, for servers with tls-auth-clients (with --key)\n"     \
    "  --key FILE        the client certificate's private key (PEM, unencrypted)\n"                \
    "  --sni NAME        name sent as SNI and verified (default: the host of --redis)\n"           \
    "  --insecure        no verification of the certificate's chain or name: anyone on the\n"     \
    "                    path can read and change the traffic and the password\n"
