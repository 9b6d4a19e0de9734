#include "policy/purposes.h"

namespace consent {

const char* source_name(Source s) {
    switch (s) {
    case Source::none: return "none";
    case Source::cache: return "cache";
    case Source::redis: return "redis";
    case Source::defaults: return "default";
    case Source::failure: return "failure";
    }
    return "none";
}

namespace {

Decision from_record(const DecisionInput& in, const Record& rec) noexcept {
    Decision d;
    d.source = in.record_source;
    d.has_version = true;
    d.version = rec.version;
    // Erasure is checked before exp: a retention date must not bring back
    // the defaults (and the subject variables) of an erased subject.
    if (rec.erased) {
        d.erased = true;
        return d;
    }
    if (rec.has_exp && rec.exp <= in.now) {
        Decision expired;
        expired.granted = in.defaults;
        expired.source = Source::defaults;
        return expired;
    }
    d.granted = (in.defaults | rec.granted) & ~rec.denied;
    return d;
}

}  // namespace

Decision decide(const DecisionInput& in) noexcept {
    Decision d;
    if (!in.has_subject) {
        d.granted = in.defaults;
        d.source = Source::none;
    } else {
        switch (in.outcome) {
        case LookupOutcome::record:
            if (in.record) {
                d = from_record(in, *in.record);
                break;
            }
            [[fallthrough]];  // a record outcome without a record: nothing stored
        case LookupOutcome::no_store:
        case LookupOutcome::no_record:
            d.granted = in.defaults;
            d.source = Source::defaults;
            break;
        case LookupOutcome::failure:
            d.granted = in.failure_uses_defaults ? in.defaults : 0;
            d.source = Source::failure;
            break;
        }
    }
    if (in.sec_gpc) d.granted &= ~in.gpc;
    // Records and defaults may name bits no purpose is declared for (a purpose
    // removed from the configuration while records still carry it).
    d.granted &= in.declared;
    return d;
}

}  // namespace consent
