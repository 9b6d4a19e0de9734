#include "store/cache_rules.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace consent;

namespace {

constexpr uint64_t kTtl = 60'000;
constexpr uint64_t kT0 = 1'700'000'000'000;  // the subscription began here

Record rec(uint64_t version) {
    Record r;
    r.version = version;
    r.granted = purpose_bit(1);
    return r;
}

CacheClock at(uint64_t now_ms) {
    CacheClock c;
    c.now_ms = now_ms;
    c.ttl_ms = kTtl;
    c.subscribed = true;
    c.valid_since_ms = kT0;
    return c;
}

bool fresh(const CacheSlot& s, uint64_t now_ms) { return slot_state(s, at(now_ms)) == SlotState::fresh; }

}  // namespace

TEST(CacheRules, EmptySlotIsStale) {
    CacheSlot s;
    EXPECT_FALSE(fresh(s, kT0 + 1));
}

TEST(CacheRules, FreshWithinTtlOnly) {
    CacheSlot s;
    const Record r = rec(3);
    ASSERT_TRUE(slot_store(&s, &r, kT0 + 1000));
    EXPECT_TRUE(s.filled);
    EXPECT_TRUE(s.exists);
    EXPECT_EQ(s.record.version, 3u);
    EXPECT_EQ(s.record.granted, purpose_bit(1));
    EXPECT_EQ(s.fetched_ms, kT0 + 1000);
    EXPECT_TRUE(fresh(s, kT0 + 1000));
    EXPECT_TRUE(fresh(s, kT0 + 1000 + kTtl - 1));
    EXPECT_FALSE(fresh(s, kT0 + 1000 + kTtl));  // now < fetched + ttl, strictly
    EXPECT_FALSE(fresh(s, kT0 + 1000 + 10 * kTtl));
}

TEST(CacheRules, ZeroTtlNeverServes) {
    CacheSlot s;
    const Record r = rec(1);
    ASSERT_TRUE(slot_store(&s, &r, kT0 + 5));
    CacheClock c = at(kT0 + 5);
    c.ttl_ms = 0;
    EXPECT_EQ(slot_state(s, c), SlotState::stale);
}

TEST(CacheRules, TtlDoesNotOverflow) {
    CacheSlot s;
    const Record r = rec(1);
    ASSERT_TRUE(slot_store(&s, &r, UINT64_MAX - 10));
    CacheClock c = at(UINT64_MAX - 5);
    EXPECT_EQ(slot_state(s, c), SlotState::fresh);
    c.ttl_ms = UINT64_MAX;
    EXPECT_EQ(slot_state(s, c), SlotState::fresh);
    c.ttl_ms = 5;
    EXPECT_EQ(slot_state(s, c), SlotState::stale);
}

TEST(CacheRules, NotSubscribedIsStale) {
    CacheSlot s;
    const Record r = rec(2);
    ASSERT_TRUE(slot_store(&s, &r, kT0 + 10));
    CacheClock c = at(kT0 + 20);
    c.subscribed = false;
    EXPECT_EQ(slot_state(s, c), SlotState::stale);
    c.subscribed = true;
    EXPECT_EQ(slot_state(s, c), SlotState::fresh);
}

TEST(CacheRules, FilledBeforeTheSubscriptionIsStale) {
    CacheSlot s;
    const Record r = rec(2);
    ASSERT_TRUE(slot_store(&s, &r, kT0 - 1));
    EXPECT_FALSE(fresh(s, kT0 + 1));  // an announcement may have been lost in the gap
    ASSERT_TRUE(slot_store(&s, &r, kT0));
    EXPECT_FALSE(fresh(s, kT0 + 1));  // in the millisecond it began: see below
    ASSERT_TRUE(slot_store(&s, &r, kT0 + 1));
    EXPECT_TRUE(fresh(s, kT0 + 2));  // after valid_since is fine
    // Resubscribed later: the same slot is stale again.
    CacheClock c = at(kT0 + 100);
    c.valid_since_ms = kT0 + 50;
    EXPECT_EQ(slot_state(s, c), SlotState::stale);
}

// Found by tests/fuzz/fuzz_record (mode 3, the simulated world): within one
// millisecond a read is answered (version 1), the subscription drops, a
// write publishes version 2 to nobody, and the subscription comes back.
// The read, stamped with the millisecond it was sent, must not count as
// fetched after the subscription began.
TEST(CacheRules, ReadInTheMillisecondTheSubscriptionBeganIsStale) {
    CacheSlot s;
    const Record v1 = rec(1);
    ASSERT_TRUE(slot_store(&s, &v1, kT0));  // sent at kT0, valid_since == kT0
    for (uint64_t now : {kT0, kT0 + 1, kT0 + 1000}) EXPECT_FALSE(fresh(s, now)) << now;
    // A read sent after the subscription began is trusted.
    ASSERT_TRUE(slot_store(&s, &v1, kT0 + 1));
    EXPECT_TRUE(fresh(s, kT0 + 1));
}

TEST(CacheRules, AnnouncementOfNewerVersionMakesStale) {
    CacheSlot s;
    const Record r = rec(4);
    ASSERT_TRUE(slot_store(&s, &r, kT0 + 1));
    slot_announce(&s, 3);  // older: no effect
    EXPECT_EQ(s.announced, 3u);
    EXPECT_TRUE(fresh(s, kT0 + 2));
    slot_announce(&s, 4);  // the version held
    EXPECT_TRUE(fresh(s, kT0 + 2));
    slot_announce(&s, 5);
    EXPECT_EQ(s.announced, 5u);
    EXPECT_FALSE(fresh(s, kT0 + 2));
    slot_announce(&s, 2);  // out of order: the highest is remembered
    EXPECT_EQ(s.announced, 5u);
    EXPECT_FALSE(fresh(s, kT0 + 2));
}

TEST(CacheRules, ReadRacingAnUpdateNeverReplacesIt) {
    CacheSlot s;
    const Record r4 = rec(4), r5 = rec(5), r6 = rec(6);
    ASSERT_TRUE(slot_store(&s, &r4, kT0 + 1));
    slot_announce(&s, 5);
    // A read that started before the write returns v4: refused, slot unchanged.
    const CacheSlot before = s;
    EXPECT_FALSE(slot_store(&s, &r4, kT0 + 2));
    EXPECT_EQ(s.fetched_ms, before.fetched_ms);
    EXPECT_EQ(s.record.version, 4u);
    EXPECT_EQ(s.announced, 5u);
    EXPECT_FALSE(fresh(s, kT0 + 3));
    // A read of v5 or newer is taken, and the announcement is kept.
    ASSERT_TRUE(slot_store(&s, &r6, kT0 + 3));
    EXPECT_EQ(s.record.version, 6u);
    EXPECT_EQ(s.announced, 5u);
    EXPECT_TRUE(fresh(s, kT0 + 4));
    // v5 is announced equal: accepted.
    CacheSlot t;
    slot_announce(&t, 5);
    EXPECT_TRUE(slot_store(&t, &r5, kT0 + 3));
    EXPECT_TRUE(fresh(t, kT0 + 4));
}

TEST(CacheRules, NegativeEntries) {
    CacheSlot s;
    ASSERT_TRUE(slot_store(&s, nullptr, kT0 + 1));
    EXPECT_TRUE(s.filled);
    EXPECT_FALSE(s.exists);
    EXPECT_EQ(s.record.version, 0u);
    EXPECT_TRUE(fresh(s, kT0 + 2));
    EXPECT_FALSE(fresh(s, kT0 + 1 + kTtl));
    // A record appears (v1 announced): the negative entry goes stale, and a
    // read that still finds nothing does not replace it.
    slot_announce(&s, 1);
    EXPECT_FALSE(fresh(s, kT0 + 2));
    EXPECT_FALSE(slot_store(&s, nullptr, kT0 + 3));
    EXPECT_FALSE(s.exists);
    EXPECT_EQ(s.fetched_ms, kT0 + 1);
    const Record r1 = rec(1);
    ASSERT_TRUE(slot_store(&s, &r1, kT0 + 4));
    EXPECT_TRUE(s.exists);
    EXPECT_TRUE(fresh(s, kT0 + 5));
}

TEST(CacheRules, StoreReplacesARecordWithANegativeEntry) {
    CacheSlot s;
    const Record r = rec(2);
    ASSERT_TRUE(slot_store(&s, &r, kT0 + 1));
    // Nothing announced: a later read that finds no record (the key was
    // deleted) is taken.
    ASSERT_TRUE(slot_store(&s, nullptr, kT0 + 2));
    EXPECT_TRUE(s.filled);
    EXPECT_FALSE(s.exists);
    EXPECT_EQ(s.record.version, 0u);
    EXPECT_EQ(s.record.granted, 0u);
    EXPECT_TRUE(fresh(s, kT0 + 3));
}

TEST(CacheRules, AnnouncementForNeverFilledSlot) {
    CacheSlot s;
    slot_announce(&s, 3);
    EXPECT_FALSE(s.filled);
    EXPECT_FALSE(fresh(s, kT0 + 1));
    EXPECT_FALSE(slot_store(&s, nullptr, kT0 + 1));  // nothing read: older than v3
    EXPECT_FALSE(s.filled);
    EXPECT_EQ(s.fetched_ms, 0u);
    const Record r2 = rec(2), r3 = rec(3);
    EXPECT_FALSE(slot_store(&s, &r2, kT0 + 1));
    EXPECT_FALSE(s.filled);
    ASSERT_TRUE(slot_store(&s, &r3, kT0 + 1));
    EXPECT_TRUE(fresh(s, kT0 + 2));
}

TEST(CacheRules, SlotIsPlainData) {
    static_assert(std::is_trivially_copyable<CacheSlot>::value);
    CacheSlot s;
    const Record r = rec(7);
    ASSERT_TRUE(slot_store(&s, &r, kT0 + 1));
    CacheSlot copy;
    std::memcpy(&copy, &s, sizeof s);
    EXPECT_TRUE(fresh(copy, kT0 + 2));
    EXPECT_EQ(copy.record.version, 7u);
}

// Two workers read from different servers while one of them leaves a
// replica whose link broke: the read from the lagging one comes back older
// than what the other already brought. The slot answers, not the read.
TEST(CacheRules, OlderReadIsAnsweredByTheNewerSlot) {
    CacheSlot s;
    const Record r1 = rec(1), r2 = rec(2);
    ASSERT_TRUE(slot_store(&s, &r2, kT0 + 10));
    CacheClock c = at(kT0 + 20);
    c.subscribed = false;  // the link broke: no heartbeat; versions still order
    EXPECT_TRUE(slot_holds_newer(s, &r1, c, 0));
    EXPECT_TRUE(slot_holds_newer(s, nullptr, c, 0));  // a replica that has no record yet
    EXPECT_FALSE(slot_holds_newer(s, &r2, c, 0));     // the same version: the read is as good
    const Record r3 = rec(3);
    EXPECT_FALSE(slot_holds_newer(s, &r3, c, 0));
}

TEST(CacheRules, NewerSlotAnswersOnlyWithinItsTtl) {
    CacheSlot s;
    const Record r1 = rec(1), r2 = rec(2);
    ASSERT_TRUE(slot_store(&s, &r2, kT0 + 10));
    EXPECT_TRUE(slot_holds_newer(s, &r1, at(kT0 + 10 + kTtl - 1), 0));
    EXPECT_FALSE(slot_holds_newer(s, &r1, at(kT0 + 10 + kTtl), 0));
}

// "*" may follow a deletion that starts versions again at 1: what was read
// before it no longer outranks a read.
TEST(CacheRules, NewerSlotAnswersOnlyIfReadAfterTheLastFlush) {
    CacheSlot s;
    const Record r1 = rec(1), r5 = rec(5);
    ASSERT_TRUE(slot_store(&s, &r5, kT0 + 10));
    CacheClock c = at(kT0 + 20);
    c.flushed_ms = kT0 + 10;  // the same millisecond: it may have been read before
    EXPECT_FALSE(slot_holds_newer(s, &r1, c, 0));
    c.flushed_ms = kT0 + 9;
    EXPECT_TRUE(slot_holds_newer(s, &r1, c, 0));
}

// A resubscription makes the slot stale (it is read again), but it still
// outranks an older read: valid_since is about lost announcements, not
// about which version is newer.
TEST(CacheRules, NewerSlotOutranksAnOlderReadAfterAResubscription) {
    CacheSlot s;
    const Record r1 = rec(1), r2 = rec(2);
    ASSERT_TRUE(slot_store(&s, &r2, kT0 + 10));
    CacheClock c = at(kT0 + 30);
    c.valid_since_ms = kT0 + 20;
    EXPECT_EQ(slot_state(s, c), SlotState::stale);
    EXPECT_TRUE(slot_holds_newer(s, &r1, c, 0));
}

TEST(CacheRules, EmptySlotNeverAnswersForARead) {
    CacheSlot s;
    slot_announce(&s, 4);
    const Record r1 = rec(1);
    EXPECT_FALSE(slot_holds_newer(s, &r1, at(kT0 + 1), 0));
    EXPECT_FALSE(slot_holds_newer(s, nullptr, at(kT0 + 1), 0));
}

// A server that restarts empty (or a replica promoted before it had the
// last writes) starts its versions lower, and closes every connection: a
// slot read before the answering connection began does not outrank it.
TEST(CacheRules, NewerSlotAnswersOnlyIfReadSinceTheConnectionBegan) {
    CacheSlot s;
    const Record r1 = rec(1);
    ASSERT_TRUE(slot_store(&s, &r1, kT0 + 10));
    const CacheClock c = at(kT0 + 30);
    EXPECT_FALSE(slot_holds_newer(s, nullptr, c, kT0 + 20));  // reconnected since: Redis lost it
    EXPECT_FALSE(slot_holds_newer(s, nullptr, c, kT0 + 10));  // the same millisecond
    EXPECT_TRUE(slot_holds_newer(s, nullptr, c, kT0 + 9));    // the connection was there before
}

// A read of another replica than the subscription's (ngx_http_consent_cache_store)
// may only move a slot forward: never fill it, never store an equal or
// older version, and only held (never served) in a slot read before the
// subscription began (it has not heard the announcements of the gap).
TEST(CacheRules, AnotherReplicasReadOnlyMovesASlotForward) {
    const Record r1 = rec(1), r2 = rec(2);
    const CacheClock c = at(kT0 + 30);

    CacheSlot empty;
    EXPECT_EQ(Advance::no, slot_may_advance(empty, &r2, c));  // no node's history: a time stamp at most
    EXPECT_EQ(Advance::no, slot_may_advance(empty, nullptr, c));

    CacheSlot s;
    ASSERT_TRUE(slot_store(&s, &r1, kT0 + 10));
    EXPECT_EQ(Advance::servable, slot_may_advance(s, &r2, c));
    EXPECT_EQ(Advance::no, slot_may_advance(s, &r1, c));      // as good as what it holds
    EXPECT_EQ(Advance::no, slot_may_advance(s, nullptr, c));  // "no record" is version 0: older

    // filled before the current subscription began (the same millisecond
    // counts as before): held only
    CacheClock resubscribed = c;
    resubscribed.valid_since_ms = kT0 + 10;
    EXPECT_EQ(Advance::held_only, slot_may_advance(s, &r2, resubscribed));
    resubscribed.valid_since_ms = kT0 + 9;
    EXPECT_EQ(Advance::servable, slot_may_advance(s, &r2, resubscribed));

    // the subscription is down (a cut-off replica): versions still order,
    // so the slot still moves forward and answers older reads after it
    CacheClock down = c;
    down.subscribed = false;
    EXPECT_EQ(Advance::servable, slot_may_advance(s, &r2, down));

    // a negative entry moves forward to a record
    CacheSlot neg;
    ASSERT_TRUE(slot_store(&neg, nullptr, kT0 + 10));
    EXPECT_EQ(Advance::servable, slot_may_advance(neg, &r1, c));

    // an update announced into the slot and not yet read: slot_may_advance
    // lets the newer read through, slot_store still refuses it when it is
    // behind the announcement
    slot_announce(&s, 3);
    ASSERT_EQ(Advance::servable, slot_may_advance(s, &r2, c));
    EXPECT_FALSE(slot_store(&s, &r2, kT0 + 20));
}

// After a resubscription, the slot has not heard what was announced in the
// gap, so a newer read of another replica may still be behind a lost
// update. It is held only: never served, but it keeps the edge from going
// back to an older read of a lagging replica, until a read of the
// subscription's own server fills the slot again.
TEST(CacheRules, AnotherReplicasReadAfterAResubscriptionIsHeldOnly) {
    const Record r1 = rec(1), r2 = rec(2), r3 = rec(3);
    CacheSlot s;
    ASSERT_TRUE(slot_store(&s, &r1, kT0 + 10));  // served before the resubscription
    CacheClock c = at(kT0 + 30);
    c.valid_since_ms = kT0 + 20;

    ASSERT_EQ(Advance::held_only, slot_may_advance(s, &r2, c));
    ASSERT_TRUE(slot_store(&s, &r2, kT0 + 25, true));
    EXPECT_TRUE(s.held_only);
    EXPECT_EQ(SlotState::stale, slot_state(s, c));  // never served
    // but it answers an older read of a lagging replica, on a connection
    // begun before it was read
    EXPECT_TRUE(slot_holds_newer(s, &r1, c, kT0));
    EXPECT_FALSE(slot_holds_newer(s, &r2, c, kT0));
    // another replica's next newer read is held only too, although this
    // one was read after the subscription began: the slot still has not
    // heard the gap
    EXPECT_EQ(Advance::held_only, slot_may_advance(s, &r3, c));
    // an update behind the announcement is still refused, held only or not
    slot_announce(&s, 4);
    EXPECT_FALSE(slot_store(&s, &r3, kT0 + 26, true));

    // a read of the subscription's server (or the primary) fills it as
    // usual: served again, and it moves forward as servable
    const Record r4 = rec(4), r5 = rec(5);
    ASSERT_TRUE(slot_store(&s, &r4, kT0 + 27));
    EXPECT_FALSE(s.held_only);
    EXPECT_EQ(SlotState::fresh, slot_state(s, c));
    EXPECT_EQ(Advance::servable, slot_may_advance(s, &r5, c));
}
