// consentctl: the operator's tool for keys, tokens and consent records.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/command.h"

namespace consent::cli {

std::string Args::get(const std::string& name, const std::string& def) const {
    const auto n = opts.count(name);
    if (n == 0) return def;
    if (n > 1) throw UsageError(name + " given more than once");
    return opts.find(name)->second;
}

std::string Args::need(const std::string& name) const {
    if (!has(name)) throw UsageError(name + " is required");
    return get(name);
}

uint32_t parse_revision(const std::string& s) {
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos ||
        std::stoull(s) > 0xffffffffull)
        throw UsageError("--revision '" + s + "' must be an integer from 0 to 4294967295");
    return static_cast<uint32_t>(std::stoull(s));
}

void flush_stdout(const std::string& done) {
    errno = 0;
    if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return;
    const int e = errno;
    std::clearerr(stdout);
    throw Failure(std::string("cannot write to stdout: ") + (e ? std::strerror(e) : "write error") +
                  (done.empty() ? "" : "; " + done));
}

Args parse_args(int argc, char** argv, const std::set<std::string>& valid, const std::set<std::string>& flags) {
    Args a;
    bool only_positional = false;
    for (int i = 0; i < argc; i++) {
        std::string arg = argv[i];
        if (only_positional || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
            a.positional.push_back(arg);
            continue;
        }
        if (arg == "--") {
            only_positional = true;
            continue;
        }
        if (arg == "--help") {
            a.help = true;
            continue;
        }
        std::string value;
        const auto eq = arg.find('=');
        const bool inline_value = eq != std::string::npos;
        if (inline_value) {
            value = arg.substr(eq + 1);
            arg.resize(eq);
        }
        if (flags.count(arg)) {
            // "--tls=no" must not quietly mean --tls.
            if (inline_value) throw UsageError(arg + " takes no value");
            if (a.has(arg)) throw UsageError(arg + " given more than once");
            a.opts.emplace(arg, "");
            continue;
        }
        if (!valid.count(arg)) throw UsageError("unknown option " + arg);
        if (!inline_value) {
            if (i + 1 >= argc) throw UsageError(arg + " needs a value");
            value = argv[++i];
        }
        a.opts.emplace(arg, value);
    }
    return a;
}

}  // namespace consent::cli

using namespace consent::cli;

static const Command* find_command(const std::string& name) {
    for (const auto* list : {&token_commands(), &redis_commands()})
        for (const auto& c : *list)
            if (name == c.name) return &c;
    return nullptr;
}

static void print_usage(FILE* out) {
    std::fprintf(out,
                 "usage: consentctl COMMAND [OPTIONS]\n"
                 "\n"
                 "Keys, tokens and consent records for the nginx consent module.\n"
                 "\n"
                 "commands:\n");
    for (const auto* list : {&token_commands(), &redis_commands()})
        for (const auto& c : *list) std::fprintf(out, "  %-18s %s\n", c.name, c.summary);
    std::fprintf(out,
                 "\n"
                 "'consentctl COMMAND --help' describes one command.\n"
                 "exit status: 0 success, 1 failed operation, 2 bad usage\n");
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "consentctl: missing command; try 'consentctl --help'\n");
        return 2;
    }
    const std::string name = argv[1];
    if (name == "--help" || name == "-h" || name == "help") {
        print_usage(stdout);
        if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
            std::fprintf(stderr, "consentctl: cannot write to stdout: %s\n", std::strerror(errno));
            return 1;
        }
        return 0;
    }
    const Command* cmd = find_command(name);
    if (cmd) {
        const Command& c = *cmd;
        try {
            const Args args = parse_args(argc - 2, argv + 2, c.options, c.flags);
            if (args.help) {
                std::fputs(c.usage, stdout);
                flush_stdout();
                return 0;
            }
            // A result that never reached stdout (keygen > full disk) is a
            // failed operation, not a success with an empty key file.
            const int rc = c.run(args);
            flush_stdout();
            return rc;
        } catch (const UsageError& e) {
            std::fprintf(stderr, "consentctl %s: %s; try 'consentctl %s --help'\n", c.name, e.what(), c.name);
            return 2;
        } catch (const Failure& e) {
            std::fprintf(stderr, "consentctl %s: %s\n", c.name, e.what());
            return 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "consentctl %s: %s\n", c.name, e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "consentctl: unknown command '%s'; try 'consentctl --help'\n", name.c_str());
    return 2;
}
