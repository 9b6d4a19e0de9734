// Instruction counts of the request path without nginx, for callgrind:
// `path_icount OP N` runs OP N times (bench/icount.sh runs it at two values
// of N, so setup cancels out). The inputs are path_bench's
// (bench/path_fixture.h).
//   arg-rewrite     split, rewrite and list the query, 10 arguments, 3 removed
//   memcpy-query    memcpy of the same bytes
//   cookie-rewrite  split, rewrite and list the 1 KB Cookie header, 5 removed
//   memcpy-cookie   memcpy of the same bytes
//   find-cookie     split the 1 KB header and find the UID cookie in it
//   open-uid        open_token of the UID cookie's token
//   hit-uid         the whole hit path of B4 (UID cookie)
//   hit-purl        the whole hit path of B5 (PURL token and UID cookie)
//   hit-uid-memo    hit-uid with $consent_subject, tokens through the memo
//   hit-purl-memo   hit-purl the same way (a returning visitor)
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/path_fixture.h"

using namespace consent;
using namespace consent::bench;

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const std::string op = argv[1];
    const long n = std::atol(argv[2]);
    Env& e = env();
    Buffers b(e, e.purl_query);
    TokenHeader h;
    TokenClaims c;
    std::string_view v;
    TokenMemo memo(4096);

    static const char* const kOps[] = {"arg-rewrite", "memcpy-query", "cookie-rewrite", "memcpy-cookie",
                                       "find-cookie", "open-uid", "hit-uid", "hit-purl",
                                       "hit-uid-memo", "hit-purl-memo"};
    int which = -1;
    for (int k = 0; k < 10; k++)
        if (op == kOps[k]) which = k;
    if (which < 0) return 2;

    long ok = 0;
    for (long i = 0; i < n; i++) {
        switch (which) {
        case 0: {
            NameList names(b.list.data(), b.list.size());
            ok += arg_rewrite(e, e.query, b, kGranted, &names).removed == kArgsStripped;
            break;
        }
        case 1:
            keep(b.args.data());
            std::memcpy(b.args.data(), e.query.data(), e.query.size());
            keep(b.args.data());
            ok++;
            break;
        case 2: {
            NameList names(b.list.data(), b.list.size());
            ok += cookie_rewrite(e, b, kGranted, &names).removed == kCookiesStripped;
            break;
        }
        case 3:
            keep(b.cookie.data());
            std::memcpy(b.cookie.data(), e.cookie.data(), e.cookie.size());
            keep(b.cookie.data());
            ok++;
            break;
        case 4: {
            b.used = 0;
            Segments t;
            ok += scan_cookie_header(e.cookie, &e.cookies, kUidCookie, &t, b.arena()) &&
                  uid_value(e.cookie, t, &v);
            break;
        }
        case 5:
            ok += open_token(e.uid, ExpectKind::uid, e.ring, kNow, &h, &c) == TokenStatus::valid;
            break;
        case 6:
            ok += hit_path(e, e.query, b, false) == kArgsStripped + kCookiesStripped;
            break;
        case 7:
            ok += hit_path(e, e.purl_query, b, false) == kArgsStripped + 1 + kCookiesStripped;
            break;
        case 8:
            ok += hit_path(e, e.query, b, true, &memo) == kArgsStripped + kCookiesStripped;
            break;
        default:
            ok += hit_path(e, e.purl_query, b, true, &memo) == kArgsStripped + 1 + kCookiesStripped;
            break;
        }
    }
    return ok == n ? 0 : 1;
}
