#include "crypto/keyfile.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

using namespace consent;

namespace {

const std::string kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

class TempFile {
public:
    TempFile(const std::string& content, mode_t mode) {
        char tmpl[] = "/tmp/consent-keyfile-XXXXXX";
        const int fd = mkstemp(tmpl);
        EXPECT_GE(fd, 0);
        path_ = tmpl;
        EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
        close(fd);
        chmod(path_.c_str(), mode);
    }
    ~TempFile() { unlink(path_.c_str()); }
    const char* path() const { return path_.c_str(); }

private:
    std::string path_;
};

}  // namespace

TEST(KeyText, ParsesBothSuites) {
    Suite s;
    KeyBytes k;
    std::string err;
    ASSERT_TRUE(parse_key_text("xchacha20poly1305 " + kHex + "\n", &s, &k, &err)) << err;
    EXPECT_EQ(s, Suite::xchacha20poly1305);
    for (int i = 0; i < 32; i++) EXPECT_EQ(k.b[i], i);
    ASSERT_TRUE(parse_key_text("aes256gcm " + kHex, &s, &k, &err)) << err;
    EXPECT_EQ(s, Suite::aes256gcm);
    // Upper-case hex and a CRLF ending are accepted.
    std::string upper = kHex;
    for (auto& c : upper) c = static_cast<char>(toupper(c));
    ASSERT_TRUE(parse_key_text("aes256gcm " + upper + "\r\n", &s, &k, &err)) << err;
    EXPECT_EQ(k.b[31], 0x1f);
}

// Found by tests/fuzz/fuzz_keyfile: a lone final "\r" (no "\n") was
// dropped like a line ending, so "KEY\r" loaded.
TEST(KeyText, LoneCarriageReturnIsNotANewline) {
    Suite s;
    KeyBytes k;
    std::string err;
    for (const char* end : {"\r", "\n\r", "\r\r\n", "\r\r"}) {
        EXPECT_FALSE(parse_key_text("aes256gcm " + kHex + end, &s, &k, &err)) << "ending " << std::strlen(end);
        EXPECT_FALSE(parse_pseudonym_key_text(kHex + end, &k, &err)) << "ending " << std::strlen(end);
    }
    EXPECT_TRUE(parse_key_text("aes256gcm " + kHex + "\r\n", &s, &k, &err)) << err;
    EXPECT_TRUE(parse_pseudonym_key_text(kHex + "\r\n", &k, &err)) << err;
    EXPECT_TRUE(parse_pseudonym_key_text(kHex + "\n", &k, &err)) << err;
}

TEST(KeyText, RejectsMalformed) {
    Suite s;
    KeyBytes k;
    std::string err;
    const std::string bad[] = {
        "",
        "\n",
        kHex,                                           // suite missing
        "chacha20 " + kHex,                             // unknown suite
        "aes256gcm  " + kHex,                           // two spaces
        "aes256gcm\t" + kHex,                           // tab
        " aes256gcm " + kHex,                           // leading space
        "aes256gcm " + kHex.substr(2),                  // 31 bytes
        "aes256gcm " + kHex + "00",                     // 33 bytes
        "aes256gcm " + kHex.substr(0, 63) + "g",        // non-hex
        "aes256gcm " + kHex + " ",                      // trailing space
        "aes256gcm " + kHex + "\n\n",                   // two lines
        "aes256gcm " + kHex + "\naes256gcm " + kHex,    // two keys
        "AES256GCM " + kHex,                            // suite names are exact
    };
    for (const auto& text : bad) {
        err.clear();
        EXPECT_FALSE(parse_key_text(text, &s, &k, &err)) << text;
        EXPECT_FALSE(err.empty()) << text;
    }
}

TEST(PseudonymKeyText, ParsesAndRejects) {
    KeyBytes k;
    std::string err;
    ASSERT_TRUE(parse_pseudonym_key_text(kHex + "\n", &k, &err)) << err;
    EXPECT_EQ(k.b[1], 1);
    EXPECT_FALSE(parse_pseudonym_key_text("aes256gcm " + kHex, &k, &err));
    EXPECT_FALSE(parse_pseudonym_key_text(kHex.substr(1), &k, &err));
    EXPECT_FALSE(parse_pseudonym_key_text(kHex + "\n" + kHex, &k, &err));
    EXPECT_FALSE(parse_pseudonym_key_text("", &k, &err));
}

TEST(KeyFile, LoadsPrivateFile) {
    TempFile f("xchacha20poly1305 " + kHex + "\n", 0600);
    Suite s;
    KeyBytes k;
    std::string err;
    ASSERT_TRUE(load_key_file(f.path(), &s, &k, &err)) << err;
    EXPECT_EQ(s, Suite::xchacha20poly1305);
    TempFile ro("xchacha20poly1305 " + kHex + "\n", 0400);
    EXPECT_TRUE(load_key_file(ro.path(), &s, &k, &err)) << err;
}

TEST(KeyFile, RefusesGroupOrOtherReadable) {
    for (mode_t mode : {0640, 0604, 0644, 0660, 0666}) {
        TempFile f("xchacha20poly1305 " + kHex + "\n", mode);
        Suite s;
        KeyBytes k;
        std::string err;
        EXPECT_FALSE(load_key_file(f.path(), &s, &k, &err)) << std::oct << mode;
        EXPECT_NE(err.find("readable by group or others"), std::string::npos) << err;
    }
    TempFile p(kHex, 0644);
    KeyBytes k;
    std::string err;
    EXPECT_FALSE(load_pseudonym_key_file(p.path(), &k, &err));
    EXPECT_NE(err.find("chmod 600"), std::string::npos) << err;
}

TEST(KeyFile, ReportsMissingDirectoryAndOversize) {
    Suite s;
    KeyBytes k;
    std::string err;
    EXPECT_FALSE(load_key_file("/nonexistent/consent.key", &s, &k, &err));
    EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
    EXPECT_FALSE(load_key_file("/tmp", &s, &k, &err));
    EXPECT_FALSE(err.empty());
    TempFile big(std::string(5000, 'a'), 0600);
    EXPECT_FALSE(load_key_file(big.path(), &s, &k, &err));
    EXPECT_NE(err.find("too large"), std::string::npos) << err;
    TempFile bad("aes256gcm zz\n", 0600);
    EXPECT_FALSE(load_key_file(bad.path(), &s, &k, &err));
    EXPECT_NE(err.find("64 hex"), std::string::npos) << err;
}

// A FIFO as key file: refused at once, not waited on until a writer comes
// (nginx -t, a reload of the master or consentctl would hang).
TEST(KeyFile, RefusesFifoWithoutWaiting) {
    char dir[] = "/tmp/consent-keyfile-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string fifo = std::string(dir) + "/fifo.key";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);

    auto done = std::make_shared<std::promise<std::string>>();
    auto result = done->get_future();
    std::thread([fifo, done] {
        Suite s;
        KeyBytes k;
        std::string err;
        const bool ok = load_key_file(fifo.c_str(), &s, &k, &err);
        done->set_value(ok ? "loaded" : err);
    }).detach();

    const bool answered = result.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    if (!answered) {
        // unblock the reader so that the process can end
        const int w = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        if (w >= 0) close(w);
        result.wait();
    }
    EXPECT_TRUE(answered) << "load_key_file waited on a FIFO";
    EXPECT_NE(result.get().find("not a regular file"), std::string::npos);
    unlink(fifo.c_str());
    rmdir(dir);
}

TEST(KeyBytes, WipedOnDestruction) {
    alignas(KeyBytes) unsigned char storage[sizeof(KeyBytes)];
    auto* k = new (storage) KeyBytes;
    for (auto& b : k->b) b = 0xAA;
    k->~KeyBytes();
    for (unsigned char c : storage) EXPECT_EQ(c, 0);
}
