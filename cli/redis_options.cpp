// consentctl's Redis connection options (redis_options.h).
#include "cli/redis_options.h"

#include <cstdlib>
#include <memory>

namespace consent::cli {

namespace {

constexpr const char* kDefaultRedis = "127.0.0.1:6379";

// Only meaningful with --tls: given without it they would be silently
// ignored, and a plain connection is not what the operator asked for.
const char* const kTlsOnly[] = {"--cacert", "--cert", "--key", "--sni", "--insecure"};

std::string nonempty(const Args& a, const std::string& name) {
    const std::string v = a.get(name);
    if (v.empty()) throw UsageError(name + " must not be empty");
    return v;
}

}  // namespace

std::set<std::string> redis_value_options(std::set<std::string> more) {
    more.insert({"--redis", "--user", "--password", "--db", "--cacert", "--cert", "--key", "--sni"});
    return more;
}

std::set<std::string> redis_flags() { return {"--tls", "--insecure"}; }

RedisTarget redis_target(const Args& a) {
    RedisTarget t;
    t.address = parse_redis_address(a.get("--redis", kDefaultRedis));
    RedisOptions& o = t.options;

    if (a.has("--db")) {
        const std::string db = a.get("--db");
        if (db.empty() || db.find_first_not_of("0123456789") != std::string::npos || db.size() > 9)
            throw UsageError("--db '" + db + "' must be a database number");
        o.db = db;
    }

    // redis-cli's rule: --password, else REDISCLI_AUTH (an empty one counts
    // as unset, like an unset one).
    if (a.has("--password")) {
        o.password = a.get("--password");
    } else if (const char* env = std::getenv("REDISCLI_AUTH"); env && *env) {
        o.password = env;
    }
    if (a.has("--user")) {
        o.user = nonempty(a, "--user");
        if (!o.password) throw UsageError("--user needs a password: give --password or set REDISCLI_AUTH");
    }

    const bool tls = a.has("--tls");
    for (const char* name : kTlsOnly)
        if (!tls && a.has(name)) throw UsageError(std::string(name) + " needs --tls");
    if (!tls) return t;
    if (t.address.unix_socket) throw UsageError("--tls takes a HOST:PORT address: Redis serves unix sockets in plain text");
    if (a.has("--cert") != a.has("--key")) throw UsageError("--cert and --key go together");
    TlsOptions tls_opts;
    if (a.has("--cacert")) tls_opts.ca_file = nonempty(a, "--cacert");
    if (a.has("--cert")) {
        tls_opts.cert_file = nonempty(a, "--cert");
        tls_opts.key_file = nonempty(a, "--key");
    }
    if (a.has("--sni")) tls_opts.name = nonempty(a, "--sni");
    tls_opts.verify = !a.has("--insecure");
    o.tls = std::make_shared<const TlsContext>(tls_opts);  // reads the files: Failure if unusable
    return t;
}

}  // namespace consent::cli
