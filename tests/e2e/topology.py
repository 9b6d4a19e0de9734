"""A Redis topology for tests: a primary, replicas and Sentinels, started,
watched and broken in one place.

    from topology import Topology
    topo = Topology(replicas=2, sentinels=3).start()   # returns once ready
    topo.master_name             # "consent": consentctl --redis sentinel:consent
    topo.sentinel_addresses      # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3": --sentinels
    topo.sentinel_address_list   # the same as a list (consent_redis_sentinels A B C)
    topo.primary                 # the RedisServer the Sentinels name primary now
    topo.replicas                # the live data nodes that are not the primary
    old = topo.kill_primary()    # SIGKILL
    new, took = topo.wait_failover()   # a new primary, ROLE master, all Sentinels agree
    topo.restart(old)            # back, reconfigured by Sentinel as a replica of `new`
    topo.break_link(r); topo.restore_link(r)   # REPLICAOF a dead port, and back
    topo.kill_sentinel(0); topo.restart_sentinel(0)
    topo.stop(node); topo.cont(node)           # SIGSTOP / SIGCONT, any node
    topo.call(node, "ROLE")      # one command over a fresh connection (TLS and AUTH as needed)
    topo.pipeline(node, [("SET", "k", "v"), ("WAIT", 1, 1000)])   # several on one
    topo.describe()              # roles, Sentinel views and log tails, for failure messages
    topo.cleanup()               # also done at exit

    # TLS on every link, ACL users on the data nodes, a password on the
    # Sentinels; `with` cleans up at the end of the block:
    with Topology(replicas=1, tls=Pki(tmpdir), password="admin-pw",
                  replication_user=("repl", "repl-pw"), monitor_user=("sentinel", "mon-pw"),
                  sentinel_password="sentinels-pw") as topo:
        old, new, took = topo.failover()

Every node is a harness.RedisServer on 127.0.0.1 with a free port (nodes
and sentinels are lists of them; nodes[0] starts as the primary), so what
tests already do with one server (cli(), hgetall(), log(), sigstop())
works on each, and harness's atexit stops them all.

Options of Topology():
    replicas, sentinels   how many (default 2 and 3)
    master_name           the name Sentinels monitor (default "consent")
    quorum                Sentinels that must agree the primary is down (2)
    down_after_ms         down-after-milliseconds (1000)
    failover_timeout_ms   failover-timeout (5000). Sentinel also uses it as
                          the time before it puts back a replica pointed
                          elsewhere (break_link holds at least that long),
                          and a failed failover is retried after twice it.
    tls                   a pki.Pki: every node and Sentinel serves TLS only,
                          replication and Sentinel links use TLS too
                          (tls-replication yes), with pki.server's
                          certificate (names 127.0.0.1) and pki.client as the
                          certificate each presents when it connects out
    tls_auth_clients      "no" (default), "yes" or "optional" on every node
    password              the data nodes' `default` user password; replicas
                          authenticate with it (masterauth) and Sentinels
                          too (auth-pass), unless the users below are given
    acl                   more ACL lines for the data nodes ("user writer on ...")
    replication_user      (name, password): an ACL user with REPLICATION_RULES
                          that replicas log in as (masteruser, masterauth)
    monitor_user          (name, password): an ACL user with MONITOR_RULES
                          that Sentinels log in as (sentinel auth-user/auth-pass)
    sentinel_password     requirepass on the Sentinels (and what they use with
                          each other: sentinel-pass)
    sentinel_acl          ACL lines on the Sentinels ("user ctl on >pw ...")
    node_hosts            {index: "127.0.0.2"}: the loopback address a data
                          node binds (and, as a replica, announces); 127.0.0.1
                          for the others. 127.0.0.1 is this host's only
                          interface address on lo, so a node elsewhere on
                          127/8 passes for one on another host.

Timing: Sentinels get `SENTINEL DEBUG info-period 1000 publish-period 500
tilt-period 5000 ping-period 250` so that they discover each other and
notice changes in about a second rather than ten (and do not fail a new
primary over again: _start_sentinel says why); every wait polls and is bounded by a
timeout scaled with harness.slow() (CONSENT_E2E_SLOWDOWN), generous for a
loaded 2-core machine, and fails with describe()'s picture.

Python 3 standard library only: commands go over a small RESP client here
(ssl for TLS), not redis-cli, so the waits can poll cheaply.
"""
import os
import socket
import ssl
import time

import harness
from harness import RedisServer, free_port, slow

# What a replica's ACL user needs on its primary, and what a Sentinel's user
# needs on the data nodes (Redis's documentation, "ACL" and "Sentinel").
REPLICATION_RULES = "+psync +replconf +ping"
MONITOR_RULES = ("allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info "
                 "+client|setname +client|kill +script|kill")


class RespError(Exception):
    """An error reply ("READONLY ...", "NOAUTH ..."); returned by call(),
    not raised, so that tests can look at it."""

    def __str__(self):
        return self.args[0]


def _read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode("latin-1")
    if kind == b"-":
        return RespError(rest.decode("latin-1"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("connection closed mid-reply")
        return data[:-2].decode("latin-1")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise ConnectionError("not RESP: %r" % line[:40])


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode("latin-1")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def call(server, *args, timeout=2.0, user=None, password=None):
    """One command to a RedisServer over a fresh connection: TLS when it
    serves TLS, AUTH as its default user with its password (or as `user`
    with `password`). Returns the reply (str, int, None, list, RespError).
    OSError/ConnectionError when the server cannot be reached or does not
    answer within `timeout`."""
    return pipeline(server, [args], timeout=timeout, user=user, password=password)[0]


def pipeline(server, commands, timeout=2.0, user=None, password=None):
    """Several commands on one connection (as call()); their replies. For
    what must share a connection: WAIT counts the replicas that have this
    connection's last write."""
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        if server.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            if server._cli_insecure:
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx.load_verify_locations(server.tls["ca"])
            if server.tls.get("client_cert"):
                ctx.load_cert_chain(server.tls["client_cert"], server.tls["client_key"])
            sock = ctx.wrap_socket(sock)
        f = sock.makefile("rb")
        pw = server.password if password is None else password
        if pw:
            sock.sendall(_encode(["AUTH", user, pw] if user else ["AUTH", pw]))
            r = _read(f)
            if isinstance(r, RespError):
                raise ConnectionError("AUTH to %s failed: %s" % (server.name, r))
        sock.sendall(b"".join(_encode(c) for c in commands))
        return [_read(f) for _ in commands]
    finally:
        sock.close()


def _pairs(flat):
    """A flat [k1, v1, k2, v2, ...] reply as a dict."""
    return dict(zip(flat[0::2], flat[1::2])) if isinstance(flat, list) else {}


def _info(text):
    """INFO's text as a dict."""
    out = {}
    for line in (text or "").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


class TopologyError(AssertionError):
    pass


class Topology:
    def __init__(self, replicas=2, sentinels=3, master_name="consent", quorum=2, down_after_ms=1000,
                 failover_timeout_ms=5000, tls=None, tls_auth_clients="no", password=None, acl=None,
                 replication_user=None, monitor_user=None, sentinel_password=None, sentinel_acl=None,
                 node_hosts=None):
        self.master_name = master_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.pki = tls
        self.tls = tls.redis_tls(auth_clients=tls_auth_clients) if tls else None
        self.password = password
        self.replication_user = replication_user
        self.monitor_user = monitor_user
        self.sentinel_password = sentinel_password
        self._killed_at = None
        self._last_primary = None
        self._started = False

        data_acl = None
        if acl is not None or replication_user or monitor_user:
            data_acl = list(acl or [])
            if replication_user:
                data_acl.append("user %s on >%s %s" % (replication_user[0], replication_user[1], REPLICATION_RULES))
            if monitor_user:
                data_acl.append("user %s on >%s %s" % (monitor_user[0], monitor_user[1], MONITOR_RULES))
        common = []
        if replication_user:
            common += ["--masteruser", replication_user[0], "--masterauth", replication_user[1]]
        elif password:
            common += ["--masterauth", password]
        # A full sync starts at once, not after 5 s waiting for more replicas.
        common += ["--repl-diskless-sync-delay", "0"]
        common += self._tls_args()

        self.nodes = []
        for i in range(replicas + 1):
            host = (node_hosts or {}).get(i, "127.0.0.1")
            args = list(common)
            if host != "127.0.0.1":
                # what the primary (and so Sentinel) reports for it
                args += ["--replica-announce-ip", host]
            self.nodes.append(RedisServer(password=password, acl=data_acl, tls=self.tls,
                                          args=args, name="node%d" % i, host=host))
        first = self.nodes[0]
        for n in self.nodes[1:]:
            n.args += ["--replicaof", first.host, str(first.port)]

        self.sentinels = []
        for i in range(sentinels):
            conf = ["sentinel monitor %s %s %d %d" % (master_name, first.host, first.port, quorum),
                    "sentinel down-after-milliseconds %s %d" % (master_name, down_after_ms),
                    "sentinel failover-timeout %s %d" % (master_name, failover_timeout_ms),
                    # every replica moves to a new primary at once
                    "sentinel parallel-syncs %s %d" % (master_name, max(1, replicas))]
            if monitor_user:
                conf += ["sentinel auth-user %s %s" % (master_name, monitor_user[0]),
                         "sentinel auth-pass %s %s" % (master_name, monitor_user[1])]
            elif password:
                conf += ["sentinel auth-pass %s %s" % (master_name, password)]
            if sentinel_password:
                conf += ["sentinel sentinel-pass %s" % sentinel_password]
            self.sentinels.append(RedisServer(password=sentinel_password, acl=sentinel_acl, tls=self.tls,
                                              config=conf, sentinel=True, args=self._tls_args(),
                                              name="sentinel%d" % i))

    def _tls_args(self):
        if not self.tls:
            return []
        # Replication and Sentinel links use TLS, presenting the client
        # certificate (the server's has only serverAuth).
        return ["--tls-replication", "yes", "--tls-client-cert-file", self.pki.client.cert,
                "--tls-client-key-file", self.pki.client.key]

    # ---- start and stop ------------------------------------------------------------------

    def start(self, timeout=None):
        """Starts the primary, the replicas, then the Sentinels, and waits
        until the topology is ready (wait_ready)."""
        try:
            for n in self.nodes:
                n.start()
            for s in self.sentinels:
                self._start_sentinel(s)
            self._started = True
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _start_sentinel(self, s):
        s.start()
        # Discovery in about a second instead of ten; a short TILT should a
        # loaded machine stall a Sentinel's timer for 2 s. Pings every 250 ms:
        # Sentinel counts a server it has just started watching (the new
        # primary after a failover) as pinged when it starts, and pings at
        # min(down-after, ping-period); with both at 1 s the first PONG can
        # come just too late, and a healthy new primary is failed over again.
        r = self.call(s, "SENTINEL", "DEBUG", "info-period", 1000, "publish-period", 500, "tilt-period", 5000,
                      "ping-period", 250)
        if isinstance(r, RespError):
            raise TopologyError("%s: SENTINEL DEBUG failed: %s" % (s.name, r))

    def cleanup(self):
        for s in self.sentinels + self.nodes:
            s.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # ---- addresses -----------------------------------------------------------------------

    @property
    def sentinel_addresses(self):
        """consentctl's --sentinels: every Sentinel, in order, dead ones too."""
        return ",".join(s.address for s in self.sentinels)

    @property
    def sentinel_address_list(self):
        """The same as a list (consent_redis_sentinels takes them
        space-separated)."""
        return [s.address for s in self.sentinels]

    def node_at(self, host, port):
        for n in self.nodes:
            if n.host == host and n.port == int(port):
                return n
        return None

    def live_sentinels(self):
        return [s for s in self.sentinels if s.alive()]

    # ---- asking ----------------------------------------------------------------------------

    def call(self, server, *args, timeout=2.0):
        """call() on one of this topology's servers (as its administrator)."""
        return call(server, *args, timeout=timeout)

    def pipeline(self, server, commands, timeout=2.0):
        """pipeline() on one of this topology's servers (as its administrator)."""
        return pipeline(server, commands, timeout=timeout)

    def try_call(self, server, *args, timeout=2.0):
        """call(), or None when the server cannot be reached or does not
        answer in time (dead, stopped)."""
        if not server.alive() or server.stopped:
            return None
        try:
            return call(server, *args, timeout=timeout)
        except (OSError, ConnectionError, ValueError):
            return None

    def sentinel_views(self):
        """What each Sentinel (live or not) answers to get-master-addr-by-name:
        (host, port), None for nil, or a string saying why there is none."""
        out = []
        for s in self.sentinels:
            r = self.try_call(s, "SENTINEL", "get-master-addr-by-name", self.master_name)
            if isinstance(r, list) and len(r) == 2:
                out.append((r[0], int(r[1])))
            elif isinstance(r, RespError):
                out.append("error: %s" % r)
            else:
                out.append("no answer" if r is None and not s.alive() else r)
        return out

    def sentinel_primary(self):
        """The (host, port) every live Sentinel names, or None while they
        disagree or some do not know."""
        views = [v for v, s in zip(self.sentinel_views(), self.sentinels) if s.alive() and not s.stopped]
        if views and all(isinstance(v, tuple) for v in views) and len(set(views)) == 1:
            return views[0]
        return None

    @property
    def primary(self):
        """The RedisServer every live Sentinel names primary now."""
        addr = self.sentinel_primary()
        node = self.node_at(*addr) if addr else None
        if node is None:
            raise TopologyError("the Sentinels do not agree on a primary:\n" + self.describe())
        return node

    @property
    def replicas(self):
        """Live data nodes other than the primary."""
        p = self.primary
        return [n for n in self.nodes if n is not p and n.alive()]

    def role(self, node):
        """ROLE as a list, or None when the node does not answer."""
        r = self.try_call(node, "ROLE")
        return r if isinstance(r, list) else None

    def replication(self, node):
        """INFO replication as a dict ({} when the node does not answer)."""
        r = self.try_call(node, "INFO", "replication")
        return _info(r) if isinstance(r, str) else {}

    def link_up(self, replica, primary=None):
        """The replica's link to `primary` (default: any) is up."""
        info = self.replication(replica)
        if info.get("role") != "slave" or info.get("master_link_status") != "up":
            return False
        return primary is None or (info.get("master_host"), info.get("master_port")) == (primary.host,
                                                                                          str(primary.port))

    # ---- waiting ---------------------------------------------------------------------------

    def _wait(self, what, check, timeout):
        deadline = time.monotonic() + slow(timeout)
        while True:
            r = check()
            if r:
                return r
            if time.monotonic() > deadline:
                raise TopologyError("%s: not within %gs\n%s" % (what, slow(timeout), self.describe()))
            time.sleep(0.1)

    def ready(self, exclude=()):
        """Whether the topology is ready: every live Sentinel names the same
        primary, whose ROLE is master; every other live data node (but
        `exclude`) replicates it with master_link_status:up; and every live
        Sentinel knows the primary as a healthy master, each of those
        replicas as healthy, and every other live Sentinel."""
        addr = self.sentinel_primary()
        primary = self.node_at(*addr) if addr else None
        if primary is None or not primary.alive() or primary.stopped:
            return False
        role = self.role(primary)
        if not role or role[0] != "master":
            return False
        replicas = [n for n in self.nodes if n is not primary and n.alive() and not n.stopped and n not in exclude]
        if not all(self.link_up(r, primary) for r in replicas):
            return False
        live = [s for s in self.sentinels if s.alive() and not s.stopped]
        for s in live:
            master = _pairs(self.try_call(s, "SENTINEL", "master", self.master_name))
            if master.get("flags") != "master":
                return False
            known = {}
            for e in self.try_call(s, "SENTINEL", "replicas", self.master_name) or []:
                e = _pairs(e)
                known[(e.get("ip"), e.get("port"))] = e
            for r in replicas:
                e = known.get((r.host, str(r.port)))
                if not e or e.get("flags") != "slave" or e.get("master-link-status") != "ok":
                    return False
            peers = {(_pairs(e).get("ip"), _pairs(e).get("port")): _pairs(e)
                     for e in self.try_call(s, "SENTINEL", "sentinels", self.master_name) or []}
            for other in live:
                if other is s:
                    continue
                e = peers.get((other.host, str(other.port)))
                if not e or e.get("flags") != "sentinel":
                    return False
        return True

    def wait_ready(self, timeout=None, exclude=()):
        """Waits until ready(exclude) (default timeout 60 s); returns the primary."""
        self._wait("topology ready", lambda: self.ready(exclude), timeout or 60)
        self._last_primary = self.primary
        return self._last_primary

    # ---- failures ----------------------------------------------------------------------------

    def kill_primary(self):
        """SIGKILLs the primary the Sentinels name; returns it."""
        p = self.primary
        self._last_primary = p
        p.kill()
        self._killed_at = time.monotonic()
        return p

    def wait_failover(self, old=None, timeout=60):
        """Waits until every live Sentinel names one primary other than `old`
        (default: the last one kill_primary() killed) and that server's ROLE
        is master. Returns (new primary, seconds since kill_primary())."""
        old = old or self._last_primary

        def done():
            addr = self.sentinel_primary()
            node = self.node_at(*addr) if addr else None
            if node is None or node is old:
                return None
            role = self.role(node)
            return node if role and role[0] == "master" else None
        node = self._wait("failover away from %s" % (old.name if old else "?"), done, timeout)
        took = time.monotonic() - self._killed_at if self._killed_at is not None else None
        self._last_primary = node
        return node, took

    def failover(self, timeout=60):
        """kill_primary(), then wait_failover(): (old, new, seconds)."""
        old = self.kill_primary()
        new, took = self.wait_failover(old, timeout=timeout)
        return old, new, took

    def restart(self, node, timeout=60):
        """Starts a killed data node again and waits until it replicates the
        current primary with its link up (Sentinel reconfigures an old
        primary into a replica). Returns the node."""
        node.start()
        primary = self.primary
        self._wait("%s back as a replica of %s" % (node.name, primary.name),
                   lambda: node is not primary and self.link_up(node, primary), timeout)
        return node

    def break_link(self, replica, timeout=30):
        """Points the replica at a port where nobody listens (REPLICAOF), and
        waits until it reports master_link_status:down. Sentinel puts it back
        after failover_timeout_ms; restore_link() does it at once."""
        dead = free_port()
        r = self.call(replica, "REPLICAOF", "127.0.0.1", dead)
        if isinstance(r, RespError):
            raise TopologyError("%s: REPLICAOF failed: %s" % (replica.name, r))
        self._wait("%s's link down" % replica.name,
                   lambda: self.replication(replica).get("master_link_status") == "down", timeout)
        return dead

    def restore_link(self, replica, timeout=30):
        """Points the replica back at the primary and waits for its link."""
        primary = self.primary
        r = self.call(replica, "REPLICAOF", primary.host, primary.port)
        if isinstance(r, RespError):
            raise TopologyError("%s: REPLICAOF failed: %s" % (replica.name, r))
        self._wait("%s's link up" % replica.name, lambda: self.link_up(replica, primary), timeout)

    def kill_sentinel(self, i):
        """SIGKILLs Sentinel number i; returns it."""
        self.sentinels[i].kill()
        return self.sentinels[i]

    def restart_sentinel(self, i, timeout=None):
        """Starts Sentinel number i again (it keeps what it learnt in its
        configuration file) and waits until the topology is ready."""
        self._start_sentinel(self.sentinels[i])
        self.wait_ready(timeout=timeout)

    def stop(self, server):
        """SIGSTOP (a node or a Sentinel): it keeps its connections and
        answers nothing."""
        server.sigstop()

    def cont(self, server):
        server.sigcont()

    # ---- for failure messages ---------------------------------------------------------------

    def describe(self, log_lines=8):
        """Every server's state (alive, role, link) and each Sentinel's view,
        with the end of each log."""
        out = []
        for n in self.nodes:
            state = "dead" if not n.alive() else "stopped" if n.stopped else None
            if state is None:
                info = self.replication(n)
                state = info.get("role", "no answer")
                if state == "slave":
                    state += " of %s:%s link %s" % (info.get("master_host"), info.get("master_port"),
                                                    info.get("master_link_status"))
            out.append("  %s %s: %s" % (n.name, n.address, state))
        for s, view in zip(self.sentinels, self.sentinel_views()):
            state = "dead" if not s.alive() else "stopped" if s.stopped else "names %s" % (view,)
            out.append("  %s %s: %s" % (s.name, s.address, state))
        for srv in self.nodes + self.sentinels if log_lines > 0 else []:
            lines = srv.log(20000).splitlines()[-log_lines:]
            out.append("  -- %s log:\n%s" % (srv.name, "\n".join("     " + l for l in lines)))
        return "\n".join(out)
