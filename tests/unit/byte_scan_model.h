// What scan::find_pair must return, one byte at a time: the model both
// byte_scan_test (with SSE2) and byte_scan_portable (without) check it
// against.
#pragma once

#include "policy/byte_scan.h"

namespace consent {
namespace test {

inline scan::PairEnds find_pair_model(const char* p, const char* end, char sep, char mark) {
    scan::PairEnds r{end, end, false};
    const char* q = p;
    while (q < end && *q != '=' && *q != sep) r.marked |= *q++ == mark;
    r.name_end = q;
    if (q < end && *q == '=') {
        while (q < end && *q != sep) q++;
    }
    r.end = q;
    return r;
}

}  // namespace test
}  // namespace consent
