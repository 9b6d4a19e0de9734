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
    more.insert({"--redis", "--user", "--password", "--db", "--cacert", "--cert", "--key", "--sni", "--sentinels",
                 "--sentinel-user", "--sentinel-password"});
    return more;
}

std::set<std::string> redis_flags() { return {"--tls", "--insecure"}; }

namespace {

constexpr const char* kSentinelPrefix = "sentinel:";
constexpr int kSentinelPort = 26379;

// --redis sentinel:NAME --sentinels A,B,... and the Sentinels' own
// credentials (--sentinel-user, --sentinel-password or
// $CONSENTCTL_SENTINEL_AUTH). The Sentinels' TLS settings are the data
// nodes', less --sni (added by the caller).
std::optional<SentinelTarget> sentinel_target(const Args& a, const std::string& redis) {
    const bool named = redis.compare(0, 9, kSentinelPrefix) == 0;
    if (!named) {
        for (const char* opt : {"--sentinels", "--sentinel-user", "--sentinel-password"})
            if (a.has(opt)) throw UsageError(std::string(opt) + " needs --redis sentinel:MASTER_NAME");
        return std::nullopt;
    }
    SentinelTarget s;
    s.master_name = redis.substr(9);
    if (s.master_name.empty()) throw UsageError("--redis sentinel: needs a master name (sentinel:MASTER_NAME)");
    // Sentinel takes a name from its configuration file, split at spaces.
    for (const char c : s.master_name)
        if (c <= 0x20 || c == 0x7f)
            throw UsageError("--redis '" + redis + "': the master name must be printable, without spaces");
    if (!a.has("--sentinels")) throw UsageError("--redis " + redis + " needs --sentinels HOST:PORT,HOST:PORT,...");
    const std::string list = a.get("--sentinels");
    size_t start = 0;
    for (;;) {
        const size_t comma = list.find(',', start);
        const std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (item.empty()) throw UsageError("--sentinels '" + list + "': an empty address (HOST:PORT,HOST:PORT,...)");
        s.sentinels.push_back(parse_redis_address(item, "--sentinels", kSentinelPort));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    RedisOptions& o = s.options;
    o.label = "Sentinel";
    if (a.has("--sentinel-password")) {
        o.password = a.get("--sentinel-password");
    } else if (const char* env = std::getenv("CONSENTCTL_SENTINEL_AUTH"); env && *env) {
        o.password = env;
    }
    if (a.has("--sentinel-user")) {
        o.user = nonempty(a, "--sentinel-user");
        if (!o.password)
            throw UsageError("--sentinel-user needs a password: give --sentinel-password or set CONSENTCTL_SENTINEL_AUTH");
    }
    return s;
}

}  // namespace

RedisTarget redis_target(const Args& a) {
    RedisTarget t;
    const std::string redis = a.get("--redis", kDefaultRedis);
    t.sentinel = sentinel_target(a, redis);
    if (!t.sentinel) t.address = parse_redis_address(redis);
    else t.address.text = redis;
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
    if (t.sentinel)
        for (const RedisAddress& s : t.sentinel->sentinels)
            if (s.unix_socket)
                throw UsageError("--tls takes HOST:PORT Sentinels: Redis serves unix sockets in plain text");
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
    if (t.sentinel) {
        // --sni names the data nodes; each Sentinel is checked against its
        // own host, so it needs a context without the name.
        if (tls_opts.name.empty()) {
            t.sentinel->options.tls = o.tls;
        } else {
            tls_opts.name.clear();
            t.sentinel->options.tls = std::make_shared<const TlsContext>(tls_opts);
        }
    }
    return t;
}

RedisSession open_session(const Args& a) {
    const RedisTarget t = redis_target(a);
    return open_session(t.address, t.options, t.sentinel);
}

}  // namespace consent::cli
