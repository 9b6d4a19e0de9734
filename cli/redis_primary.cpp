// Finding the primary through Sentinel (redis_primary.h).
#include "cli/redis_primary.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <thread>

#include "cli/reply_view.h"
#include "store/redis_roles.h"

namespace consent::cli {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A Sentinel answers at once or not at all; a stopped one must not eat the
// whole budget, so each is given at most this long to connect and answer.
constexpr milliseconds kSentinelTimeout{2000};
// Between two rounds over the Sentinels while a failover is under way.
constexpr milliseconds kPause{250};
// Less than this left: no point starting another connection.
constexpr milliseconds kMinAttempt{50};

milliseconds left(Clock::time_point end) {
    const auto d = std::chrono::duration_cast<milliseconds>(end - Clock::now());
    return d.count() > 0 ? d : milliseconds(0);
}

// `o` with its timeouts cut to what is left of the budget (and to `cap`).
RedisOptions within(RedisOptions o, milliseconds remaining, milliseconds cap) {
    o.connect_timeout = std::min({o.connect_timeout, remaining, cap});
    o.command_timeout = std::min({o.command_timeout, remaining, cap});
    return o;
}

std::string seconds(milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(ms.count()) / 1000);
    return buf;
}

std::string address_text(std::string_view host, int port) {
    const std::string h(host);
    return (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(port);
}

// What checking a named server found.
struct Check {
    std::unique_ptr<RedisConnection> conn;  // set when it is the primary
    size_t replicas = 0;
    std::string note;        // otherwise, why not: ": cannot connect ..." or ", whose ROLE is ..."
    bool transient = false;  // asking again may give another answer (a failover under way)
};

// Connects to the server a Sentinel named, as the data options say, and
// accepts it only if ROLE says master.
Check check_primary(const RedisAddress& addr, const RedisOptions& data, milliseconds remaining) {
    Check c;
    try {
        auto conn = std::make_unique<RedisConnection>(addr, within(data, remaining, data.command_timeout));
        const Reply reply = conn->command({"ROLE"});
        const ReplyView view(reply.get());
        RoleInfo role;
        if (!parse_role(view.root(), &role)) {
            c.note = ", which answered ROLE with something that is not a role";
            return c;
        }
        switch (role.role) {
            case Role::master:
                conn->set_command_timeout(data.command_timeout);  // the budget was for finding it
                c.conn = std::move(conn);
                c.replicas = role.replica_count;
                return c;
            case Role::replica:
                // Demoted, or not promoted yet: the Sentinels will catch up.
                c.note = ", whose ROLE is replica of " + address_text(role.primary.host, role.primary.port) +
                         " (link " + std::string(link_state_name(role.link)) + ")";
                c.transient = true;
                return c;
            case Role::sentinel:
                c.note = ", which is a Sentinel, not a data node";
                return c;
        }
    } catch (const Refusal& e) {
        // WRONGPASS, NOPERM, a certificate that does not verify: the server
        // is there and refuses; asking again gives the same answer.
        c.note = std::string(": ") + e.what();
    } catch (const Failure& e) {
        // Refused, timed out, lost: a dead primary the Sentinels still name.
        c.note = std::string(": ") + e.what();
        c.transient = true;
    }
    return c;
}

RedisSession find_primary(const SentinelTarget& s, const RedisOptions& data, milliseconds budget) {
    const Clock::time_point end = Clock::now() + budget;
    std::vector<std::string> said(s.sentinels.size(), "not asked: no time left");
    int rounds = 0;
    for (;;) {
        rounds++;
        bool again = false;
        std::map<std::string, Check> checked;  // this round: a server several Sentinels name is checked once
        for (size_t i = 0; i < s.sentinels.size(); i++) {
            const RedisAddress& sentinel = s.sentinels[i];
            if (left(end) < kMinAttempt) break;
            const std::string who = "Sentinel at " + sentinel.text;
            Reply reply;
            try {
                RedisConnection conn(sentinel, within(s.options, left(end), kSentinelTimeout));
                reply = conn.command({"SENTINEL", "get-master-addr-by-name", s.master_name});
            } catch (const Failure& e) {
                said[i] = e.what();  // "cannot connect to Sentinel at ...", "Sentinel at ...: AUTH failed: ..."
                continue;
            }
            const ReplyView view(reply.get());
            HostPort hp;
            switch (parse_master_addr(view.root(), &hp)) {
                case MasterAddr::unknown: said[i] = who + " does not know master " + s.master_name; continue;
                case MasterAddr::malformed:
                    said[i] = who + " answered get-master-addr-by-name with something that is not an address";
                    continue;
                case MasterAddr::known: break;
            }
            RedisAddress addr;
            addr.host = std::string(hp.host);
            addr.port = hp.port;
            addr.text = address_text(hp.host, hp.port);
            auto it = checked.find(addr.text);
            if (it == checked.end()) it = checked.emplace(addr.text, check_primary(addr, data, left(end))).first;
            Check& c = it->second;
            if (c.conn) return RedisSession{std::move(c.conn), addr.text, true, c.replicas};
            said[i] = who + " named " + addr.text + c.note;
            again = again || c.transient;
        }
        // Only a failover under way is worth waiting for; a Sentinel that is
        // down, or does not know the master, will not change its mind.
        if (!again || left(end) < kPause + kMinAttempt) break;
        std::this_thread::sleep_for(kPause);
    }
    std::string msg = "no primary for sentinel:" + s.master_name;
    if (rounds > 1) msg += " within " + seconds(budget) + " (" + std::to_string(rounds) + " rounds)";
    msg += ": ";
    for (size_t i = 0; i < said.size(); i++) msg += (i ? "; " : "") + said[i];
    throw Failure(msg);
}

}  // namespace

RedisSession open_session(const RedisAddress& address, const RedisOptions& options,
                          const std::optional<SentinelTarget>& sentinel, milliseconds budget) {
    if (sentinel) return find_primary(*sentinel, options, budget);
    return RedisSession{std::make_unique<RedisConnection>(address, options), address.text, false, 0};
}

}  // namespace consent::cli
