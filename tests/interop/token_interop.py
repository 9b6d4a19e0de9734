#!/usr/bin/python3
"""Token interop test for consentctl.

An INDEPENDENT implementation of "Token format v1" from
/work/shared/interface.md (written from the contract only, not from the C++
sources), used to cross-check consentctl in both directions:
python-minted tokens are inspected by consentctl, consentctl-minted tokens
are decrypted here, and negative cases must be rejected with the right status.

Run: /usr/bin/python3 tests/interop/token_interop.py --consentctl build/consentctl
Needs Debian's python3-nacl and python3-cryptography.
"""
import argparse, base64, hashlib, json, os, re, secrets, struct, subprocess, sys, tempfile, time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import (crypto_aead_xchacha20poly1305_ietf_decrypt,
                           crypto_aead_xchacha20poly1305_ietf_encrypt)

SUITES = {"xchacha20poly1305": (0x01, 24), "aes256gcm": (0x02, 12)}
SUITE_BY_ID = {v[0]: k for k, v in SUITES.items()}
KINDS = {"purl": 0x01, "uid": 0x02, "choice": 0x03}
KIND_BY_ID = {v: k for k, v in KINDS.items()}


def b64u_enc(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s):
        raise ValueError("not base64url: %r" % s)
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def seal(suite, key, nonce, pt, ad):
    if suite == "xchacha20poly1305":
        return crypto_aead_xchacha20poly1305_ietf_encrypt(pt, ad, nonce, key)
    return AESGCM(key).encrypt(nonce, pt, ad)


def open_(suite, key, nonce, ct, ad):
    if suite == "xchacha20poly1305":
        return crypto_aead_xchacha20poly1305_ietf_decrypt(ct, ad, nonce, key)
    return AESGCM(key).decrypt(nonce, ct, ad)


def mint(suite, kid, key, kind, subject, campaign, iat, exp):
    """Build a v1 token (random nonce) under the given suite and raw key."""
    header = bytes([0x01, KINDS[kind], SUITES[suite][0]]) + struct.pack(">H", kid)
    nonce = secrets.token_bytes(SUITES[suite][1])
    s, c = subject.encode("ascii"), campaign.encode("ascii")
    pt = struct.pack(">QQ", iat, exp) + bytes([len(s)]) + s + bytes([len(c)]) + c
    return b64u_enc(header + nonce + seal(suite, key, nonce, pt, header))


def choice_plaintext(iat, exp, revision, choices):
    """CHOICE (kind 3) plaintext: times, revision u32, count, then each
    answer as name_len, name, 0|1 (docs/token-format.md)."""
    pt = struct.pack(">QQIB", iat, exp, revision, len(choices))
    for name, granted in choices:
        n = name.encode("ascii")
        pt += bytes([len(n)]) + n + bytes([1 if granted else 0])
    return pt


def mint_choice(suite, kid, key, iat, exp, revision, choices, raw_pt=None):
    header = bytes([0x01, KINDS["choice"], SUITES[suite][0]]) + struct.pack(">H", kid)
    nonce = secrets.token_bytes(SUITES[suite][1])
    pt = raw_pt if raw_pt is not None else choice_plaintext(iat, exp, revision, choices)
    return b64u_enc(header + nonce + seal(suite, key, nonce, pt, header))


def parse_choice(text, key):
    """Decrypt and strictly parse a CHOICE token."""
    blob = b64u_dec(text)
    if blob[1] != KINDS["choice"]:
        raise ValueError("not a choice token")
    suite = SUITE_BY_ID[blob[2]]
    nlen = SUITES[suite][1]
    pt = open_(suite, key, blob[5:5 + nlen], blob[5 + nlen:], blob[:5])
    iat, exp, revision, count = struct.unpack(">QQIB", pt[:21])
    off, choices = 21, {}
    for _ in range(count):
        n = pt[off]
        name = pt[off + 1:off + 1 + n].decode("ascii")
        if not re.fullmatch(r"[a-z0-9_]{1,64}", name) or name in choices or pt[off + 1 + n] > 1:
            raise ValueError("bad answer %r" % name)
        choices[name] = pt[off + 1 + n] == 1
        off += n + 2
    if off != len(pt):
        raise ValueError("trailing/short plaintext")
    return dict(issued_at=iat, expires_at=exp, revision=revision, choices=choices)


def parse(text, key):
    """Decrypt and strictly parse a v1 token; returns a dict of its fields."""
    blob = b64u_dec(text)
    ver, kind, sid = blob[0], blob[1], blob[2]
    (kid,) = struct.unpack(">H", blob[3:5])
    suite = SUITE_BY_ID[sid]
    nlen = SUITES[suite][1]
    nonce, ct = blob[5:5 + nlen], blob[5 + nlen:]
    pt = open_(suite, key, nonce, ct, blob[:5])
    iat, exp = struct.unpack(">QQ", pt[:16])
    sl = pt[16]
    subject = pt[17:17 + sl].decode("ascii")
    cl = pt[17 + sl]
    campaign = pt[18 + sl:18 + sl + cl].decode("ascii")
    if len(pt) != 18 + sl + cl:
        raise ValueError("trailing/short plaintext: %d bytes" % len(pt))
    return dict(version=ver, kind=KIND_BY_ID[kind], suite=suite, kid=kid,
                issued_at=iat, expires_at=exp, subject=subject, campaign=campaign)


class T:
    passed = failed = 0
    CTL = None

    @staticmethod
    def check(name, ok, detail=""):
        if ok:
            T.passed += 1
            print("ok   " + name)
        else:
            T.failed += 1
            print("FAIL " + name + (": " + detail if detail else ""))


def run(*args):
    p = subprocess.run([T.CTL, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def show(args, rc, out, err):
    return "\n  cmd: consentctl %s\n  rc=%s\n  stdout=%r\n  stderr=%r" % (" ".join(args), rc, out, err)


def inspect(name, keyargs, token, want_rc, want):
    """Run inspect; check exit code and that the JSON has every field in want."""
    args = ["inspect"] + [a for kf in keyargs for a in ("--key", kf)] + [token]
    rc, out, err = run(*args)
    try:
        js = json.loads(out)
    except ValueError:
        js = None
    bad = []
    if rc != want_rc:
        bad.append("exit %s, want %s" % (rc, want_rc))
    if not isinstance(js, dict):
        bad.append("stdout is not a JSON object")
    else:
        for k, v in want.items():
            if k not in js or js[k] != v or type(js[k]) is not type(v):
                bad.append("%s=%r, want %r" % (k, js.get(k, "<missing>"), v))
    T.check(name, not bad, "; ".join(bad) + show(args, rc, out, err))


def write_key(path, line):
    with open(path, "w") as f:
        f.write(line + "\n")
    os.chmod(path, 0o600)


def suite_tests(tmp, suite, kid):
    key = secrets.token_bytes(32)
    kf = os.path.join(tmp, suite + ".key")
    write_key(kf, "%s %s" % (suite, key.hex()))
    ka = "%d=%s" % (kid, kf)
    now = int(time.time())
    p = "[%s] " % suite

    # 2. python-minted tokens inspected by consentctl
    for kind, subj, camp in (("purl", "cust-42", "spring-sale"), ("uid", "visitor-7f3a", "")):
        tok = mint(suite, kid, key, kind, subj, camp, now, now + 3600)
        inspect(p + "inspect python %s token" % kind, [ka], tok, 0,
                dict(status="valid", version=1, kind=kind, suite=suite, kid=kid,
                     issued_at=now, expires_at=now + 3600, subject=subj, campaign=camp))

    # 3. consentctl-minted tokens decrypted by python
    for kind, subj, camp in (("purl", "cust-42", "spring-sale"), ("uid", "visitor-7f3a", "")):
        args = ["mint", "--key", kf, "--kid", str(kid), "--kind", kind, "--subject", subj]
        args += ["--campaign", camp] if camp else []
        args += ["--ttl", "1h"]
        rc, out, err = run(*args)
        t0 = int(time.time())
        name = p + "mint %s decrypts in python" % kind
        lines = out.splitlines()
        if rc != 0 or len(lines) != 1:
            T.check(name, False, "want exit 0 and one line" + show(args, rc, out, err))
            continue
        try:
            f = parse(lines[0].strip(), key)
        except Exception as e:  # noqa: BLE001 - report any decode failure
            T.check(name, False, "%s: %s%s" % (type(e).__name__, e, show(args, rc, out, err)))
            continue
        want = dict(version=1, kind=kind, suite=suite, kid=kid, subject=subj, campaign=camp)
        bad = ["%s=%r want %r" % (k, f[k], v) for k, v in want.items() if f[k] != v]
        if f["expires_at"] - f["issued_at"] != 3600:
            bad.append("ttl=%d want 3600" % (f["expires_at"] - f["issued_at"]))
        if abs(f["issued_at"] - t0) > 5:
            bad.append("issued_at=%d, now=%d" % (f["issued_at"], t0))
        T.check(name, not bad, "; ".join(bad))

    # 4. negative cross-checks
    tok = bytearray(b64u_dec(mint(suite, kid, key, "purl", "cust-42", "spring-sale", now, now + 3600)))
    tok[5 + SUITES[suite][1] + 3] ^= 0x04  # one bit inside the ciphertext
    inspect(p + "flipped ciphertext bit -> invalid", [ka], b64u_enc(bytes(tok)), 1, dict(status="invalid"))
    tok = mint(suite, kid, key, "purl", "cust-42", "spring-sale", now - 3600, now - 10)
    inspect(p + "expired -> expired", [ka], tok, 1, dict(status="expired"))
    tok = mint(suite, kid + 1, key, "purl", "cust-42", "spring-sale", now, now + 3600)
    inspect(p + "unconfigured key id -> unknown_key", [ka], tok, 1, dict(status="unknown_key"))
    # a well-formed token under the OTHER suite with this key's bytes: only the
    # "suite differs from its key's suite" rule can reject it
    other = [s for s in SUITES if s != suite][0]
    tok = mint(other, kid, key, "uid", "visitor-7f3a", "", now, now + 3600)
    inspect(p + "uid token claiming suite %s -> invalid" % other, [ka], tok, 1, dict(status="invalid"))
    tok = mint(suite, kid, key, "uid", "visitor-7f3a", "", now + 3600, now + 7200)
    inspect(p + "issued_at > now+300 -> invalid", [ka], tok, 1, dict(status="invalid"))
    blob = bytearray(b64u_dec(mint(suite, kid, key, "uid", "visitor-7f3a", "", now, now + 3600)))
    blob[1] = KINDS["purl"]  # a UID cookie must never pass as a PURL token
    inspect(p + "uid relabelled as purl -> invalid", [ka], b64u_enc(bytes(blob)), 1, dict(status="invalid"))


def choice_tests(tmp, suite, kid):
    """CHOICE tokens both ways, and the layout rules consentctl must enforce."""
    key = secrets.token_bytes(32)
    kf = os.path.join(tmp, suite + "-choice.key")
    write_key(kf, "%s %s" % (suite, key.hex()))
    ka = "%d=%s" % (kid, kf)
    now = int(time.time())
    tok = mint_choice(suite, kid, key, now, now + 3600, 7, [("analysis", True), ("marketing", False)])
    inspect("%s choice: python-minted, inspected" % suite, [ka], tok, 0,
            {"status": "valid", "kind": "choice", "suite": suite, "kid": kid, "revision": 7,
             "choices": {"analysis": True, "marketing": False}, "issued_at": now, "expires_at": now + 3600})
    inspect("%s choice: no answers" % suite, [ka], mint_choice(suite, kid, key, now, now + 60, 0, []), 0,
            {"status": "valid", "choices": {}, "revision": 0})
    inspect("%s choice: expired" % suite, [ka], mint_choice(suite, kid, key, now - 60, now - 1, 1, []), 1,
            {"status": "expired"})
    base = struct.pack(">QQI", now, now + 60, 1)
    for what, pt in (("a name twice", base + b"\x02" + b"\x01a\x01" + b"\x01a\x00"),
                     ("an answer of 2", base + b"\x01\x01a\x02"),
                     ("an upper-case name", base + b"\x01\x01A\x01"),
                     ("an empty name", base + b"\x01\x00\x01"),
                     ("a trailing byte", base + b"\x00\x00"),
                     ("a short count", base + b"\x02\x01a\x01"),
                     ("33 answers", base + bytes([33]) + b"".join(bytes([2]) + b"p%d" % (i % 10) + b"\x01"
                                                                  for i in range(33)))):
        inspect("%s choice: %s is invalid" % (suite, what), [ka],
                mint_choice(suite, kid, key, 0, 0, 0, [], raw_pt=pt), 1, {"status": "invalid"})
    args = ["mint", "--key", kf, "--kid", str(kid), "--kind", "choice", "--choices",
            "analysis=1,research=0", "--revision", "4294967295", "--ttl", "2h"]
    rc, out, err = run(*args)
    try:
        f = parse_choice(out.strip(), key)
        ok = rc == 0 and f["revision"] == 4294967295 and f["choices"] == {"analysis": True, "research": False}
        ok = ok and f["expires_at"] - f["issued_at"] == 7200
        detail = repr(f)
    except Exception as e:  # noqa: BLE001
        ok, detail = False, "%s: %s" % (type(e).__name__, e)
    T.check("%s choice: consentctl-minted, parsed here" % suite, ok, detail + show(args, rc, out, err))


def cli_tests(tmp):
    rc, out, err = run("keygen", "--suite", "aes256gcm")
    line = out.rstrip("\n")
    T.check("keygen --suite aes256gcm", rc == 0 and re.fullmatch(r"aes256gcm [0-9a-f]{64}", line)
            and "\n" not in line, show(["keygen", "--suite", "aes256gcm"], rc, out, err))
    if rc == 0 and re.fullmatch(r"aes256gcm [0-9a-f]{64}", line):
        # the generated line works as a key file, and its token decrypts here
        kf = os.path.join(tmp, "gen.key")
        write_key(kf, line)
        args = ["mint", "--key", kf, "--kid", "9", "--subject", "cust-1"]
        rc, out, err = run(*args)
        try:
            f = parse(out.strip(), bytes.fromhex(line.split()[1]))
            ok = rc == 0 and f["kind"] == "purl" and f["suite"] == "aes256gcm" and f["campaign"] == ""
            ok = ok and f["expires_at"] - f["issued_at"] == 30 * 86400
            detail = repr(f)
        except Exception as e:  # noqa: BLE001
            ok, detail = False, "%s: %s" % (type(e).__name__, e)
        T.check("keygen key usable; mint defaults purl, ttl 30d", ok, detail + show(args, rc, out, err))
    rc, out, err = run("pseudonym-keygen")
    T.check("pseudonym-keygen", rc == 0 and re.fullmatch(r"[0-9a-f]{64}\n?", out) is not None,
            show(["pseudonym-keygen"], rc, out, err))
    for args in (["mint"], ["bogus"], ["inspect"]):
        rc, out, err = run(*args)
        T.check("usage error: consentctl %s" % " ".join(args),
                rc == 2 and err.strip() != "" and "\n" not in err.strip(), show(args, rc, out, err))
    # a key file readable by group/others is refused with a clear error
    kf = os.path.join(tmp, "loose.key")
    write_key(kf, "aes256gcm " + secrets.token_hex(32))
    os.chmod(kf, 0o644)
    args = ["mint", "--key", kf, "--kid", "1", "--subject", "cust-1"]
    rc, out, err = run(*args)
    T.check("group/other-readable key file refused", rc != 0 and out.strip() == "" and err.strip() != "",
            show(args, rc, out, err))


def published_vector_tests():
    """Recompute every vector of docs/token-format.md from its inputs."""
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "token-format.md")
    vectors, block = [], False
    for line in open(doc):
        if line.startswith("```"):
            block = not block
            continue
        if block and ":" in line:
            k, v = line.rstrip("\n").split(":", 1)
            if k == "vector":
                vectors.append({})
            if vectors:
                vectors[-1][k] = v.strip()
    for v in vectors:
        name = "published vector " + v["vector"]
        if "pseudonym" in v:
            got = hashlib.blake2b(v["subject"].encode(), digest_size=16,
                                  key=bytes.fromhex(v["pseudonym_key"])).hexdigest()
            T.check(name, got == v["pseudonym"], "got " + got)
            continue
        suite, hexkey = v["key_file"].split(" ")
        kid = int(v["key_id"])
        header = bytes([0x01, KINDS[v["kind"]], SUITES[suite][0]]) + struct.pack(">H", kid)
        nonce = bytes.fromhex(v["nonce"])
        if v["kind"] == "choice":
            choices = [(a.split("=")[0], a.split("=")[1] == "1") for a in v["choices"].split()]
            pt = choice_plaintext(int(v["issued_at"]), int(v["expires_at"]), int(v["revision"]), choices)
        else:
            s, c = v["subject"].encode(), v["campaign"].encode()
            pt = (struct.pack(">QQ", int(v["issued_at"]), int(v["expires_at"])) + bytes([len(s)]) + s
                  + bytes([len(c)]) + c)
        got = b64u_enc(header + nonce + seal(suite, bytes.fromhex(hexkey), nonce, pt, header))
        T.check(name, got == v["token"], "got " + got)
    T.check("published vectors found", len(vectors) >= 3, "found %d" % len(vectors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--consentctl", required=True)
    T.CTL = os.path.abspath(ap.parse_args().consentctl)
    if not os.access(T.CTL, os.X_OK):
        print("consentctl not executable: " + T.CTL)
        return 2
    with tempfile.TemporaryDirectory(prefix="token-interop-") as tmp:
        suite_tests(tmp, "xchacha20poly1305", 0x1234)
        suite_tests(tmp, "aes256gcm", 0x0102)
        choice_tests(tmp, "xchacha20poly1305", 0x0203)
        choice_tests(tmp, "aes256gcm", 0x0304)
        cli_tests(tmp)
        published_vector_tests()
    print("%d passed, %d failed" % (T.passed, T.failed))
    return 1 if T.failed else 0


if __name__ == "__main__":
    sys.exit(main())
