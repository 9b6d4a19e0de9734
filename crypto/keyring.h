// The set of token keys an edge accepts, by key id, and the one it issues
// new UID cookies with. Several keys coexist during a rotation: the old one
// still opens tokens already in mailboxes, the new one issues.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/key.h"

namespace consent {

class KeyRing {
public:
    // False (with *err) on a duplicate id or id 0.
    bool add(std::unique_ptr<Key> key, bool issue, std::string* err);

    // Linear scan: a ring holds a handful of keys, and a scan over a few
    // pointers beats any hashing.
    const Key* find(uint16_t id) const {
        for (const auto& k : keys_)
            if (k->id() == id) return k.get();
        return nullptr;
    }

    // The key marked `issue`, else the last one added; nullptr when empty.
    const Key* issuer() const;

    bool empty() const { return keys_.empty(); }
    size_t size() const { return keys_.size(); }

private:
    std::vector<std::unique_ptr<Key>> keys_;
    const Key* marked_issuer_ = nullptr;
};

}  // namespace consent
