#include "store/redis_roles.h"

#include <climits>

namespace consent {

namespace {

using T = RespValue::Type;

// A bulk or simple string.
bool text(const RespValue& v, std::string_view* out) noexcept {
    if (v.type != T::string && v.type != T::status) return false;
    *out = v.str;
    return true;
}

bool is(const RespValue& v, std::string_view want) noexcept {
    std::string_view s;
    return text(v, &s) && s == want;
}

// Printable ASCII without space: an IPv4 or IPv6 address or a host name.
// Anything else (an empty string, a newline) cannot be a host to connect to.
bool valid_host(std::string_view h) noexcept {
    if (h.empty() || h.size() > kMaxHost) return false;
    for (const char c : h)
        if (c <= 0x20 || c >= 0x7f) return false;
    return true;
}

// 1..65535 written as 1 to 5 decimal digits (leading zeros allowed).
int port_of_text(std::string_view s) noexcept {
    if (s.empty() || s.size() > 5) return 0;
    int v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return 0;
        v = v * 10 + (c - '0');
    }
    return v >= 1 && v <= 65535 ? v : 0;
}

// Redis sends ports as bulk strings in some replies and integers in others.
int port_of(const RespValue& v) noexcept {
    if (v.type == T::integer) return v.integer >= 1 && v.integer <= 65535 ? static_cast<int>(v.integer) : 0;
    std::string_view s;
    return text(v, &s) ? port_of_text(s) : 0;
}

bool host_port(const RespValue& host, const RespValue& port, HostPort* out) noexcept {
    std::string_view h;
    const int p = port_of(port);
    if (!text(host, &h) || !valid_host(h) || p == 0) return false;
    out->host = h;
    out->port = p;
    return true;
}

// An integer, or a string of an optional '-' and 1..19 digits that fits a
// long long (offsets come as either).
bool integer_of(const RespValue& v, long long* out) noexcept {
    if (v.type == T::integer) {
        *out = v.integer;
        return true;
    }
    std::string_view s;
    if (!text(v, &s)) return false;
    const bool neg = !s.empty() && s[0] == '-';
    if (neg) s.remove_prefix(1);
    if (s.empty() || s.size() > 19) return false;
    unsigned long long u = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        u = u * 10 + static_cast<unsigned long long>(c - '0');  // 19 digits cannot overflow 64 bits
    }
    if (u > static_cast<unsigned long long>(LLONG_MAX)) return false;
    *out = neg ? -static_cast<long long>(u) : static_cast<long long>(u);
    return true;
}

LinkState link_state_of(std::string_view s) noexcept {
    if (s == "connected") return LinkState::connected;
    if (s == "connect") return LinkState::connect;
    if (s == "connecting") return LinkState::connecting;
    if (s == "handshake") return LinkState::handshake;
    if (s == "sync") return LinkState::sync;
    if (s == "none") return LinkState::none;
    return LinkState::unknown;
}

bool parse_master_role(const RespValue& r, RoleInfo* out, HostPort* replicas, size_t cap) noexcept {
    if (r.count < 3 || r.elements[1].type != T::integer || r.elements[2].type != T::array) return false;
    const RespValue& list = r.elements[2];
    out->role = Role::master;
    out->offset = r.elements[1].integer;
    out->replica_count = list.count;
    for (size_t i = 0; i < list.count; i++) {
        const RespValue& e = list.elements[i];
        // [host, port, offset]; the offset is not needed here, but a
        // well-formed entry has one
        HostPort hp;
        long long offset;
        if (e.type != T::array || e.count < 3 || !host_port(e.elements[0], e.elements[1], &hp) ||
            !integer_of(e.elements[2], &offset))
            return false;
        if (i < cap) replicas[i] = hp;
    }
    return true;
}

bool parse_replica_role(const RespValue& r, RoleInfo* out) noexcept {
    std::string_view state;
    if (r.count < 5 || !host_port(r.elements[1], r.elements[2], &out->primary) || !text(r.elements[3], &state) ||
        state.empty() || !integer_of(r.elements[4], &out->offset))
        return false;
    out->role = Role::replica;
    out->link = link_state_of(state);
    return true;
}

bool parse_sentinel_role(const RespValue& r, RoleInfo* out) noexcept {
    if (r.count < 2 || r.elements[1].type != T::array) return false;
    const RespValue& names = r.elements[1];
    for (size_t i = 0; i < names.count; i++) {
        std::string_view n;
        if (!text(names.elements[i], &n) || n.empty()) return false;
    }
    out->role = Role::sentinel;
    out->master_count = names.count;
    return true;
}

// "s_down,slave,disconnected"
uint32_t flags_of(std::string_view s) noexcept {
    uint32_t f = 0;
    while (!s.empty()) {
        const size_t comma = s.find(',');
        const std::string_view flag = s.substr(0, comma);
        if (flag == "slave") f |= kFlagReplica;
        else if (flag == "s_down") f |= kFlagSDown;
        else if (flag == "o_down") f |= kFlagODown;
        else if (flag == "disconnected") f |= kFlagDisconnected;
        else if (flag == "master_down") f |= kFlagMasterDown;
        else if (flag == "promoted") f |= kFlagPromoted;
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
    }
    return f;
}

}  // namespace

MasterAddr parse_master_addr(const RespValue& reply, HostPort* out) noexcept {
    if (reply.type == T::nil) return MasterAddr::unknown;
    HostPort hp;
    if (reply.type != T::array || reply.count != 2 || !host_port(reply.elements[0], reply.elements[1], &hp))
        return MasterAddr::malformed;
    *out = hp;
    return MasterAddr::known;
}

bool parse_role(const RespValue& reply, RoleInfo* out, HostPort* replicas, size_t cap) noexcept {
    if (reply.type != T::array || reply.count == 0) return false;
    if (!replicas) cap = 0;
    *out = RoleInfo();
    const RespValue& kind = reply.elements[0];
    if (is(kind, "master")) return parse_master_role(reply, out, replicas, cap);
    if (is(kind, "slave")) return parse_replica_role(reply, out);
    if (is(kind, "sentinel")) return parse_sentinel_role(reply, out);
    return false;
}

std::string_view link_state_name(LinkState s) noexcept {
    switch (s) {
        case LinkState::none: return "none";
        case LinkState::connect: return "connect";
        case LinkState::connecting: return "connecting";
        case LinkState::handshake: return "handshake";
        case LinkState::sync: return "sync";
        case LinkState::connected: return "connected";
        case LinkState::unknown: break;
    }
    return "unknown";
}

bool parse_sentinel_replica(const RespValue& entry, SentinelReplica* out) noexcept {
    if (entry.type != T::array || entry.count % 2 != 0) return false;
    const RespValue *ip = nullptr, *port = nullptr, *mhost = nullptr, *mport = nullptr;
    SentinelReplica r;
    bool have_flags = false;
    for (size_t i = 0; i < entry.count; i += 2) {
        std::string_view key, value;
        if (!text(entry.elements[i], &key)) return false;
        const RespValue& v = entry.elements[i + 1];
        // A field given twice: which one is right? Neither.
        if (key == "ip") {
            if (ip) return false;
            ip = &v;
        } else if (key == "port") {
            if (port) return false;
            port = &v;
        } else if (key == "flags") {
            if (have_flags || !text(v, &value)) return false;
            have_flags = true;
            r.flags = flags_of(value);
        } else if (key == "master-link-status") {
            if (!text(v, &value)) return false;
            r.link_ok = value == "ok";
        } else if (key == "master-host") {
            mhost = &v;
        } else if (key == "master-port") {
            mport = &v;
        } else if (key == "slave-repl-offset") {
            if (!integer_of(v, &r.repl_offset)) return false;
        }
    }
    if (!ip || !port || !have_flags || !host_port(*ip, *port, &r.addr)) return false;
    // A replica that has not reported its primary yet says "?" and 0: not
    // an error, just nothing known.
    if (mhost && mport && !host_port(*mhost, *mport, &r.primary)) r.primary = HostPort();
    *out = r;
    return true;
}

bool parse_sentinel_replicas(const RespValue& reply, SentinelReplica* out, size_t cap, size_t* count) noexcept {
    if (reply.type != T::array) return false;
    if (!out) cap = 0;
    for (size_t i = 0; i < reply.count; i++) {
        SentinelReplica r;
        if (!parse_sentinel_replica(reply.elements[i], &r)) return false;
        if (i < cap) out[i] = r;
    }
    *count = reply.count;
    return true;
}

bool parse_switch_master(std::string_view message, SwitchMaster* out) noexcept {
    std::string_view f[5];
    size_t start = 0;
    for (size_t i = 0; i < 5; i++) {
        const size_t sp = i < 4 ? message.find(' ', start) : std::string_view::npos;
        if (i < 4 && sp == std::string_view::npos) return false;  // fewer than five fields
        f[i] = message.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start);
        if (f[i].empty()) return false;  // two spaces in a row, or a leading or trailing one
        start = sp + 1;
    }
    if (f[4].find(' ') != std::string_view::npos) return false;  // a sixth field
    SwitchMaster m;
    m.name = f[0];
    m.from = {f[1], port_of_text(f[2])};
    m.to = {f[3], port_of_text(f[4])};
    if (!valid_host(m.from.host) || !valid_host(m.to.host) || m.from.port == 0 || m.to.port == 0) return false;
    *out = m;
    return true;
}

}  // namespace consent
