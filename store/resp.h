// Redis commands as RESP, the wire format: an array of bulk strings,
//
//   *<argc>\r\n  then, per argument,  $<len>\r\n<bytes>\r\n
//
// written straight into the caller's buffer. The edge formats a command per
// lookup; hiredis' redisFormatCommandArgv() would allocate a string for each
// (and free it once copied into the connection's buffer). The unit test
// checks the two agree byte for byte. Pure: no I/O, no allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace consent {

// The bytes resp_write_command() writes for these arguments.
size_t resp_command_size(const std::string_view* argv, size_t argc) noexcept;

// Writes the command at `out` (resp_command_size() bytes); returns the end.
char* resp_write_command(char* out, const std::string_view* argv, size_t argc) noexcept;

}  // namespace consent
