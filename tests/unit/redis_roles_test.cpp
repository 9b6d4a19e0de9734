// store/redis_roles.h: ROLE, SENTINEL get-master-addr-by-name, SENTINEL
// replicas and +switch-master, well-formed (as Redis 7 sends them) and not.
#include "store/redis_roles.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

using namespace consent;

namespace {

using T = RespValue::Type;

// A reply written as a tree of owned values, turned into RespValue.
struct N {
    T type = T::nil;
    std::string str;
    long long i = 0;
    std::vector<N> kids;
};
N S(std::string s) { return {T::string, std::move(s), 0, {}}; }
N St(std::string s) { return {T::status, std::move(s), 0, {}}; }
N E(std::string s) { return {T::error, std::move(s), 0, {}}; }
N I(long long v) { return {T::integer, "", v, {}}; }
N Nil() { return {}; }
N A(std::vector<N> kids) { return {T::array, "", 0, std::move(kids)}; }

// Owns the RespValue arrays; the strings stay in the N tree, which must
// outlive it (keep both in the test).
class Tree {
public:
    explicit Tree(const N& n) { root_ = build(n); }
    const RespValue& root() const { return root_; }

private:
    RespValue build(const N& n) {
        RespValue v;
        v.type = n.type;
        v.str = n.str;
        v.integer = n.i;
        if (n.type == T::array) {
            store_.emplace_back();
            auto& kids = store_.back();
            kids.reserve(n.kids.size());
            for (const N& k : n.kids) kids.push_back(build(k));
            v.elements = kids.data();
            v.count = kids.size();
        }
        return v;
    }
    std::deque<std::vector<RespValue>> store_;
    RespValue root_;
};

bool inside(std::string_view part, const N& tree) {
    if (tree.type != T::array)
        return !tree.str.empty() && part.data() >= tree.str.data() &&
               part.data() + part.size() <= tree.str.data() + tree.str.size();
    for (const N& k : tree.kids)
        if (inside(part, k)) return true;
    return false;
}

MasterAddr master_addr(const N& n, HostPort* out) {
    const Tree t(n);
    return parse_master_addr(t.root(), out);
}

// ---- SENTINEL get-master-addr-by-name -------------------------------------------------

TEST(RolesMasterAddr, Known) {
    const N n = A({S("127.0.0.1"), S("6380")});
    const Tree t(n);
    HostPort hp;
    ASSERT_EQ(parse_master_addr(t.root(), &hp), MasterAddr::known);
    EXPECT_EQ(hp.host, "127.0.0.1");
    EXPECT_EQ(hp.port, 6380);
    EXPECT_TRUE(inside(hp.host, n)) << "the host is a view into the reply";
}

TEST(RolesMasterAddr, HostNamesIpv6AndIntegerPorts) {
    // The replies stay alive while their results are looked at: the hosts
    // are views into them.
    struct Case {
        N reply;
        std::string host;
        int port;
    };
    const Case cases[] = {
        {A({S("::1"), I(26379)}), "::1", 26379},
        {A({St("redis-1.internal"), S("1")}), "redis-1.internal", 1},
        {A({S("h"), S("65535")}), "h", 65535},
        {A({S("h"), S("06379")}), "h", 6379},
        {A({S(std::string(kMaxHost, 'h')), S("1")}), std::string(kMaxHost, 'h'), 1},
    };
    for (const Case& c : cases) {
        HostPort hp;
        ASSERT_EQ(master_addr(c.reply, &hp), MasterAddr::known) << c.host;
        EXPECT_EQ(hp.host, c.host);
        EXPECT_EQ(hp.port, c.port);
        EXPECT_TRUE(inside(hp.host, c.reply));
    }
}

TEST(RolesMasterAddr, NilIsUnknown) {
    HostPort hp{"untouched", 7};
    EXPECT_EQ(master_addr(Nil(), &hp), MasterAddr::unknown);
    EXPECT_EQ(hp.host, "untouched");
    EXPECT_EQ(hp.port, 7);
}

TEST(RolesMasterAddr, GarbageIsMalformed) {
    const std::vector<N> bad = {
        E("ERR unknown command"), S("127.0.0.1:6379"), I(6379), St("OK"), A({}), A({S("127.0.0.1")}),
        A({S("127.0.0.1"), S("6379"), S("extra")}), A({Nil(), S("6379")}), A({S("127.0.0.1"), Nil()}),
        A({S(""), S("6379")}), A({S("127.0.0.1"), S("")}), A({S("127.0.0.1"), S("0")}),
        A({S("127.0.0.1"), S("65536")}), A({S("127.0.0.1"), S("-1")}), A({S("127.0.0.1"), S("+6379")}),
        A({S("127.0.0.1"), S("6379 ")}), A({S("127.0.0.1"), S("63a9")}), A({S("127.0.0.1"), S("000006379")}),
        A({S("127.0.0.1"), I(0)}), A({S("127.0.0.1"), I(-6379)}), A({S("127.0.0.1"), I(65536)}),
        A({S("127.0.0.1"), I(4294967296 + 6379)}), A({S("a b"), S("1")}), A({S("a\n"), S("1")}),
        A({S(std::string("a\0b", 3)), S("1")}), A({S("h\x7f"), S("1")}), A({S("h\xc3\xa9"), S("1")}),
        A({S(std::string(kMaxHost + 1, 'h')), S("1")}), A({I(127), S("1")}), A({E("ERR"), S("1")}),
        A({A({S("127.0.0.1")}), S("1")}), A({S("127.0.0.1"), A({S("1")})}),
        {T::other, "1.5", 0, {}},
    };
    for (size_t i = 0; i < bad.size(); i++) {
        HostPort hp{"untouched", 7};
        EXPECT_EQ(master_addr(bad[i], &hp), MasterAddr::malformed) << "case " << i;
        EXPECT_EQ(hp.host, "untouched") << "case " << i;
    }
}

// ---- ROLE -----------------------------------------------------------------------------

TEST(RolesRole, MasterWithReplicas) {
    const N n = A({S("master"), I(3129659),
                   A({A({S("127.0.0.1"), S("9001"), S("3129242")}), A({S("127.0.0.1"), S("9002"), S("3129543")})})});
    const Tree t(n);
    RoleInfo r;
    HostPort reps[4];
    ASSERT_TRUE(parse_role(t.root(), &r, reps, 4));
    EXPECT_EQ(r.role, Role::master);
    EXPECT_EQ(r.offset, 3129659);
    ASSERT_EQ(r.replica_count, 2u);
    EXPECT_EQ(reps[0].host, "127.0.0.1");
    EXPECT_EQ(reps[0].port, 9001);
    EXPECT_EQ(reps[1].port, 9002);
    EXPECT_TRUE(inside(reps[1].host, n));
}

TEST(RolesRole, MasterWithoutReplicasAndWithoutAnArray) {
    const N n = A({S("master"), I(0), A({})});
    const Tree t(n);
    RoleInfo r;
    ASSERT_TRUE(parse_role(t.root(), &r));
    EXPECT_EQ(r.role, Role::master);
    EXPECT_EQ(r.replica_count, 0u);
}

TEST(RolesRole, MoreReplicasThanTheCallerHasRoomFor) {
    // A master listing 100,000 replicas: counted, only `cap` written.
    std::vector<N> list;
    for (int i = 0; i < 100000; i++) list.push_back(A({S("10.0.0.1"), S(std::to_string(1 + i % 65535)), S("0")}));
    const N n = A({S("master"), I(1), A(std::move(list))});
    const Tree t(n);
    RoleInfo r;
    HostPort reps[3] = {{"guard", 1}, {"guard", 1}, {"guard", 1}};
    ASSERT_TRUE(parse_role(t.root(), &r, reps, 2));
    EXPECT_EQ(r.replica_count, 100000u);
    EXPECT_EQ(reps[0].port, 1);
    EXPECT_EQ(reps[1].port, 2);
    EXPECT_EQ(reps[2].host, "guard") << "written past cap";
    // And with no array at all (cap ignored)
    ASSERT_TRUE(parse_role(t.root(), &r, nullptr, 5));
    EXPECT_EQ(r.replica_count, 100000u);
}

TEST(RolesRole, Replica) {
    const char* states[] = {"none", "connect", "connecting", "handshake", "sync", "connected", "unknown", "future"};
    const LinkState want[] = {LinkState::none, LinkState::connect,   LinkState::connecting, LinkState::handshake,
                              LinkState::sync, LinkState::connected, LinkState::unknown,    LinkState::unknown};
    for (size_t i = 0; i < 8; i++) {
        const N n = A({S("slave"), S("127.0.0.1"), I(9000), S(states[i]), I(3167038)});
        const Tree t(n);
        RoleInfo r;
        ASSERT_TRUE(parse_role(t.root(), &r)) << states[i];
        EXPECT_EQ(r.role, Role::replica);
        EXPECT_EQ(r.primary.host, "127.0.0.1");
        EXPECT_EQ(r.primary.port, 9000);
        EXPECT_EQ(r.link, want[i]) << states[i];
        EXPECT_EQ(link_up(r.link), want[i] == LinkState::connected);
        EXPECT_EQ(r.offset, 3167038);
        if (want[i] != LinkState::unknown) {
            EXPECT_EQ(link_state_name(r.link), states[i]);
        }
    }
    // Before the first sync the offset is -1.
    const N n = A({S("slave"), S("10.1.2.3"), I(6379), S("connect"), I(-1)});
    const Tree t(n);
    RoleInfo r;
    ASSERT_TRUE(parse_role(t.root(), &r));
    EXPECT_EQ(r.offset, -1);
    EXPECT_FALSE(link_up(r.link));
}

TEST(RolesRole, Sentinel) {
    const N n = A({S("sentinel"), A({S("resque-master"), S("html-fragments-master"), S("stats-master")})});
    const Tree t(n);
    RoleInfo r;
    ASSERT_TRUE(parse_role(t.root(), &r));
    EXPECT_EQ(r.role, Role::sentinel);
    EXPECT_EQ(r.master_count, 3u);
}

TEST(RolesRole, GarbageIsRefused) {
    const N rep = A({S("127.0.0.1"), S("9001"), S("1")});
    const std::vector<N> bad = {
        Nil(), E("NOPERM this user has no permissions to run the 'role' command"), S("master"), I(1), A({}),
        A({S("leader"), I(1), A({})}), A({S("Master"), I(1), A({})}), A({I(1), I(1), A({})}),
        // master
        A({S("master")}), A({S("master"), I(1)}), A({S("master"), S("1"), A({})}), A({S("master"), I(1), Nil()}),
        A({S("master"), I(1), A({S("127.0.0.1")})}), A({S("master"), I(1), A({rep, A({S("127.0.0.1"), S("0"), S("1")})})}),
        A({S("master"), I(1), A({A({S("127.0.0.1"), S("9001")})})}),
        A({S("master"), I(1), A({A({S(""), S("9001"), S("1")})})}),
        A({S("master"), I(1), A({A({S("127.0.0.1"), S("9001"), S("x")})})}),
        A({S("master"), I(1), A({A({S("127.0.0.1"), S("70000"), S("1")})})}),
        // replica
        A({S("slave"), S("127.0.0.1"), I(9000), S("connected")}),
        A({S("slave"), S("127.0.0.1"), I(0), S("connected"), I(1)}),
        A({S("slave"), S("127.0.0.1"), I(65536), S("connected"), I(1)}),
        A({S("slave"), S(""), I(9000), S("connected"), I(1)}),
        A({S("slave"), Nil(), I(9000), S("connected"), I(1)}),
        A({S("slave"), S("127.0.0.1"), I(9000), S(""), I(1)}),
        A({S("slave"), S("127.0.0.1"), I(9000), I(1), I(1)}),
        A({S("slave"), S("127.0.0.1"), I(9000), S("connected"), S("many")}),
        A({S("slave"), S("127.0.0.1"), I(9000), S("connected"), S("99999999999999999999")}),
        // sentinel
        A({S("sentinel")}), A({S("sentinel"), S("m")}), A({S("sentinel"), A({S("m"), I(1)})}),
        A({S("sentinel"), A({S("")})}),
    };
    for (size_t i = 0; i < bad.size(); i++) {
        const Tree t(bad[i]);
        RoleInfo r;
        HostPort reps[4];
        EXPECT_FALSE(parse_role(t.root(), &r, reps, 4)) << "case " << i;
    }
}

// ---- SENTINEL replicas ----------------------------------------------------------------

// One entry as Redis 7.0's Sentinel sends it.
N replica_entry(const std::string& port, const std::string& flags, const std::string& link,
                const std::string& mhost = "127.0.0.1", const std::string& mport = "6379") {
    return A({S("name"), S("127.0.0.1:" + port), S("ip"), S("127.0.0.1"), S("port"), S(port), S("runid"),
              S("8a3b1c"), S("flags"), S(flags), S("link-pending-commands"), S("0"), S("link-refcount"), S("1"),
              S("last-ping-sent"), S("0"), S("last-ok-ping-reply"), S("337"), S("last-ping-reply"), S("337"),
              S("down-after-milliseconds"), S("1000"), S("info-refresh"), S("1271"), S("role-reported"),
              S("slave"), S("role-reported-time"), S("5073"), S("master-link-down-time"), S("0"),
              S("master-link-status"), S(link), S("master-host"), S(mhost), S("master-port"), S(mport),
              S("slave-priority"), S("100"), S("slave-repl-offset"), S("22786"), S("replica-announced"), S("1")});
}

TEST(RolesSentinelReplicas, AsRedisSendsThem) {
    const N n = A({replica_entry("6380", "slave", "ok"), replica_entry("6381", "s_down,slave,disconnected", "err")});
    const Tree t(n);
    SentinelReplica out[2];
    size_t count = 99;
    ASSERT_TRUE(parse_sentinel_replicas(t.root(), out, 2, &count));
    ASSERT_EQ(count, 2u);
    EXPECT_EQ(out[0].addr.host, "127.0.0.1");
    EXPECT_EQ(out[0].addr.port, 6380);
    EXPECT_EQ(out[0].flags, kFlagReplica);
    EXPECT_TRUE(out[0].link_ok);
    EXPECT_EQ(out[0].primary.port, 6379);
    EXPECT_EQ(out[0].repl_offset, 22786);
    EXPECT_TRUE(replica_healthy(out[0]));
    EXPECT_EQ(out[1].addr.port, 6381);
    EXPECT_EQ(out[1].flags, kFlagReplica | kFlagSDown | kFlagDisconnected);
    EXPECT_FALSE(out[1].link_ok);
    EXPECT_FALSE(replica_healthy(out[1]));
    EXPECT_TRUE(inside(out[1].addr.host, n));
}

TEST(RolesSentinelReplicas, HealthAndFlags) {
    struct Case {
        const char* flags;
        const char* link;
        uint32_t want;
        bool healthy;
    } cases[] = {
        {"slave", "ok", kFlagReplica, true},
        {"slave", "err", kFlagReplica, false},
        {"s_down,slave", "ok", kFlagReplica | kFlagSDown, false},
        {"o_down,s_down,slave", "ok", kFlagReplica | kFlagSDown | kFlagODown, false},
        {"slave,disconnected", "ok", kFlagReplica | kFlagDisconnected, false},
        {"slave,promoted", "ok", kFlagReplica | kFlagPromoted, true},
        {"slave,master_down", "ok", kFlagReplica | kFlagMasterDown, true},
        {"slave,something_new,,", "ok", kFlagReplica, true},
        {"", "ok", 0, true},
    };
    for (const auto& c : cases) {
        const N n = replica_entry("6380", c.flags, c.link);
        const Tree t(n);
        SentinelReplica r;
        ASSERT_TRUE(parse_sentinel_replica(t.root(), &r)) << c.flags;
        EXPECT_EQ(r.flags, c.want) << c.flags;
        EXPECT_EQ(replica_healthy(r), c.healthy) << c.flags << " " << c.link;
    }
}

TEST(RolesSentinelReplicas, MinimalEntryAndUnknownPrimary) {
    const N n = A({S("ip"), S("10.0.0.7"), S("port"), I(7000), S("flags"), S("slave")});
    const Tree t(n);
    SentinelReplica r;
    ASSERT_TRUE(parse_sentinel_replica(t.root(), &r));
    EXPECT_EQ(r.addr.port, 7000);
    EXPECT_FALSE(r.link_ok) << "no master-link-status: not known to be up";
    EXPECT_EQ(r.primary.port, 0);
    EXPECT_EQ(r.repl_offset, -1);
    // A replica that has not reported its primary yet: "?" and 0.
    const N q = replica_entry("6380", "slave", "err", "?", "0");
    const Tree tq(q);
    ASSERT_TRUE(parse_sentinel_replica(tq.root(), &r));
    EXPECT_TRUE(r.primary.host.empty());
    EXPECT_EQ(r.primary.port, 0);
}

TEST(RolesSentinelReplicas, EmptyListAndHugeList) {
    const N empty = A({});
    const Tree te(empty);
    size_t count = 99;
    ASSERT_TRUE(parse_sentinel_replicas(te.root(), nullptr, 0, &count));
    EXPECT_EQ(count, 0u);

    std::vector<N> many;
    for (int i = 0; i < 20000; i++) many.push_back(A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave")}));
    const N big = A(std::move(many));
    const Tree tb(big);
    SentinelReplica out[3];
    out[2].addr.host = "guard";
    ASSERT_TRUE(parse_sentinel_replicas(tb.root(), out, 2, &count));
    EXPECT_EQ(count, 20000u);
    EXPECT_EQ(out[1].addr.host, "h");
    EXPECT_EQ(out[2].addr.host, "guard") << "written past cap";
    ASSERT_TRUE(parse_sentinel_replicas(tb.root(), nullptr, 7, &count));
}

TEST(RolesSentinelReplicas, GarbageIsRefused) {
    const std::vector<N> bad_entries = {
        Nil(), S("slave"), A({S("ip")}),
        A({S("ip"), S("h"), S("port"), S("1")}),                             // no flags
        A({S("port"), S("1"), S("flags"), S("slave")}),                      // no ip
        A({S("ip"), S("h"), S("flags"), S("slave")}),                        // no port
        A({S("ip"), S("h"), S("port"), S("0"), S("flags"), S("slave")}),     // port 0
        A({S("ip"), S("h"), S("port"), S("65536"), S("flags"), S("slave")}),
        A({S("ip"), S(""), S("port"), S("1"), S("flags"), S("slave")}),
        A({S("ip"), S("a b"), S("port"), S("1"), S("flags"), S("slave")}),
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), I(1)}),
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave"), S("ip"), S("other")}),  // twice
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave"), S("port"), S("2")}),
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave"), S("flags"), S("")}),
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave"), I(5), S("x")}),  // a key that is no string
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave"), S("master-link-status"), Nil()}),
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave"), S("slave-repl-offset"), S("x")}),
        A({S("ip"), S("h"), S("port"), S("1"), S("flags"), S("slave"), S("odd")}),
    };
    for (size_t i = 0; i < bad_entries.size(); i++) {
        const Tree t(bad_entries[i]);
        SentinelReplica r;
        r.addr.host = "untouched";
        EXPECT_FALSE(parse_sentinel_replica(t.root(), &r)) << "entry " << i;
        EXPECT_EQ(r.addr.host, "untouched") << "entry " << i;
        // One bad entry spoils the whole reply.
        const N list = A({replica_entry("6380", "slave", "ok"), bad_entries[i]});
        const Tree tl(list);
        size_t count = 99;
        SentinelReplica out[2];
        EXPECT_FALSE(parse_sentinel_replicas(tl.root(), out, 2, &count)) << "entry " << i;
    }
    for (const N& reply : {Nil(), E("ERR No such master with that name"), S("x"), I(2)}) {
        const Tree t(reply);
        size_t count = 99;
        EXPECT_FALSE(parse_sentinel_replicas(t.root(), nullptr, 0, &count));
        EXPECT_EQ(count, 99u);
    }
}

// ---- +switch-master -------------------------------------------------------------------

TEST(RolesSwitchMaster, AsSentinelPublishesIt) {
    const std::string msg = "consent 127.0.0.1 6379 127.0.0.1 6380";
    SwitchMaster m;
    ASSERT_TRUE(parse_switch_master(msg, &m));
    EXPECT_EQ(m.name, "consent");
    EXPECT_EQ(m.from.host, "127.0.0.1");
    EXPECT_EQ(m.from.port, 6379);
    EXPECT_EQ(m.to.host, "127.0.0.1");
    EXPECT_EQ(m.to.port, 6380);
    EXPECT_GE(m.to.host.data(), msg.data());
    EXPECT_LE(m.to.host.data() + m.to.host.size(), msg.data() + msg.size());
    ASSERT_TRUE(parse_switch_master("m ::1 1 redis-2.internal 65535", &m));
    EXPECT_EQ(m.from.host, "::1");
    EXPECT_EQ(m.to.host, "redis-2.internal");
    EXPECT_EQ(m.to.port, 65535);
}

TEST(RolesSwitchMaster, GarbageIsRefused) {
    const char* bad[] = {
        "",
        "consent",
        "consent 127.0.0.1 6379 127.0.0.1",
        "consent 127.0.0.1 6379 127.0.0.1 6380 extra",
        "consent 127.0.0.1 6379 127.0.0.1 6380 ",
        " consent 127.0.0.1 6379 127.0.0.1 6380",
        "consent  127.0.0.1 6379 127.0.0.1 6380",
        "consent 127.0.0.1 0 127.0.0.1 6380",
        "consent 127.0.0.1 6379 127.0.0.1 65536",
        "consent 127.0.0.1 6379 127.0.0.1 -1",
        "consent 127.0.0.1 6379 127.0.0.1 6380\n",
        "consent 127.0.0.1 6379 127.0.0.1 63 80",
        "consent 127.0.0.1\t6379 127.0.0.1 6380",
        "consent 127.0.0.1 6379 127.0.0.1 1e3",
    };
    for (const char* msg : bad) {
        SwitchMaster m;
        m.name = "untouched";
        EXPECT_FALSE(parse_switch_master(msg, &m)) << '"' << msg << '"';
        EXPECT_EQ(m.name, "untouched");
    }
    SwitchMaster m;
    EXPECT_FALSE(parse_switch_master(std::string_view("m h 1 h\0 2", 11), &m));
    EXPECT_FALSE(parse_switch_master("m " + std::string(kMaxHost + 1, 'h') + " 1 h 2", &m));
    EXPECT_TRUE(parse_switch_master("m " + std::string(kMaxHost, 'h') + " 1 h 2", &m));
}

}  // namespace
