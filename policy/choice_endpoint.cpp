#include "policy/choice_endpoint.h"

#include <cstring>

#include "policy/query_rewrite.h"
#include "policy/strip_rules.h"

namespace consent {

namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && ascii_iequal(s.substr(0, prefix.size()), prefix);
}

int purpose_index(std::string_view name, const std::string_view* names, size_t count) noexcept {
    for (size_t i = 0; i < count && i < kMaxPurposes; i++)
        if (names[i] == name) return static_cast<int>(i);
    return -1;
}

// Records NAME=value in `out`; false (with out->error) when it cannot.
bool answer(std::string_view name, int value, const std::string_view* names, size_t count, BodyParse* out) {
    const int i = purpose_index(name, names, count);
    if (i < 0) {
        out->error = BodyError::unknown_purpose;
        out->culprit = name;
        return false;
    }
    if (value < 0) {
        out->error = BodyError::bad_value;
        out->culprit = name;
        return false;
    }
    const PurposeMask bit = purpose_bit(static_cast<unsigned>(i));
    if (out->change.named & bit) {
        out->error = BodyError::malformed;
        out->culprit = name;
        return false;
    }
    out->change.named |= bit;
    if (value) out->change.granted |= bit;
    return true;
}

// Percent-decodes a form field, '+' as a space, into `buf`; the raw bytes
// when they do not fit.
std::string_view form_decode(std::string_view raw, char* buf, size_t cap) noexcept {
    char plus[kMaxChoiceBody];
    if (raw.size() > sizeof plus) return raw;
    for (size_t i = 0; i < raw.size(); i++) plus[i] = raw[i] == '+' ? ' ' : raw[i];
    const long n = percent_decode(std::string_view(plus, raw.size()), buf, cap);
    return n < 0 ? raw.substr(0, cap) : std::string_view(buf, static_cast<size_t>(n));
}

void parse_form(std::string_view body, const std::string_view* names, size_t count, BodyParse* out) noexcept {
    char value_buf[8];
    while (!body.empty()) {
        const size_t amp = body.find('&');
        const std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
        if (pair.empty()) continue;
        const size_t eq = pair.find('=');
        if (eq == std::string_view::npos) {
            out->error = BodyError::malformed;
            return;
        }
        const std::string_view name = form_decode(pair.substr(0, eq), out->decoded, sizeof out->decoded);
        const std::string_view raw_value = pair.substr(eq + 1);
        const std::string_view value =
            raw_value.size() <= 3 ? form_decode(raw_value, value_buf, sizeof value_buf) : raw_value;
        const int v = value == "1" ? 1 : value == "0" ? 0 : -1;
        if (!answer(name, v, names, count, out)) return;
    }
}

// A strict reader of the one JSON shape the endpoint takes: an object of
// strings to booleans, nothing nested.
struct JsonReader {
    std::string_view s;
    size_t i = 0;

    void blanks() noexcept {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    }
    bool eat(char c) noexcept {
        blanks();
        if (i < s.size() && s[i] == c) {
            i++;
            return true;
        }
        return false;
    }
    // A string without escapes is returned in place; one with escapes is
    // decoded into `buf` (\uXXXX beyond ASCII as '?': no purpose name has it).
    bool string(std::string_view* out, char* buf, size_t cap) noexcept {
        if (!eat('"')) return false;
        const size_t start = i;
        size_t n = 0;
        bool escaped = false;
        while (i < s.size() && s[i] != '"') {
            const unsigned char c = static_cast<unsigned char>(s[i]);
            if (c < 0x20) return false;
            char decoded = static_cast<char>(c);
            if (c == '\\') {
                escaped = true;
                if (++i >= s.size()) return false;
                switch (s[i]) {
                case '"': case '\\': case '/': decoded = s[i]; break;
                case 'b': decoded = '\b'; break;
                case 'f': decoded = '\f'; break;
                case 'n': decoded = '\n'; break;
                case 'r': decoded = '\r'; break;
                case 't': decoded = '\t'; break;
                case 'u': {
                    if (i + 4 >= s.size()) return false;
                    unsigned v = 0;
                    for (size_t k = 1; k <= 4; k++) {
                        const char h = s[i + k];
                        v <<= 4;
                        if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
                        else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
                        else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
                        else return false;
                    }
                    i += 4;
                    decoded = v < 0x80 ? static_cast<char>(v) : '?';
                    break;
                }
                default: return false;
                }
            }
            if (n < cap) buf[n] = decoded;
            n++;
            i++;
        }
        if (i >= s.size()) return false;
        i++;  // the closing quote
        if (!escaped) {
            *out = s.substr(start, i - 1 - start);
        } else {
            *out = std::string_view(buf, n < cap ? n : cap);
        }
        return true;
    }
    // true, false, or anything else JSON allows as a value (-1).
    bool value(int* v) noexcept {
        blanks();
        const std::string_view rest = s.substr(i);
        if (rest.substr(0, 4) == "true") {
            i += 4;
            *v = 1;
            return true;
        }
        if (rest.substr(0, 5) == "false") {
            i += 5;
            *v = 0;
            return true;
        }
        // A number, a string or null is a well-formed body with a bad value;
        // an object or array is beyond what the endpoint takes.
        if (rest.empty() || rest[0] == '{' || rest[0] == '[') return false;
        if (rest[0] == '"') {
            std::string_view ignored;
            char buf[1];
            if (!string(&ignored, buf, 0)) return false;
        } else {
            while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ' ' && s[i] != '\n' && s[i] != '\r' &&
                   s[i] != '\t')
                i++;
        }
        *v = -1;
        return true;
    }
};

void parse_json(std::string_view body, const std::string_view* names, size_t count, BodyParse* out) noexcept {
    JsonReader r{body};
    if (!r.eat('{')) {
        out->error = BodyError::malformed;
        return;
    }
    if (!r.eat('}')) {
        do {
            std::string_view name;
            int v = -1;
            if (!r.string(&name, out->decoded, sizeof out->decoded) || !r.eat(':') || !r.value(&v)) {
                out->error = BodyError::malformed;
                return;
            }
            if (!answer(name, v, names, count, out)) return;
        } while (r.eat(','));
        if (!r.eat('}')) {
            out->error = BodyError::malformed;
            return;
        }
    }
    r.blanks();
    if (r.i != body.size()) out->error = BodyError::malformed;
}

// host[:port] of an authority, and the port (or `default_port`).
void split_authority(std::string_view a, std::string_view* host, std::string_view* port) noexcept {
    size_t colon = std::string_view::npos;
    if (!a.empty() && a[0] == '[') {  // [v6]:port
        const size_t close = a.find(']');
        if (close != std::string_view::npos && close + 1 < a.size() && a[close + 1] == ':') colon = close + 1;
    } else {
        colon = a.rfind(':');
    }
    *host = colon == std::string_view::npos ? a : a.substr(0, colon);
    *port = colon == std::string_view::npos ? std::string_view() : a.substr(colon + 1);
}

}  // namespace

BodyType body_type(std::string_view ct) noexcept {
    const size_t semi = ct.find(';');
    const std::string_view media = trim(ct.substr(0, semi));
    BodyType t;
    if (ascii_iequal(media, "application/x-www-form-urlencoded"))
        t = BodyType::form;
    else if (ascii_iequal(media, "application/json"))
        t = BodyType::json;
    else
        return BodyType::unsupported;
    if (semi == std::string_view::npos) return t;
    std::string_view params = ct.substr(semi + 1);
    while (!params.empty()) {
        const size_t next = params.find(';');
        const std::string_view p = trim(params.substr(0, next));
        params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
        if (p.empty()) continue;
        if (!starts_with_ci(p, "charset=") || p.size() == 8) return BodyType::unsupported;
    }
    return t;
}

void parse_choice_body(BodyType type, std::string_view body, const std::string_view* names, size_t count,
                       BodyParse* out) noexcept {
    out->error = BodyError::ok;
    out->change = ChoiceChange();
    out->culprit = {};
    if (type == BodyType::form)
        parse_form(body, names, count, out);
    else if (type == BodyType::json)
        parse_json(body, names, count, out);
    else
        out->error = BodyError::malformed;
    if (out->error != BodyError::ok) out->change = ChoiceChange();
}

bool cross_site_post(const std::string_view* origin, const std::string_view* sec_fetch_site,
                     std::string_view host) noexcept {
    if (sec_fetch_site && ascii_iequal(trim(*sec_fetch_site), "cross-site")) return true;
    if (!origin) return false;
    const std::string_view o = trim(*origin);
    const size_t sep = o.find("://");
    if (sep == std::string_view::npos || sep == 0) return true;  // "null", or not an origin
    const std::string_view scheme = o.substr(0, sep);
    const std::string_view authority = o.substr(sep + 3);
    if (authority.empty() || authority.find_first_of("/?#@") != std::string_view::npos) return true;
    const std::string_view default_port = ascii_iequal(scheme, "https") ? "443"
                                          : ascii_iequal(scheme, "http") ? "80" : "";
    std::string_view oh, op, hh, hp;
    split_authority(authority, &oh, &op);
    split_authority(trim(host), &hh, &hp);
    if (op.empty()) op = default_port;
    if (hp.empty()) hp = default_port;
    return oh.empty() || !ascii_iequal(oh, hh) || op != hp;
}

Choices merge_choices(const Choices* carried, uint64_t policy_revision, const ChoiceChange& change) noexcept {
    Choices c;
    if (carried && carried->revision >= policy_revision) {
        c.answered = carried->answered;
        c.granted = carried->granted & carried->answered;
    }
    c.answered |= change.named;
    c.granted = (c.granted & ~change.named) | (change.granted & change.named);
    c.revision = policy_revision;
    return c;
}

namespace {

char* put(char* o, std::string_view s) noexcept {
    if (!s.empty()) std::memcpy(o, s.data(), s.size());
    return o + s.size();
}

char* put_u64(char* o, uint64_t v) noexcept {
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *o++ = digits[--n];
    return o;
}

// JSON string contents: quotes, backslashes, control and non-ASCII bytes escaped.
char* put_escaped(char* o, std::string_view s) noexcept {
    static const char hex[] = "0123456789abcdef";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = ch;
        } else if (c < 0x20 || c >= 0x7f) {
            o = put(o, "\\u00");
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = ch;
        }
    }
    return o;
}

}  // namespace

size_t choice_document_max(const std::string_view* names, size_t count) noexcept {
    size_t n = 128;  // the fixed keys, the longest source, a 20-digit revision
    for (size_t i = 0; i < count; i++) n += names[i].size() + 10;  // "NAME":false,
    return n;
}

size_t write_choice_document(const ChoiceDocument& d, char* out) noexcept {
    char* o = put(out, "{\"purposes\":{");
    for (size_t i = 0; i < d.count && i < kMaxPurposes; i++) {
        if (i) *o++ = ',';
        *o++ = '"';
        o = put(o, d.names[i]);  // [a-z0-9_]+: nothing to escape
        o = put(o, "\":");
        o = put(o, d.granted & purpose_bit(static_cast<unsigned>(i)) ? "true" : "false");
    }
    o = put(o, "},\"source\":\"");
    o = put(o, d.source);
    o = put(o, "\",\"revision\":");
    o = d.has_revision ? put_u64(o, d.revision) : put(o, "null");
    o = put(o, ",\"reprompt\":");
    o = put(o, d.reprompt ? "true" : "false");
    o = put(o, ",\"identified\":");
    o = put(o, d.identified ? "true" : "false");
    o = put(o, "}");
    return static_cast<size_t>(o - out);
}

size_t error_document_max(std::string_view reason, std::string_view name) noexcept {
    return 16 + reason.size() + 2 + name.size() * 6;
}

size_t write_error_document(std::string_view reason, std::string_view name, char* out) noexcept {
    char* o = put(out, "{\"error\":\"");
    o = put_escaped(o, reason);
    if (!name.empty()) {
        o = put(o, ": ");
        o = put_escaped(o, name);
    }
    o = put(o, "\"}");
    return static_cast<size_t>(o - out);
}

}  // namespace consent
