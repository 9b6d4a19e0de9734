// The server consentctl's Redis commands talk to: the one --redis names, or,
// with --redis sentinel:MASTER_NAME, the primary the Sentinels name,
// verified with ROLE, following Redis's rules for Sentinel clients:
//
//   1. Ask the Sentinels in the order given: SENTINEL get-master-addr-by-name.
//      One that cannot be reached, answers an error or garbage, or does not
//      know the master counts as failed, and the next one is asked.
//   2. Connect to the address given (AUTH, SELECT as for any server) and ask
//      ROLE. Only "master" is accepted: a server that says otherwise, or
//      cannot be reached, also fails that Sentinel's answer.
//   3. When a Sentinel named a server that failed step 2 (a failover under
//      way: the Sentinels still name the old primary, or the new one has not
//      taken over yet), start again after a short pause, within the budget;
//      otherwise, or once the budget is spent, fail with one line saying
//      what each Sentinel said.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/redis_connection.h"

namespace consent::cli {

struct SentinelTarget {
    std::string master_name;
    std::vector<RedisAddress> sentinels;  // asked in this order
    RedisOptions options;                 // for the Sentinels: their credentials and TLS
};

// How long finding the primary may take in all, Sentinels, connections and
// ROLE included (the command itself then has its usual timeouts).
constexpr std::chrono::milliseconds kSentinelBudget{5000};

struct RedisSession {
    std::unique_ptr<RedisConnection> conn;  // connected, authenticated, on the right db
    std::string where;                      // its address, for messages
    bool via_sentinel = false;              // the primary the Sentinels named
    size_t replicas = 0;                    // via_sentinel: replicas online, as ROLE listed them
};

// Connects to `address`, or to the verified primary when `sentinel` is set.
// Failure (exit 1) when neither works, saying why.
RedisSession open_session(const RedisAddress& address, const RedisOptions& options,
                          const std::optional<SentinelTarget>& sentinel,
                          std::chrono::milliseconds budget = kSentinelBudget);

}  // namespace consent::cli
