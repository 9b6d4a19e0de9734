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

#include "policy/segments.h"
#include "policy/strip_rules.h"

namespace consent {

// Longest decoded argument name that is matched; longer names are compared
// by their raw bytes only (they cannot be any configured name or pattern of
// that length, since directive arguments are checked against this limit).
constexpr size_t kMaxArgName = 256;

// Percent-decodes `in` (%XX only; '+' and malformed escapes stay literal)
// into `out`. Returns the decoded length, or -1 when `cap` is too small.
long percent_decode(std::string_view in, char* out, size_t cap) noexcept;

struct QueryRewrite {
    size_t len = 0;       // bytes written to out
    size_t removed = 0;   // arguments removed
};

// Splits `query` once (the extract step): every non-empty argument, with
// the purposes `rules` (may be null) give its percent-decoded name, and
// whether that name is `token_name` (ASCII case-insensitive; may be
// empty). False when the arena fails.
bool scan_query(std::string_view query, const StripRules* rules, std::string_view token_name,
                Segments* table, const SegmentArena& arena) noexcept;

// The raw, still encoded, value of the first token argument in a scanned
// query.
bool token_value(std::string_view query, const Segments& table, std::string_view* raw_value) noexcept;

// Writes the scanned query without the arguments `removal` removes into
// `out`, which must hold query.size() bytes.
QueryRewrite emit_query(std::string_view query, const Segments& table, const Removal& removal, char* out) noexcept;

// Adds each argument name `removal` removes to `names`: decoded when
// listable, else raw when that is listable, else not at all.
void list_removed_args(std::string_view query, const Segments& table, const Removal& removal,
                       NameList* names) noexcept;

// The token in URLs a request carries besides its own target: the Referer
// header, and the request line as logs print it. The same scan and emit
// remove it there; these find the query and put the rest back around it.
enum class UrlText {
    url,           // the query ends at '#'
    request_line,  // "METHOD target PROTOCOL": the query ends at ' '
};

// The query of `text`: after its first '?', up to the end of the query
// (see UrlText). Empty (with data() null) when `text` has no '?'.
std::string_view url_query(std::string_view text, UrlText kind) noexcept;

// Whether the query of `text` (a URL or a request line) may hold an
// argument named `name`: some byte after a '?' or an '&' begins name's
// first letter (either case) and then `name` and the end of a name, or is,
// or begins a name holding, a '%' (it may decode to `name`). False means
// scan_query of url_query(text) would find no such argument; true may
// still find none ('&' in a path, '?' inside a query, a '#fragment'). It
// looks at every byte once, sixteen or thirty-two at a time, so the URLs
// that carry no token, nearly all, cost about one instruction per byte.
bool url_may_name(std::string_view text, std::string_view name) noexcept;

// `text`, of which `query` is a part, with `kept` in place of `query`;
// without its '?' when `kept` is empty. `out` must hold text.size() bytes
// (kept is never longer than query). Returns the length written.
size_t splice_query(std::string_view text, std::string_view query, std::string_view kept, char* out) noexcept;

// The three steps in one, for tests and tools (heap memory):
//
// find_query_arg: the raw value of the first argument named `name`.
bool find_query_arg(std::string_view query, std::string_view name, std::string_view* raw_value);

// rewrite_query: the query without what `policy` removes, into `out` (which
// must hold query.size() bytes); removed names go to `names` if not null.
QueryRewrite rewrite_query(std::string_view query, const StripPolicy& policy, char* out, NameList* names);

// drop_url_arg: `text` without the arguments named `name` in its query,
// into `out` (which must hold text.size() bytes); .removed counts them.
QueryRewrite drop_url_arg(std::string_view text, UrlText kind, std::string_view name, char* out);

}  // namespace consent
