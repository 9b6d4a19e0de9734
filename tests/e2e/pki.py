"""A throwaway PKI for TLS tests, made with the openssl command-line tool.

    from pki import Pki
    pki = Pki(directory)            # everything below, in about 0.2 s
    pki.ca.cert                     # the CA that signs every certificate here
    pki.server.cert, pki.server.key # for localhost, 127.0.0.1 and ::1
    pki.other                       # the same CA, but only for other.example
    pki.expired                     # localhost/127.0.0.1/::1, valid in 2020 only
    pki.client                      # a client certificate (tls-auth-clients yes)
    pki.wrong_ca.cert               # an unrelated CA: verifies nothing here
    pki.issue_server("edge2", ["edge2.test", "127.0.0.2"])   # one more
    harness.RedisServer(tls=pki.redis_tls(pki.expired)).start()  # a TLS Redis

Every certificate and key is a PEM file in `directory` (keys mode 0600), EC
P-256 so that making them is fast. Nothing is cached: each Pki is new, and
removing `directory` removes it. The certificates are signed with
`openssl ca`, which takes explicit validity dates, so the expired one is
expired from end to end (notBefore and notAfter in the past): a verifier
reports "certificate has expired", not "certificate is not yet valid".

Python 3 standard library and /usr/bin/openssl (Debian's `openssl` package)
only; no Python crypto library, so what the tests trust is what OpenSSL
made.
"""
import collections
import ipaddress
import os
import shutil
import subprocess
import time

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
OTHER_NAME = "other.example"
EXPIRED_FROM, EXPIRED_TO = "20200101000000Z", "20200201000000Z"

CertKey = collections.namedtuple("CertKey", "cert key")
CertKey.__doc__ = "Paths of a PEM certificate and its PEM private key."

_REQ_CONFIG = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

# openssl ca keeps a small database per CA; only what it insists on.
_CA_CONFIG = """\
[ ca ]
default_ca = this_ca
[ this_ca ]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/issued
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
[ any_name ]
commonName = supplied
"""


def _run(*args):
    r = subprocess.run([OPENSSL] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.strip()))
    return r.stdout


def _utc(t):
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


def _san(names):
    """subjectAltName for a list of host names and IP addresses."""
    out = []
    for n in names:
        try:
            ipaddress.ip_address(n)
            out.append("IP:" + n)
        except ValueError:
            out.append("DNS:" + n)
    return ", ".join(out)


class Pki:
    """A CA, an unrelated CA and the certificates TLS tests need, in
    `directory` (which must exist). Attributes are CertKey(cert, key) paths:
    ca, wrong_ca, server (names), other (other_name only), expired (names,
    valid only in January 2020), client (a client certificate, no names)."""

    def __init__(self, directory, names=DEFAULT_NAMES, other_name=OTHER_NAME):
        self.dir = os.path.abspath(directory)
        self._req_config = self._write("req.cnf", _REQ_CONFIG)
        self.ca = self._make_ca("ca", "consent test CA")
        self.wrong_ca = self._make_ca("wrong-ca", "unrelated test CA")
        self.server = self.issue_server("server", names)
        self.other = self.issue_server("other", [other_name])
        self.expired = self.issue_server("expired", names, not_before=EXPIRED_FROM, not_after=EXPIRED_TO)
        self.client = self.issue_client("client", "consent test client")

    def as_dict(self):
        """{"ca": CertKey, ...}: every certificate made so far by name."""
        return {k: v for k, v in vars(self).items() if isinstance(v, CertKey)}

    def redis_tls(self, server=None, auth_clients="no"):
        """The tls= dict of harness.RedisServer: the server presents `server`
        (default self.server; e.g. self.other or self.expired), trusts
        self.ca for client certificates, and the harness's redis-cli
        presents self.client. auth_clients: "no", "yes" or "optional"."""
        server = server or self.server
        return {"cert": server.cert, "key": server.key, "ca": self.ca.cert, "auth_clients": auth_clients,
                "client_cert": self.client.cert, "client_key": self.client.key}

    # ---- issuing -------------------------------------------------------------------

    def issue_server(self, name, names, not_before=None, not_after=None):
        """A server certificate for host names and IPs `names` (the first is
        also the CN), signed by self.ca, in NAME.crt and NAME.key. Validity:
        from an hour ago to a day from now unless given as YYYYMMDDHHMMSSZ."""
        ext = ("basicConstraints = critical, CA:FALSE\n"
               "keyUsage = critical, digitalSignature\n"
               "extendedKeyUsage = serverAuth\n"
               "subjectAltName = %s\n"
               "authorityKeyIdentifier = keyid\n" % _san(names))
        return self._issue(name, names[0], ext, not_before, not_after)

    def issue_client(self, name, cn):
        """A client certificate with common name `cn`, signed by self.ca."""
        ext = ("basicConstraints = critical, CA:FALSE\n"
               "keyUsage = critical, digitalSignature\n"
               "extendedKeyUsage = clientAuth\n"
               "authorityKeyIdentifier = keyid\n")
        return self._issue(name, cn, ext, None, None)

    # ---- the steps --------------------------------------------------------------------

    def _write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def _key(self, name):
        # Made 0600 before openssl writes into it, so it is never readable
        # by others, not even for a moment.
        path = self._write(name + ".key", "", 0o600)
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
        os.chmod(path, 0o600)
        return path

    def _make_ca(self, name, cn):
        key = self._key(name)
        cert = os.path.join(self.dir, name + ".crt")
        _run("req", "-x509", "-new", "-config", self._req_config, "-extensions", "v3_ca",
             "-key", key, "-subj", "/CN=" + cn, "-days", "2", "-sha256",
             "-set_serial", "0x" + os.urandom(8).hex(), "-out", cert)
        # openssl ca's database for this CA
        db = os.path.join(self.dir, name + ".db")
        os.makedirs(os.path.join(db, "issued"))
        self._write(os.path.join(db, "index.txt"), "")
        self._write(os.path.join(db, "serial"), "1000\n")
        self._write(os.path.join(db, "ca.cnf"), _CA_CONFIG.format(dir=db))
        return CertKey(cert, key)

    def _issue(self, name, cn, ext, not_before, not_after):
        key = self._key(name)
        csr = os.path.join(self.dir, name + ".csr")
        _run("req", "-new", "-config", self._req_config, "-key", key, "-subj", "/CN=" + cn, "-out", csr)
        extfile = self._write(name + ".ext", ext)
        now = time.time()
        cert = os.path.join(self.dir, name + ".crt")
        ca = self.ca
        db = os.path.join(self.dir, "ca.db")
        _run("ca", "-batch", "-notext", "-config", os.path.join(db, "ca.cnf"), "-cert", ca.cert,
             "-keyfile", ca.key, "-in", csr, "-out", cert, "-extfile", extfile,
             "-startdate", not_before or _utc(now - 3600), "-enddate", not_after or _utc(now + 86400))
        return CertKey(cert, key)


if __name__ == "__main__":  # a quick look: python3 pki.py DIR
    import sys
    p = Pki(sys.argv[1])
    for k, v in p.as_dict().items():
        print(k, v.cert, v.key)
