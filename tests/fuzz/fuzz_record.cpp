// fuzz_record: the consent record parser, update messages, record keys and
// the cache rules. The last input byte picks the mode:
//
//   0  parse_record over a fuzzer-built HGETALL reply: from the end, the
//      number of declared purposes (0..34, of which at most 32 count) and
//      the number of items (0..40); then '\'-terminated item strings.
//      Properties: a purpose is granted only when the last value of its
//      field is exactly "1", denied when it is anything else; a malformed v,
//      exp, rev or erased, or an odd item count, is `malformed` and never yields
//      a record; no items is `none`; otherwise every field matches a
//      reference parser, and *out is written only for `ok`.
//   1  parse_update over the remaining bytes, against a reference; a parsed
//      subject lies inside the message; record_key of it is
//      prefix "{" subject "}" and writes nothing past its size.
//   2  slot_announce / slot_store / slot_state with arbitrary versions,
//      times and clocks: slot_state matches the documented rule, a slot is
//      never fresh holding a version older than the highest announced, and
//      a refused store leaves the slot unchanged.
//   3  a small world: Redis writes announce their version on the channel
//      (messages queue, and are lost while unsubscribed), reads snapshot
//      Redis and complete later, the subscription drops and comes back, the
//      clock only moves forward. Reads are stored with the time they were
//      sent, unless the slot holds a newer version (slot_holds_newer), as
//      the edge does. A second replica, which the subscription does not
//      hear, catches up with Redis when the input says so, by any number
//      of versions; its reads are stored only as slot_may_advance allows,
//      held only when it says so. Property: a fresh slot with no
//      announcement still queued holds exactly what Redis holds now.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/cache_rules.h"
#include "store/record.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;
using fuzz::show;

namespace {

const std::string kNames[34] = {"service", "analysis", "marketing", "ads", "p4",  "p5",  "p6",  "p7",  "p8",
                                "p9",      "p10",      "p11",       "p12", "p13", "p14", "p15", "p16", "p17",
                                "p18",     "p19",      "p20",       "p21", "p22", "p23", "p24", "p25", "p26",
                                "p27",     "p28",      "p29",       "p30", "p31", "p32", "p33"};

// Digits only, at least one, at most UINT64_MAX: compared as text.
bool ref_u64(std::string_view s, uint64_t* out) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    size_t z = 0;
    while (z + 1 < s.size() && s[z] == '0') z++;
    const std::string_view d = s.substr(z);
    if (d.size() > 20 || (d.size() == 20 && d > "18446744073709551615")) return false;
    uint64_t v = 0;
    for (char c : d) v = v * 10 + static_cast<uint64_t>(c - '0');
    *out = v;
    return true;
}

bool same(const Record& a, const Record& b) {
    return a.version == b.version && a.granted == b.granted && a.denied == b.denied && a.has_exp == b.has_exp &&
           a.exp == b.exp && a.erased == b.erased && a.rev == b.rev;
}

void fuzz_parse_record(FuzzedDataProvider& fdp) {
    const size_t declared = fdp.ConsumeIntegralInRange<size_t>(0, 34);
    const size_t n = fdp.ConsumeIntegralInRange<size_t>(0, 40);
    std::vector<std::string> items;
    for (size_t i = 0; i < n; i++) items.push_back(fdp.ConsumeRandomLengthString(100));
    // Exact-size heap copies of each item, and of the item array itself.
    std::vector<std::unique_ptr<char[]>> bufs;
    std::unique_ptr<std::string_view[]> views(new std::string_view[n]);
    for (size_t i = 0; i < n; i++) {
        bufs.emplace_back(new char[items[i].size()]);
        if (!items[i].empty()) std::memcpy(bufs.back().get(), items[i].data(), items[i].size());
        views[i] = std::string_view(bufs.back().get(), items[i].size());
    }
    std::unique_ptr<std::string_view[]> names(new std::string_view[declared]);
    for (size_t i = 0; i < declared; i++) names[i] = kNames[i];
    const PurposeNames purposes{names.get(), declared};

    Record sentinel;
    sentinel.version = 0xdeadbeef;
    sentinel.granted = 0x5a5a5a5a;
    Record got = sentinel;
    const RecordParse st = parse_record(views.get(), n, purposes, &got);

    // The reference.
    RecordParse want_st = RecordParse::ok;
    Record want;
    std::vector<int> last(kMaxPurposes, -1);  // item index of each purpose's last value
    if (n == 0) want_st = RecordParse::none;
    else if (n % 2) want_st = RecordParse::malformed;
    for (size_t i = 0; want_st == RecordParse::ok && i < n; i += 2) {
        const std::string& f = items[i];
        const std::string& v = items[i + 1];
        if (f == "v") {
            if (!ref_u64(v, &want.version)) want_st = RecordParse::malformed;
        } else if (f == "exp") {
            if (!ref_u64(v, &want.exp)) want_st = RecordParse::malformed;
            want.has_exp = true;
        } else if (f == "rev") {
            if (!ref_u64(v, &want.rev)) want_st = RecordParse::malformed;
        } else if (f == "erased") {
            if (v != "0" && v != "1") want_st = RecordParse::malformed;
            want.erased = v == "1";
        } else {
            for (size_t p = 0; p < declared && p < kMaxPurposes; p++)
                if (f == kNames[p]) last[p] = static_cast<int>(i + 1);
        }
    }
    for (size_t p = 0; p < kMaxPurposes; p++) {
        if (last[p] < 0) continue;
        (items[last[p]] == "1" ? want.granted : want.denied) |= purpose_bit(static_cast<unsigned>(p));
    }

    FUZZ_CHECK(st == want_st, "parse_record returned %d, reference %d", static_cast<int>(st),
               static_cast<int>(want_st));
    if (st != RecordParse::ok) {
        FUZZ_CHECK(same(got, sentinel), "*out written for a %s reply", st == RecordParse::none ? "none" : "malformed");
        return;
    }
    // The headline rule, stated on its own: only an exact "1" grants.
    for (unsigned p = 0; p < kMaxPurposes; p++) {
        if (!(got.granted & purpose_bit(p))) continue;
        FUZZ_CHECK(p < declared && last[p] >= 0 && items[last[p]] == "1", "purpose %u granted by %s", p,
                   last[p] >= 0 ? show(items[last[p]]).c_str() : "nothing");
    }
    FUZZ_CHECK((got.granted & got.denied) == 0, "granted and denied overlap");
    FUZZ_CHECK(same(got, want), "record differs from the reference: v %llu/%llu granted %x/%x denied %x/%x",
               static_cast<unsigned long long>(got.version), static_cast<unsigned long long>(want.version),
               got.granted, want.granted, got.denied, want.denied);
}

void fuzz_update(FuzzedDataProvider& fdp) {
    const std::string msg_s = fdp.ConsumeRemainingBytesAsString();
    std::unique_ptr<char[]> buf(new char[msg_s.size()]);
    if (!msg_s.empty()) std::memcpy(buf.get(), msg_s.data(), msg_s.size());
    // An empty input is passed as a default string_view, {nullptr, 0}, as
    // callers do: UBSan then checks that nothing memcpy()s from it.
    const std::string_view msg = msg_s.empty() ? std::string_view() : std::string_view(buf.get(), msg_s.size());

    UpdateMessage got;
    const bool ok = parse_update(msg, &got);
    bool want_ok = false;
    UpdateMessage want;
    if (msg == "*") {
        want_ok = true;
        want.flush_all = true;
    } else if (const size_t sp = msg.rfind(' '); sp != std::string_view::npos) {
        const std::string_view subj = msg.substr(0, sp);
        bool printable = !subj.empty() && subj.size() <= 64;
        for (unsigned char c : subj) printable &= c >= 0x20 && c <= 0x7e;
        want.subject = subj;
        want_ok = printable && ref_u64(msg.substr(sp + 1), &want.version);
    }
    FUZZ_CHECK(ok == want_ok, "parse_update(%s) = %d, reference %d", show(msg).c_str(), ok, want_ok);
    if (!ok) return;
    FUZZ_CHECK(got.flush_all == want.flush_all, "flush_all of %s", show(msg).c_str());
    if (got.flush_all) {
        FUZZ_CHECK(got.subject.empty() && got.version == 0, "flush with a subject");
        return;
    }
    FUZZ_CHECK(got.subject == want.subject && got.version == want.version, "parse_update(%s) = %s %llu",
               show(msg).c_str(), show(got.subject).c_str(), static_cast<unsigned long long>(got.version));
    FUZZ_CHECK(got.subject.data() >= msg.data() && got.subject.data() + got.subject.size() <= msg.data() + msg.size(),
               "subject outside the message");

    const std::string_view prefix = "consent:";
    const size_t cap = prefix.size() + got.subject.size() + 2;
    std::unique_ptr<char[]> key(new char[cap]);
    const size_t len = record_key(prefix, got.subject, key.get());
    FUZZ_CHECK(std::string_view(key.get(), len) == std::string(prefix) + "{" + std::string(got.subject) + "}",
               "record_key");
}

uint64_t held(const CacheSlot& s) { return s.exists ? s.record.version : 0; }

// The documented rule (cache_rules.h), written out: fresh only when fetched
// strictly after the subscription began.
SlotState ref_state(const CacheSlot& s, const CacheClock& c) {
    if (!s.filled || s.held_only || !c.subscribed || s.fetched_ms <= c.valid_since_ms) return SlotState::stale;
    const bool within_ttl = c.now_ms < s.fetched_ms ||
                            static_cast<unsigned __int128>(c.now_ms) <
                                static_cast<unsigned __int128>(s.fetched_ms) + c.ttl_ms;
    if (!within_ttl || s.announced > held(s)) return SlotState::stale;
    return SlotState::fresh;
}

bool same(const CacheSlot& a, const CacheSlot& b) {
    return a.fetched_ms == b.fetched_ms && a.announced == b.announced && a.filled == b.filled &&
           a.exists == b.exists && a.held_only == b.held_only && same(a.record, b.record);
}

// Stores and checks the store rule; returns whether it was accepted.
bool store(CacheSlot* slot, const Record* rec, uint64_t at, uint64_t max_announced, bool held_only = false) {
    const CacheSlot before = *slot;
    const bool ok = slot_store(slot, rec, at, held_only);
    const uint64_t v = rec ? rec->version : 0;
    FUZZ_CHECK(ok == (v >= max_announced), "slot_store of version %llu with %llu announced: %d",
               static_cast<unsigned long long>(v), static_cast<unsigned long long>(max_announced), ok);
    if (!ok) {
        FUZZ_CHECK(same(*slot, before), "a refused store changed the slot");
    } else {
        FUZZ_CHECK(slot->filled && slot->exists == (rec != nullptr) && slot->fetched_ms == at &&
                       slot->held_only == held_only &&
                       slot->announced == before.announced && (!rec || same(slot->record, *rec)),
                   "an accepted store did not store");
    }
    return ok;
}

SlotState check_state(const CacheSlot& slot, const CacheClock& clock, uint64_t max_announced) {
    FUZZ_CHECK(slot.announced == max_announced, "announced %llu, highest announcement %llu",
               static_cast<unsigned long long>(slot.announced), static_cast<unsigned long long>(max_announced));
    const SlotState st = slot_state(slot, clock);
    FUZZ_CHECK(st == ref_state(slot, clock), "slot_state differs from the documented rule");
    if (st == SlotState::fresh)
        FUZZ_CHECK(held(slot) >= max_announced, "fresh slot holds version %llu, %llu was announced",
                   static_cast<unsigned long long>(held(slot)), static_cast<unsigned long long>(max_announced));
    return st;
}

void fuzz_slot_api(FuzzedDataProvider& fdp) {
    CacheSlot slot;
    CacheClock clock;
    clock.ttl_ms = fdp.ConsumeIntegral<uint64_t>();
    clock.subscribed = fdp.ConsumeBool();
    uint64_t max_announced = 0;
    for (int step = 0; step < 256 && fdp.remaining_bytes(); step++) {
        switch (fdp.ConsumeIntegralInRange<int>(0, 7)) {
            case 0: {
                const uint64_t v = fdp.ConsumeIntegral<uint64_t>();
                slot_announce(&slot, v);
                if (v > max_announced) max_announced = v;
                break;
            }
            case 1: {
                Record r;
                r.version = fdp.ConsumeIntegral<uint64_t>();
                r.granted = fdp.ConsumeIntegral<uint32_t>();
                const bool exists = fdp.ConsumeBool();
                store(&slot, exists ? &r : nullptr, clock.now_ms, max_announced, fdp.ConsumeBool());
                break;
            }
            case 2: clock.now_ms = fdp.ConsumeIntegral<uint64_t>(); break;
            case 3: clock.now_ms += fdp.ConsumeIntegral<uint16_t>(); break;
            case 4: clock.ttl_ms = fdp.ConsumeIntegral<uint64_t>(); break;
            case 5: clock.subscribed = fdp.ConsumeBool(); break;
            case 6: clock.valid_since_ms = fdp.ConsumeIntegral<uint64_t>(); break;
            case 7: clock.valid_since_ms = clock.now_ms; break;
        }
        check_state(slot, clock, max_announced);
    }
}

struct Read {
    bool exists;
    uint64_t version;
    uint64_t sent_ms;
    bool other;  // read from the replica the subscription does not hear
};

void fuzz_world(FuzzedDataProvider& fdp) {
    CacheSlot slot;
    CacheClock clock;
    clock.now_ms = 1000;
    clock.ttl_ms = fdp.ConsumeIntegralInRange<uint64_t>(1, 100000);
    clock.subscribed = true;
    bool redis_exists = false;
    uint64_t redis_version = 0, max_announced = 0;
    uint64_t other_version = 0;  // the other replica's: behind Redis or level, never ahead
    std::deque<uint64_t> queued;  // published, not delivered yet
    std::vector<Read> inflight;
    static const bool trace = std::getenv("FUZZ_TRACE") != nullptr;
    for (int step = 0; step < 256 && fdp.remaining_bytes(); step++) {
        const int op = fdp.ConsumeIntegralInRange<int>(0, 9);
        if (trace)
            std::fprintf(stderr, "now %llu sub %d since %llu redis v%llu queued %zu inflight %zu | op %d\n",
                         static_cast<unsigned long long>(clock.now_ms), clock.subscribed,
                         static_cast<unsigned long long>(clock.valid_since_ms),
                         static_cast<unsigned long long>(redis_version), queued.size(), inflight.size(), op);
        switch (op) {
            case 0:  // a write, announced on the channel
                redis_exists = true;
                redis_version++;
                if (clock.subscribed) queued.push_back(redis_version);
                break;
            case 1:  // the next message arrives
                if (!queued.empty()) {
                    slot_announce(&slot, queued.front());
                    if (queued.front() > max_announced) max_announced = queued.front();
                    queued.pop_front();
                }
                break;
            case 2:  // a read is sent; Redis answers from what it holds now
                if (inflight.size() < 8) inflight.push_back({redis_exists, redis_version, clock.now_ms, false});
                break;
            case 3:  // a read's reply arrives (replies may come in any order: several connections)
                if (!inflight.empty()) {
                    const size_t i = fdp.ConsumeIntegralInRange<size_t>(0, inflight.size() - 1);
                    const Read r = inflight[i];
                    inflight.erase(inflight.begin() + static_cast<long>(i));
                    Record rec;
                    rec.version = r.version;
                    // as the edge does: a newer slot answers, and is kept
                    const Record* read = r.exists ? &rec : nullptr;
                    if (slot_holds_newer(slot, read, clock, 0)) {  // servers never restarted
                        FUZZ_CHECK(slot.exists && held(slot) > r.version && slot.fetched_ms > clock.flushed_ms,
                                   "slot_holds_newer for a slot that is not newer");
                    } else if (!r.other) {
                        store(&slot, read, r.sent_ms, max_announced);
                    } else {
                        const Advance adv = slot_may_advance(slot, read, clock);
                        if (adv != Advance::no) {
                            FUZZ_CHECK(slot.filled && r.version > held(slot), "advance to an older version");
                            store(&slot, read, r.sent_ms, max_announced, adv == Advance::held_only);
                        }
                    }
                }
                break;
            case 4: clock.now_ms += fdp.ConsumeIntegralInRange<uint64_t>(0, 5000); break;
            case 5:  // the subscription drops: what was queued is lost
                clock.subscribed = false;
                queued.clear();
                break;
            case 6:  // it comes back: nothing cached before now can be trusted
                if (!clock.subscribed) {
                    clock.subscribed = true;
                    clock.valid_since_ms = clock.now_ms;
                }
                break;
            case 7:  // "*": flush everything (only a subscriber hears it)
                if (clock.subscribed) clock.valid_since_ms = clock.flushed_ms = clock.now_ms;
                break;
            case 8:  // the other replica applies some of the writes it is behind by
                other_version = fdp.ConsumeIntegralInRange<uint64_t>(other_version, redis_version);
                break;
            case 9:  // a read of the other replica is sent
                if (inflight.size() < 8) inflight.push_back({other_version > 0, other_version, clock.now_ms, true});
                break;
        }
        const SlotState st = check_state(slot, clock, max_announced);
        if (st == SlotState::fresh && queued.empty()) {
            FUZZ_CHECK(slot.exists == redis_exists && held(slot) == redis_version,
                       "fresh slot serves version %llu (exists %d), Redis holds %llu (exists %d)",
                       static_cast<unsigned long long>(held(slot)), slot.exists,
                       static_cast<unsigned long long>(redis_version), redis_exists);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider fdp(data, size);
    switch (fdp.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: fuzz_parse_record(fdp); break;
        case 1: fuzz_update(fdp); break;
        case 2: fuzz_slot_api(fdp); break;
        case 3: fuzz_world(fdp); break;
    }
    return 0;
}
