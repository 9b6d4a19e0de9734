// The request path without nginx, beside bare baselines in the same run:
//   - the argument rewrite of a realistic URL (10 arguments, 3 stripped)
//     against a memcpy of the same bytes;
//   - the Cookie rewrite of a 1 KB header against a memcpy of it;
//   - the cache-hit logic (copy a CacheSlot, slot_state), bare and under a
//     compare-and-swap lock like ngx_shmtx, against a memcpy of the slot;
//   - the whole hit path of the handler as bench/macro.py's B4 and B5
//     scenarios drive it: find the token, open it, the cache-hit check,
//     decide, rewrite the arguments, rewrite the Cookie header
//     (issue 5: under 2 us per request on this machine).
// The inputs are in bench/path_fixture.h. Instruction counts of the same
// operations: bench/path_icount.cpp.
// Run: ./dev bench   (or build-release/bench/path_bench); ratios by bench/ratios.py.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstring>

#include "bench/path_fixture.h"

using namespace consent;
using namespace consent::bench;

namespace {

// ---- argument rewrite ------------------------------------------------------

void BM_ArgRewrite(benchmark::State& st) {
    auto& e = env();
    Buffers b(e, e.query);
    for (auto _ : st) {
        NameList names(b.list.data(), b.list.size());
        const QueryRewrite r = arg_rewrite(e, e.query, b, kGranted, &names);
        if (r.removed != kArgsStripped) st.SkipWithError("wrong number of arguments removed");
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
    st.counters["bytes"] = static_cast<double>(e.query.size());
}
BENCHMARK(BM_ArgRewrite);

// Nothing to strip (every purpose granted): the query is copied as it came.
void BM_ArgRewriteKeepAll(benchmark::State& st) {
    auto& e = env();
    Buffers b(e, e.query);
    for (auto _ : st) {
        NameList names(b.list.data(), b.list.size());
        benchmark::DoNotOptimize(arg_rewrite(e, e.query, b, kDeclared, &names));
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_ArgRewriteKeepAll);

void BM_MemcpyQuery(benchmark::State& st) {
    auto& e = env();
    std::vector<char> out(e.query.size());
    for (auto _ : st) {
        benchmark::DoNotOptimize(out.data());
        std::memcpy(out.data(), e.query.data(), e.query.size());
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_MemcpyQuery);

// The split of the query that finds the token argument, on every request
// with arguments.
void BM_FindTokenArg(benchmark::State& st) {
    auto& e = env();
    Buffers b(e, e.query);
    std::string_view v;
    for (auto _ : st) {
        b.used = 0;
        Segments t;
        benchmark::DoNotOptimize(scan_query(e.query, &e.args, kTokenArg, &t, b.arena()) &&
                                 token_value(e.query, t, &v));
    }
}
BENCHMARK(BM_FindTokenArg);

// ---- Cookie rewrite ----------------------------------------------------------

void BM_CookieRewrite(benchmark::State& st) {
    auto& e = env();
    Buffers b(e, e.query);
    for (auto _ : st) {
        NameList names(b.list.data(), b.list.size());
        const CookieRewrite r = cookie_rewrite(e, b, kGranted, &names);
        if (r.removed != kCookiesStripped) st.SkipWithError("wrong number of cookies removed");
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
    st.counters["bytes"] = static_cast<double>(e.cookie.size());
}
BENCHMARK(BM_CookieRewrite);

void BM_MemcpyCookie(benchmark::State& st) {
    auto& e = env();
    std::vector<char> out(e.cookie.size());
    for (auto _ : st) {
        benchmark::DoNotOptimize(out.data());
        std::memcpy(out.data(), e.cookie.data(), e.cookie.size());
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_MemcpyCookie);

// The split of the same header that finds the UID cookie.
void BM_FindUidCookie(benchmark::State& st) {
    auto& e = env();
    Buffers b(e, e.query);
    std::string_view v;
    for (auto _ : st) {
        b.used = 0;
        Segments t;
        benchmark::DoNotOptimize(scan_cookie_header(e.cookie, &e.cookies, kUidCookie, &t, b.arena()) &&
                                 uid_value(e.cookie, t, &v));
    }
}
BENCHMARK(BM_FindUidCookie);

// ---- cache hit ------------------------------------------------------------------

void BM_CacheSlotCheck(benchmark::State& st) {
    auto& e = env();
    for (auto _ : st) {
        benchmark::DoNotOptimize(&e.shared_slot);
        CacheSlot slot = e.shared_slot;
        benchmark::DoNotOptimize(slot_state(slot, e.clock));
    }
}
BENCHMARK(BM_CacheSlotCheck);

// As ngx_http_consent_cache_get holds it: a compare-and-swap lock around the
// copy (ngx_shmtx_lock is ngx_atomic_cmp_set on a word in shared memory),
// uncontended here. Without the rbtree walk and the LRU move.
void BM_CacheSlotCheckLocked(benchmark::State& st) {
    auto& e = env();
    static std::atomic<uintptr_t> lock{0};
    for (auto _ : st) {
        uintptr_t expected = 0;
        while (!lock.compare_exchange_strong(expected, 1, std::memory_order_acquire)) expected = 0;
        CacheSlot slot = e.shared_slot;
        lock.store(0, std::memory_order_release);
        benchmark::DoNotOptimize(slot_state(slot, e.clock));
    }
}
BENCHMARK(BM_CacheSlotCheckLocked);

void BM_MemcpySlot(benchmark::State& st) {
    auto& e = env();
    CacheSlot slot;
    for (auto _ : st) {
        benchmark::DoNotOptimize(&e.shared_slot);
        std::memcpy(static_cast<void*>(&slot), &e.shared_slot, sizeof slot);
        benchmark::DoNotOptimize(&slot);
        benchmark::ClobberMemory();
    }
}
BENCHMARK(BM_MemcpySlot);

// ---- the whole hit path -------------------------------------------------------

void hit_bench(benchmark::State& st, bool purl, bool pseudonym, bool memo = false) {
    auto& e = env();
    const std::string& query = purl ? e.purl_query : e.query;
    Buffers b(e, query);
    TokenMemo token_memo(4096);
    const size_t want = (purl ? kArgsStripped + 1 : kArgsStripped) + kCookiesStripped;
    for (auto _ : st) {
        const size_t removed = hit_path(e, query, b, pseudonym, memo ? &token_memo : nullptr);
        if (removed != want) st.SkipWithError("the hit path did not strip what it should");
        benchmark::ClobberMemory();
    }
}

// B4: the UID cookie, a cache hit, 3 arguments and 5 cookies stripped.
void BM_HitPathUid(benchmark::State& st) { hit_bench(st, false, false); }
BENCHMARK(BM_HitPathUid);
// B4 with $consent_subject (the pseudonym) in a proxy_set_header.
void BM_HitPathUidPseudonym(benchmark::State& st) { hit_bench(st, false, true); }
BENCHMARK(BM_HitPathUidPseudonym);
// B5: the PURL token argument and the UID cookie: two opens.
void BM_HitPathPurlUid(benchmark::State& st) { hit_bench(st, true, false); }
BENCHMARK(BM_HitPathPurlUid);
void BM_HitPathPurlUidPseudonym(benchmark::State& st) { hit_bench(st, true, true); }
BENCHMARK(BM_HitPathPurlUidPseudonym);
// The same as the module runs them for a returning visitor: the tokens and
// the pseudonym come from the worker's memo (crypto/token_memo.h).
void BM_HitPathUidPseudonymMemo(benchmark::State& st) { hit_bench(st, false, true, true); }
BENCHMARK(BM_HitPathUidPseudonymMemo);
void BM_HitPathPurlUidPseudonymMemo(benchmark::State& st) { hit_bench(st, true, true, true); }
BENCHMARK(BM_HitPathPurlUidPseudonymMemo);

// The UID token open alone, for its share of the hit path.
void BM_OpenUid(benchmark::State& st) {
    auto& e = env();
    TokenHeader h;
    TokenClaims c;
    for (auto _ : st) benchmark::DoNotOptimize(open_token(e.uid, ExpectKind::uid, e.ring, kNow, &h, &c));
}
BENCHMARK(BM_OpenUid);

}  // namespace

BENCHMARK_MAIN();
