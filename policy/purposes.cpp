#include "policy/purposes.h"

namespace consent {

const char* source_name(Source s) {
    switch (s) {
    case Source::none: return "none";
    case Source::cache: return "cache";
    case Source::redis: return "redis";
    case Source::defaults: return "default";
    case Source::failure: return "failure";
    case Source::cookie: return "cookie";
    }
    return "none";
}

namespace {

// Purposes a choice cookie of the current revision answers, over `base`.
PurposeMask with_choices(const DecisionInput& in, PurposeMask base, PurposeMask fixed) noexcept {
    if (!in.choices || in.choices->revision < in.policy_revision) return base;
    const PurposeMask answered = in.choices->answered & ~fixed;
    return (base & ~answered) | (in.choices->granted & answered);
}

bool choices_current(const DecisionInput& in) noexcept {
    return in.choices && in.choices->revision >= in.policy_revision;
}

// No record in force: the choice cookie, else the defaults, as `source`.
Decision without_record(const DecisionInput& in, Source source) noexcept {
    Decision d;
    d.granted = with_choices(in, in.defaults, 0);
    d.source = source;
    if (choices_current(in)) {
        d.source = Source::cookie;
        d.reprompt = false;
        d.has_revision = true;
        d.revision = in.choices->revision;
    }
    return d;
}

// A record in force: it answers, and says which version and revision.
Decision in_force(const DecisionInput& in, const Record& rec) noexcept {
    Decision d;
    d.source = in.record_source;
    d.has_version = true;
    d.version = rec.version;
    d.reprompt = false;
    d.has_revision = true;
    d.revision = rec.rev;
    return d;
}

Decision from_record(const DecisionInput& in, const Record& rec) noexcept {
    // Erasure is checked before exp and the revision: neither a retention
    // date nor a new policy brings back what the customer asked to forget.
    if (rec.erased) {
        Decision d = in_force(in, rec);
        d.erased = true;
        return d;
    }
    if (rec.has_exp && rec.exp <= in.now) return without_record(in, Source::defaults);
    if (rec.rev < in.policy_revision) {
        // Consent given under an older policy counts as none.
        Decision d = without_record(in, Source::defaults);
        d.has_version = true;
        d.version = rec.version;
        return d;
    }
    Decision d = in_force(in, rec);
    const PurposeMask fields = rec.granted | rec.denied;
    d.granted = (with_choices(in, in.defaults, fields) | rec.granted) & ~rec.denied;
    return d;
}

}  // namespace

Decision decide(const DecisionInput& in) noexcept {
    Decision d;
    if (!in.has_subject) {
        d = without_record(in, Source::none);
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
            d = without_record(in, Source::defaults);
            break;
        case LookupOutcome::failure:
            // The store could not say what the record holds: the edge's
            // care, whatever a cookie answered.
            d.granted = in.failure_uses_defaults ? in.defaults : 0;
            d.source = Source::failure;
            d.reprompt = false;
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
