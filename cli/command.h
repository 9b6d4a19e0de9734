// Shared plumbing for consentctl commands: option parsing and the two kinds
// of failure the contract distinguishes (bad usage: exit 2; failed
// operation: exit 1).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace consent::cli {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Args {
    std::multimap<std::string, std::string> opts;  // "--key" -> value, repeatable; a flag -> ""
    std::vector<std::string> positional;
    bool help = false;

    // The single value of an option, or `def`; UsageError when repeated.
    std::string get(const std::string& name, const std::string& def = "") const;
    std::string need(const std::string& name) const;  // UsageError when absent
    bool has(const std::string& name) const { return opts.count(name) != 0; }
};

// Parses argv after the command name. An option of `valid` takes a value,
// given as "--opt value" or "--opt=value"; a flag of `flags` takes none
// ("--tls"), and is a usage error with a value or when given twice.
Args parse_args(int argc, char** argv, const std::set<std::string>& valid,
                const std::set<std::string>& flags = {});

struct Command {
    const char* name;
    const char* summary;
    const char* usage;  // full help text of the command
    int (*run)(const Args&);
    std::set<std::string> options;  // take a value
    std::set<std::string> flags;    // take none
};

// Flushes stdout; Failure "cannot write to stdout: REASON" (a full disk, a
// closed stdout) followed by `done` when the operation itself took place.
void flush_stdout(const std::string& done = "");

// --revision N: 0 to 4294967295, the range of consent_policy_revision;
// UsageError otherwise (mint --kind choice, set).
uint32_t parse_revision(const std::string& s);

const std::vector<Command>& token_commands();  // keygen, pseudonym-keygen, mint, inspect
const std::vector<Command>& redis_commands();  // set, get, erase, watch (consent records in Redis)

}  // namespace consent::cli
