// The query string (the bytes after '?') as a list of '&'-separated
// arguments, matched by percent-decoded name.
//
// The rewrite keeps every byte of every argument it keeps, in order, and
// leaves no dangling '&'. Empty segments ("a=1&&b=2") carry no argument:
// when an argument is removed they go too; when nothing is removed the
// query is left exactly as it came.
#pragma once

#include <cstddef>
#include <string_view>

#include "policy/strip_rules.h"

namespace consent {

// Longest decoded argument name that is matched; longer names are compared
// by their raw bytes only (they cannot be any configured name or pattern of
// that length, since directive arguments are checked against this limit).
constexpr size_t kMaxArgName = 256;

// Percent-decodes `in` (%XX only; '+' and malformed escapes stay literal)
// into `out`. Returns the decoded length, or -1 when `cap` is too small.
long percent_decode(std::string_view in, char* out, size_t cap) noexcept;

// Finds the first argument whose decoded name equals `name` (ASCII
// case-insensitive) and returns its raw, still encoded, value.
bool find_query_arg(std::string_view query, std::string_view name, std::string_view* raw_value) noexcept;

struct QueryRewrite {
    size_t len = 0;       // bytes written to out
    size_t removed = 0;   // arguments removed
};

// Writes the query without the arguments `policy` removes into `out`, which
// must hold query.size() bytes. Each removed name goes to `names` (decoded
// when listable, else raw), if `names` is not null.
QueryRewrite rewrite_query(std::string_view query, const StripPolicy& policy, char* out, NameList* names) noexcept;

}  // namespace consent
