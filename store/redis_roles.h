// What Redis servers and Sentinels say about who is primary, as plain data:
//
//   ROLE                                   master (with its replicas), replica
//                                          (its primary and link state), sentinel
//   SENTINEL get-master-addr-by-name NAME  the primary's host and port, or nil
//   SENTINEL replicas NAME                 each replica: address, flags, link
//   +switch-master (a Sentinel's channel)  "NAME OLDHOST OLDPORT NEWHOST NEWPORT"
//
// Pure: no I/O, no allocation, no nginx and no hiredis header. Replies come
// in as RespValue, a minimal non-owning tree that consentctl (cli/reply_view.h)
// and the module each build from hiredis' redisReply in a few lines; results
// hold string_views into that tree (or into the message), so they live as
// long as the reply does.
//
// Every parser treats its input as untrusted: a reply of the wrong shape,
// a missing field, a port outside 1..65535 or a host that is empty, longer
// than kMaxHost or holds a space or control byte is refused as a whole
// (`malformed` / false), never half-read. The Sentinel client rules count
// such an answer as a failed Sentinel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace consent {

// One RESP reply. RESP3 aggregates (map, set, push) are given as arrays, a
// map as its keys and values in turn, as RESP2 sends them; a RESP3 double,
// boolean or big number as `other`.
struct RespValue {
    enum class Type : uint8_t { nil, string, status, error, integer, array, other };
    Type type = Type::nil;
    std::string_view str;                 // string, status, error
    long long integer = 0;                // integer
    const RespValue* elements = nullptr;  // array: `count` elements
    size_t count = 0;
};

// The longest host name a reply may carry (a DNS name is at most 253).
constexpr size_t kMaxHost = 255;

struct HostPort {
    std::string_view host;  // non-empty, printable, no space; inside the input
    int port = 0;           // 1..65535
};

// ---- SENTINEL get-master-addr-by-name NAME -------------------------------------------

enum class MasterAddr : uint8_t {
    known,      // *out holds the primary's address
    unknown,    // nil: this Sentinel does not monitor a master of that name
    malformed,  // anything else: an answer that cannot be trusted
};

// The reply is [host, port] (port as a string, as Redis sends it, or an
// integer) or nil. *out is written only for `known`.
MasterAddr parse_master_addr(const RespValue& reply, HostPort* out) noexcept;

// ---- ROLE ----------------------------------------------------------------------------

enum class Role : uint8_t { master, replica, sentinel };

// A replica's replication state, as ROLE names it. Only `connected` means
// the link to the primary is up (INFO's master_link_status:up); a state
// string this code does not know is `unknown`, which is not up either.
enum class LinkState : uint8_t { none, connect, connecting, handshake, sync, connected, unknown };

struct RoleInfo {
    Role role = Role::master;
    long long offset = 0;      // master: its replication offset; replica: the offset it
                               // has processed (-1: none yet)
    size_t replica_count = 0;  // master: how many replicas it lists (all of them, also
                               // those beyond the caller's array)
    HostPort primary;          // replica: the primary it replicates from
    LinkState link = LinkState::none;  // replica: the link to that primary
    size_t master_count = 0;   // sentinel: how many masters it monitors
};

// ROLE's reply:
//   ["master", offset, [[host, port, offset], ...]]
//   ["slave", host, port, state, offset]
//   ["sentinel", [name, ...]]
// A master's replicas go into replicas[0 .. min(replica_count, cap)); the
// array may be null when cap is 0. False, with *out and replicas[] in an
// unspecified state, when the reply is malformed (a replica entry included).
bool parse_role(const RespValue& reply, RoleInfo* out, HostPort* replicas = nullptr, size_t cap = 0) noexcept;

// The replica's link to its primary is up.
constexpr bool link_up(LinkState s) noexcept { return s == LinkState::connected; }

// The name ROLE uses for a state ("connected", ...).
std::string_view link_state_name(LinkState s) noexcept;

// ---- SENTINEL replicas NAME ----------------------------------------------------------

// Flags Sentinel reports for an instance ("s_down,slave,disconnected").
// Flags this code does not know are ignored.
enum ReplicaFlag : uint32_t {
    kFlagReplica = 1u << 0,       // "slave"
    kFlagSDown = 1u << 1,         // "s_down": this Sentinel sees it down
    kFlagODown = 1u << 2,         // "o_down": a quorum sees it down
    kFlagDisconnected = 1u << 3,  // "disconnected": this Sentinel has no link to it
    kFlagMasterDown = 1u << 4,    // "master_down"
    kFlagPromoted = 1u << 5,      // "promoted": being made primary in a failover
};

struct SentinelReplica {
    HostPort addr;          // "ip", "port"
    uint32_t flags = 0;     // "flags", as ReplicaFlag bits
    bool link_ok = false;   // "master-link-status" is "ok" (absent: not ok)
    HostPort primary;       // "master-host", "master-port" when both are valid; else
                            // empty host and port 0 (a replica not yet reporting one)
    long long repl_offset = -1;  // "slave-repl-offset" (-1: absent)
};

// One entry of the reply: a flat list of field names and values. "ip",
// "port" and "flags" are required; other fields are optional, and fields
// this code does not know are ignored.
bool parse_sentinel_replica(const RespValue& entry, SentinelReplica* out) noexcept;

// The whole reply, an array of entries. The first `cap` entries go into
// out[] (may be null when cap is 0); *count gets the number of entries,
// also those that did not fit. False when the reply or any entry is
// malformed.
bool parse_sentinel_replicas(const RespValue& reply, SentinelReplica* out, size_t cap, size_t* count) noexcept;

// A replica Sentinel considers healthy: not down (subjectively or
// objectively), connected to the Sentinel, its link to the primary up.
constexpr bool replica_healthy(const SentinelReplica& r) noexcept {
    return (r.flags & (kFlagSDown | kFlagODown | kFlagDisconnected)) == 0 && r.link_ok;
}

// ---- +switch-master ------------------------------------------------------------------

struct SwitchMaster {
    std::string_view name;  // the master name
    HostPort from, to;      // the old and the new primary
};

// The message of a Sentinel's +switch-master channel: exactly five fields
// separated by single spaces, "NAME OLDHOST OLDPORT NEWHOST NEWPORT".
bool parse_switch_master(std::string_view message, SwitchMaster* out) noexcept;

}  // namespace consent
