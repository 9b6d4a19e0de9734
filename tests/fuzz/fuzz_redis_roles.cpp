// fuzz_redis_roles: the parsers of store/redis_roles.h over fuzzer-built
// replies. The last input byte picks the mode:
//
//   0  parse_master_addr    1  parse_role    2  parse_sentinel_replicas
//   3  parse_switch_master over the remaining bytes, against a reference
//
// Modes 0..2 build a RespValue tree from the input (FuzzedDataProvider:
// integers from the back, strings from the front, '\'-terminated): per node
// a type byte (0 nil, 1 string, 2 status, 3 error, 4 integer, 5 array,
// 6 other), then a string, an integer (a small one or any 64-bit one), or
// an element count 0..24 and the elements; at most 4 levels and 400 nodes.
// Each string and each array is its own heap block of exactly its size, so
// a read past one is an ASan report. Properties, besides never crashing:
//   - an accepted port is 1..65535; an accepted host is non-empty, at most
//     kMaxHost bytes, printable without space, and lies inside one string of
//     the reply;
//   - parse_master_addr: `unknown` exactly for nil; `known` only for an
//     array of two; *out untouched unless `known`; the result matches a
//     reference;
//   - parse_role: a master's replica_count is its list's length, replicas
//     are written up to `cap` and never past it; a replica's link is up only
//     when its state is exactly "connected"; a sentinel's master_count is
//     its list's length; the role matches the first element's text;
//   - parse_sentinel_replicas: *count is the reply's length, out[] written
//     up to `cap` and never past it, *count untouched on failure; a healthy
//     replica's entry says master-link-status "ok" and none of s_down,
//     o_down, disconnected among its flags;
//   - parse_switch_master: accepted exactly when a reference (split at ' ',
//     five non-empty fields, ports 1..65535 in 1..5 digits, valid hosts)
//     accepts, with the same fields, inside the message.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/redis_roles.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;
using fuzz::show;
using T = RespValue::Type;

namespace {

struct Reply {
    std::vector<std::unique_ptr<char[]>> strings;
    std::vector<std::pair<const char*, size_t>> spans;  // every string's bytes
    std::vector<std::unique_ptr<RespValue[]>> arrays;
    size_t nodes = 0;

    bool inside(std::string_view s) const {
        for (const auto& [p, n] : spans)
            if (s.data() >= p && s.data() + s.size() <= p + n) return true;
        return false;
    }
};

RespValue build(FuzzedDataProvider& fdp, Reply& r, int depth) {
    RespValue v;
    r.nodes++;
    int type = fdp.ConsumeIntegralInRange<int>(0, 6);
    if (type == 5 && (depth >= 4 || r.nodes >= 400)) type = 1;
    v.type = static_cast<T>(type);  // the order of RespValue::Type
    switch (v.type) {
        case T::string:
        case T::status:
        case T::error:
        case T::other: {
            const std::string s = fdp.ConsumeRandomLengthString(300);
            if (!s.empty()) {
                r.strings.emplace_back(new char[s.size()]);
                std::memcpy(r.strings.back().get(), s.data(), s.size());
                v.str = std::string_view(r.strings.back().get(), s.size());
                r.spans.emplace_back(v.str.data(), v.str.size());
            }
            break;
        }
        case T::integer:
            v.integer = fdp.ConsumeBool() ? fdp.ConsumeIntegralInRange<long long>(-2, 70000)
                                          : fdp.ConsumeIntegral<long long>();
            break;
        case T::array: {
            const size_t n = fdp.ConsumeIntegralInRange<size_t>(0, 24);
            if (n == 0) break;
            // Built before being copied into an exact-size block.
            std::vector<RespValue> kids;
            for (size_t i = 0; i < n; i++) kids.push_back(build(fdp, r, depth + 1));
            r.arrays.emplace_back(new RespValue[n]);
            for (size_t i = 0; i < n; i++) r.arrays.back()[i] = kids[i];
            v.elements = r.arrays.back().get();
            v.count = n;
            break;
        }
        case T::nil: break;
    }
    return v;
}

bool text(const RespValue& v, std::string_view* s) {
    if (v.type != T::string && v.type != T::status) return false;
    *s = v.str;
    return true;
}

bool ref_host(std::string_view h) {
    if (h.empty() || h.size() > kMaxHost) return false;
    for (unsigned char c : h)
        if (c < 0x21 || c > 0x7e) return false;
    return true;
}

int ref_port_text(std::string_view s) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string_view::npos) return 0;
    const int p = std::stoi(std::string(s));
    return p >= 1 && p <= 65535 ? p : 0;
}

int ref_port(const RespValue& v) {
    if (v.type == T::integer) return v.integer >= 1 && v.integer <= 65535 ? static_cast<int>(v.integer) : 0;
    std::string_view s;
    return text(v, &s) ? ref_port_text(s) : 0;
}

void check_host_port(const HostPort& hp, const Reply& r, const char* what) {
    FUZZ_CHECK(hp.port >= 1 && hp.port <= 65535, "%s: port %d", what, hp.port);
    FUZZ_CHECK(ref_host(hp.host), "%s: host %s", what, show(hp.host).c_str());
    FUZZ_CHECK(r.inside(hp.host), "%s: host %s not inside the reply", what, show(hp.host).c_str());
}

void fuzz_master_addr(const RespValue& v, const Reply& r) {
    HostPort hp{"untouched", 7};
    const MasterAddr got = parse_master_addr(v, &hp);
    MasterAddr want = MasterAddr::malformed;
    std::string_view h;
    if (v.type == T::nil) want = MasterAddr::unknown;
    else if (v.type == T::array && v.count == 2 && text(v.elements[0], &h) && ref_host(h) && ref_port(v.elements[1]))
        want = MasterAddr::known;
    FUZZ_CHECK(got == want, "parse_master_addr %d, reference %d", static_cast<int>(got), static_cast<int>(want));
    if (got != MasterAddr::known) {
        FUZZ_CHECK(hp.host == "untouched" && hp.port == 7, "*out written for a reply not known");
        return;
    }
    check_host_port(hp, r, "master addr");
    FUZZ_CHECK(hp.host == h && hp.port == ref_port(v.elements[1]), "master addr differs from the reference");
}

void fuzz_role(const RespValue& v, const Reply& r, size_t cap) {
    RoleInfo info;
    std::unique_ptr<HostPort[]> reps(new HostPort[cap + 1]);
    reps[cap] = HostPort{"guard", 1};
    if (!parse_role(v, &info, reps.get(), cap)) {
        FUZZ_CHECK(reps[cap].host == "guard", "written past cap");
        return;
    }
    FUZZ_CHECK(v.type == T::array && v.count >= 1, "a role from a reply that is no array");
    std::string_view kind;
    FUZZ_CHECK(text(v.elements[0], &kind), "a role without a name");
    FUZZ_CHECK(reps[cap].host == "guard", "written past cap");
    switch (info.role) {
        case Role::master: {
            FUZZ_CHECK(kind == "master", "master from %s", show(kind).c_str());
            const RespValue& list = v.elements[2];
            FUZZ_CHECK(list.type == T::array && info.replica_count == list.count, "replica_count %zu",
                       info.replica_count);
            for (size_t i = 0; i < info.replica_count && i < cap; i++) {
                check_host_port(reps[i], r, "ROLE replica");
                FUZZ_CHECK(reps[i].port == ref_port(list.elements[i].elements[1]), "replica port");
            }
            break;
        }
        case Role::replica: {
            FUZZ_CHECK(kind == "slave", "replica from %s", show(kind).c_str());
            check_host_port(info.primary, r, "ROLE primary");
            std::string_view state;
            FUZZ_CHECK(text(v.elements[3], &state), "a replica without a state");
            FUZZ_CHECK(link_up(info.link) == (state == "connected"), "link_up for state %s", show(state).c_str());
            break;
        }
        case Role::sentinel:
            FUZZ_CHECK(kind == "sentinel", "sentinel from %s", show(kind).c_str());
            FUZZ_CHECK(v.elements[1].type == T::array && info.master_count == v.elements[1].count, "master_count");
            break;
    }
}

// The value of `key` in a flat entry (the last one when repeated).
const RespValue* field(const RespValue& e, std::string_view key) {
    const RespValue* found = nullptr;
    for (size_t i = 0; i + 1 < e.count; i += 2) {
        std::string_view k;
        if (text(e.elements[i], &k) && k == key) found = &e.elements[i + 1];
    }
    return found;
}

bool has_flag(std::string_view flags, std::string_view f) {
    size_t start = 0;
    for (;;) {
        const size_t comma = flags.find(',', start);
        if (flags.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start) == f)
            return true;
        if (comma == std::string_view::npos) return false;
        start = comma + 1;
    }
}

void fuzz_replicas(const RespValue& v, const Reply& r, size_t cap) {
    std::unique_ptr<SentinelReplica[]> out(new SentinelReplica[cap + 1]);
    out[cap].addr.host = "guard";
    size_t count = 12345;
    if (!parse_sentinel_replicas(v, out.get(), cap, &count)) {
        FUZZ_CHECK(count == 12345, "*count written on failure");
        FUZZ_CHECK(out[cap].addr.host == "guard", "written past cap");
        return;
    }
    FUZZ_CHECK(v.type == T::array && count == v.count, "count %zu", count);
    FUZZ_CHECK(out[cap].addr.host == "guard", "written past cap");
    for (size_t i = 0; i < count && i < cap; i++) {
        const SentinelReplica& s = out[i];
        const RespValue& e = v.elements[i];
        check_host_port(s.addr, r, "SENTINEL replicas address");
        const RespValue* ip = field(e, "ip");
        FUZZ_CHECK(ip && ip->str == s.addr.host, "address is not the entry's ip");
        if (s.primary.port != 0 || !s.primary.host.empty()) check_host_port(s.primary, r, "SENTINEL replicas primary");
        if (replica_healthy(s)) {
            std::string_view flags, link;
            const RespValue* f = field(e, "flags");
            const RespValue* l = field(e, "master-link-status");
            FUZZ_CHECK(f && text(*f, &flags) && l && text(*l, &link) && link == "ok", "healthy without link ok");
            FUZZ_CHECK(!has_flag(flags, "s_down") && !has_flag(flags, "o_down") && !has_flag(flags, "disconnected"),
                       "healthy with flags %s", show(flags).c_str());
        }
    }
}

void fuzz_switch(const std::string& msg_s) {
    std::unique_ptr<char[]> buf(new char[msg_s.size()]);
    if (!msg_s.empty()) std::memcpy(buf.get(), msg_s.data(), msg_s.size());
    const std::string_view msg = msg_s.empty() ? std::string_view() : std::string_view(buf.get(), msg_s.size());
    SwitchMaster m;
    m.name = "untouched";
    const bool ok = parse_switch_master(msg, &m);

    std::vector<std::string> f;
    size_t start = 0;
    for (;;) {
        const size_t sp = msg_s.find(' ', start);
        f.push_back(msg_s.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
        if (sp == std::string::npos) break;
        start = sp + 1;
    }
    bool want = f.size() == 5 && !f[0].empty() && ref_host(f[1]) && ref_port_text(f[2]) && ref_host(f[3]) &&
                ref_port_text(f[4]);
    FUZZ_CHECK(ok == want, "parse_switch_master(%s) = %d, reference %d", show(msg).c_str(), ok, want);
    if (!ok) {
        FUZZ_CHECK(m.name == "untouched", "*out written for a refused message");
        return;
    }
    FUZZ_CHECK(m.name == f[0] && m.from.host == f[1] && m.from.port == ref_port_text(f[2]) && m.to.host == f[3] &&
                   m.to.port == ref_port_text(f[4]),
               "fields differ from the reference");
    for (std::string_view s : {m.name, m.from.host, m.to.host})
        FUZZ_CHECK(s.data() >= msg.data() && s.data() + s.size() <= msg.data() + msg.size(), "field outside the message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider fdp(data, size);
    const int mode = fdp.ConsumeIntegralInRange<int>(0, 3);
    if (mode == 3) {
        if (std::getenv("FUZZ_TRACE")) std::fprintf(stderr, "mode 3\n");
        fuzz_switch(fdp.ConsumeRemainingBytesAsString());
        return 0;
    }
    const size_t cap = fdp.ConsumeIntegralInRange<size_t>(0, 8);
    Reply r;
    const RespValue v = build(fdp, r, 0);
    // FUZZ_TRACE=1: what each input parses to (checks that the seeds reach
    // the parsers' accepting paths).
    static const bool trace = std::getenv("FUZZ_TRACE") != nullptr;
    if (trace) {
        RoleInfo info;
        HostPort hp;
        size_t count = 0;
        std::fprintf(stderr, "mode %d: master_addr %d, role %d, replicas %d (count %zu)\n", mode,
                     static_cast<int>(parse_master_addr(v, &hp)), parse_role(v, &info),
                     parse_sentinel_replicas(v, nullptr, 0, &count), count);
    }
    switch (mode) {
        case 0: fuzz_master_addr(v, r); break;
        case 1: fuzz_role(v, r, cap); break;
        case 2: fuzz_replicas(v, r, cap); break;
    }
    return 0;
}
