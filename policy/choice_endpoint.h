// The consent choice endpoint's pure parts (consent_choice): what a POST
// body says, whether a POST is cross-site, how the new answers combine
// with the old, and the JSON documents it answers with. The nginx handler
// (ngx_module/ngx_http_consent_choice.cpp) only moves bytes in and out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/purposes.h"

namespace consent {

constexpr size_t kMaxChoiceBody = 4096;

enum class BodyType : uint8_t { form, json, unsupported };

// The media type of a Content-Type value: application/x-www-form-urlencoded
// or application/json, ASCII case-insensitive, with at most a `charset`
// parameter. Anything else (or a missing header: "") is unsupported.
BodyType body_type(std::string_view content_type) noexcept;

enum class BodyError : uint8_t {
    ok,
    malformed,        // not the format, or a purpose named twice
    unknown_purpose,  // `culprit` names it
    bad_value,        // `culprit` names the purpose whose value is not 1/0 or true/false
};

// What a POST asks: the purposes it names, and which of them it grants.
struct ChoiceChange {
    PurposeMask named = 0;
    PurposeMask granted = 0;  // within named
};

struct BodyParse {
    BodyError error = BodyError::ok;
    std::string_view culprit;  // into the body, or into `decoded`
    ChoiceChange change;
    char decoded[96];          // a percent-decoded culprit, when it was encoded
};

// NAME=1|0&... (names and values percent-decoded; '+' is a space, which no
// purpose name has) or {"NAME":true|false,...}, against the declared
// purposes `names` (index = bit). An empty form body names nothing.
void parse_choice_body(BodyType type, std::string_view body, const std::string_view* names, size_t count,
                       BodyParse* out) noexcept;

// The CSRF rule: a POST is cross-site when its Origin's host and port
// differ from the Host header (the scheme is not compared; a missing port
// is the Origin scheme's default on both sides; `Origin: null` is
// cross-site), or when Sec-Fetch-Site is cross-site. Neither header: not
// cross-site (curl, older browsers without Sec-Fetch-Site send Origin).
bool cross_site_post(const std::string_view* origin, const std::string_view* sec_fetch_site,
                     std::string_view host) noexcept;

// An anonymous visitor's new answers: those of the cookie they carried (only
// if of the current revision: older consent never comes back), with the
// change on top, at the current revision.
Choices merge_choices(const Choices* carried, uint64_t policy_revision, const ChoiceChange& change) noexcept;

// The GET document: {"purposes":{...},"source":"...","revision":N|null,
// "reprompt":bool,"identified":bool}, purposes in declaration order.
struct ChoiceDocument {
    const std::string_view* names = nullptr;
    size_t count = 0;
    PurposeMask granted = 0;
    const char* source = "none";
    bool has_revision = false;
    uint64_t revision = 0;
    bool reprompt = true;
    bool identified = false;
};

// Bytes write_choice_document may need for purposes `names`.
size_t choice_document_max(const std::string_view* names, size_t count) noexcept;
size_t write_choice_document(const ChoiceDocument& d, char* out) noexcept;

// {"error":"REASON"} or {"error":"REASON: NAME"}, NAME JSON-escaped; `out`
// must hold error_document_max(reason, name) bytes.
size_t error_document_max(std::string_view reason, std::string_view name) noexcept;
size_t write_error_document(std::string_view reason, std::string_view name, char* out) noexcept;

}  // namespace consent
