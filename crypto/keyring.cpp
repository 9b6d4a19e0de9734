#include "crypto/keyring.h"

namespace consent {

bool KeyRing::add(std::unique_ptr<Key> key, bool issue, std::string* err) {
    if (key->id() == 0) {
        *err = "key id must be 1..65535";
        return false;
    }
    if (find(key->id())) {
        *err = "duplicate key id " + std::to_string(key->id());
        return false;
    }
    if (issue && marked_issuer_) {
        *err = "only one key may be marked \"issue\"";
        return false;
    }
    keys_.push_back(std::move(key));
    if (issue) marked_issuer_ = keys_.back().get();
    return true;
}

const Key* KeyRing::issuer() const {
    if (marked_issuer_) return marked_issuer_;
    return keys_.empty() ? nullptr : keys_.back().get();
}

}  // namespace consent
