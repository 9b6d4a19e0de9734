"""nginx.conf texts of the peers (issue 16): what an operator would run
instead of the consent module, in the shape of bench/macro.py's
front_conf(): the `@DIR@` placeholder for the instance's directory, a
keepalive `upstream backend`, `location /` and `location = /__check`.

  userid_conf(port, up_port, workers)      nginx's own userid filter: the
                                           lower bound for "nginx touching a
                                           cookie"; strips nothing
  lua_conf(port, up_port, workers, key_file, pseudonym_key_file, record)
                                           the B4 job in Lua (consent.lua)
  echo_upstream_conf(port, workers)        an upstream that answers with what
                                           reached it (for checks, not timing)

The purposes and strip rules below are those of front_conf(); check_peers.py
compares them with front_conf()'s output, so a change there is noticed.
"""
import base64
import os
import sys

PEERS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(PEERS))  # bench/: benchlib
from benchlib.processes import front_shell  # noqa: E402
LUA_MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")

PURPOSES = [("service", "granted"), ("billing", "granted"), ("analysis", "denied gpc"),
            ("marketing", "denied gpc"), ("campaigns", "denied gpc"), ("research", "denied"),
            ("group_sharing", "denied gpc"), ("third_parties", "denied gpc")]
UID_COOKIE, UID_PURPOSE = "__Host-vid", "analysis"
STRIP_ARGS = [("campaigns", ["utm_*", "mc_cid", "mc_eid"]),
              ("marketing", ["gclid", "dclid", "fbclid", "msclkid", "ttclid"]),
              ("analysis", ["_ga", "_gl"])]
STRIP_COOKIES = [("analysis", ["_ga", "_ga_*", "_gid", "_gat*"]),
                 ("marketing", ["_fbp", "_fbc", "_gcl_*", "IDE"]),
                 ("third_parties", ["_pin_unauth", "_uetsid", "_uetvid"])]
B4_SUBJECT = "customer-00012345"  # the subject bench/macro.py mints B4's UID token for

# A returning visitor's cookie for the userid peer: nginx's userid takes the
# first 22 base64 characters of 16 bytes. Append it to the B4 Cookie header
# ("...; " + USERID_COOKIE) so the peer reads a cookie instead of setting a
# new one on every response, as the module does for a valid UID cookie.
USERID_COOKIE = "uid=" + base64.b64encode(bytes(range(0x10, 0x20))).decode()


def _front(port, up_port, workers, load="", http="", server="", root="", check=""):
    # the shell of the module's own front (front_conf()): same upstream,
    # same locations, so only what runs inside them differs
    return front_shell(port, up_port, workers, load=load, http=http, server=server, root=root, check=check)


def userid_conf(port, up_port, workers):
    """ngx_http_userid_filter_module (built into Debian's nginx): reads or
    sets a `uid` cookie and hands the visitor id to the upstream in the
    header the module uses for its pseudonym. No consent, no stripping."""
    server = ("        userid         on;\n"
              "        userid_name    uid;\n"
              "        userid_expires 365d;\n"
              "        userid_path    /;\n"
              "        userid_flags   httponly secure samesite=lax;\n")
    # $uid_got for a returning visitor, $uid_set for a new one: one is empty
    headers = "            proxy_set_header X-Consent-Subject $uid_got$uid_set;\n"
    check = headers + "            add_header X-Uid $uid_got$uid_set always;\n"
    return _front(port, up_port, workers, server=server, root=headers, check=check)


def lua_quote(s):
    out = []
    for ch in str(s):
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif o < 0x20 or o > 0x7e:
            out.append("".join("\\%d" % b for b in ch.encode()))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _lua_table(value):
    if isinstance(value, dict):
        return "{" + ", ".join("[%s] = %s" % (lua_quote(k), _lua_table(v)) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_lua_table(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return lua_quote(value)


def lua_conf(port, up_port, workers, key_file, pseudonym_key_file, record, subject=B4_SUBJECT, kid=1,
             records=None):
    """consent.lua in access_by_lua and header_filter_by_lua, with Debian's
    libnginx-mod-http-lua loaded explicitly. `record` (field -> "1"/"0", as
    in Redis) is preloaded into the lua_shared_dict for `subject`; `records`
    ({subject: record}) preloads more."""
    conf = dict(token_key_file=key_file, kid=kid, pseudonym_key_file=pseudonym_key_file,
                purposes=[list(p) for p in PURPOSES], uid_cookie=UID_COOKIE, uid_purpose=UID_PURPOSE,
                strip_args=[[p, pats] for p, pats in STRIP_ARGS],
                strip_cookies=[[p, pats] for p, pats in STRIP_COOKIES], dict="consent", memo_size=4096)
    preload = dict(records or {})
    if record is not None:
        preload[subject] = record
    load = "".join("load_module %s;\n" % m for m in LUA_MODULES)
    http = ("    lua_package_path %s;\n"
            "    lua_shared_dict consent 16m;\n"
            "    init_by_lua_block {\n"
            "        local consent = require \"consent\"\n"
            "        consent.init(%s)\n"
            "%s"
            "    }\n") % (lua_quote(PEERS + "/?.lua;;"), _lua_table(conf),
                         "".join("        consent.preload(%s, %s)\n" % (lua_quote(s), _lua_table(r))
                                 for s, r in preload.items()))
    server = ('        set $consent_purposes "";\n'
              '        set $consent_subject "";\n')
    headers = ("            proxy_set_header X-Consent-Purposes $consent_purposes;\n"
               "            proxy_set_header X-Consent-Subject $consent_subject;\n")
    root = ("            access_by_lua_block { require(\"consent\").access(false) }\n"
            "            header_filter_by_lua_block { require(\"consent\").header_filter(false) }\n") + headers
    check = ("            access_by_lua_block { require(\"consent\").access(true) }\n"
             "            header_filter_by_lua_block { require(\"consent\").header_filter(true) }\n") + headers
    return _front(port, up_port, workers, load=load, http=http, server=server, root=root, check=check)


def echo_upstream_conf(port, workers=1):
    """An upstream whose body is what reached it:
    request_uri|Cookie|X-Consent-Purposes|X-Consent-Subject. It answers with
    the Set-Cookie headers a request asks for in X-Echo-Set-Cookie-1 and -2."""
    return """
worker_processes %d;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path @DIR@/tmp; proxy_temp_path @DIR@/tmp; fastcgi_temp_path @DIR@/tmp;
    uwsgi_temp_path @DIR@/tmp; scgi_temp_path @DIR@/tmp;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:%d backlog=4096;
        location / {
            default_type text/plain;
            add_header Set-Cookie $http_x_echo_set_cookie_1;
            add_header Set-Cookie $http_x_echo_set_cookie_2;
            return 200 "$request_uri|$http_cookie|$http_x_consent_purposes|$http_x_consent_subject";
        }
    }
}
""" % (workers, port)
