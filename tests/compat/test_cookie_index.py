#!/usr/bin/python3
"""Besides its header list, nginx keeps an index of the request's Cookie
headers: an array (headers_in.cookies) before 1.23, a chain through
ngx_table_elt_t->next (headers_in.cookie) since. proxy_pass sends the list;
$http_cookie and $cookie_NAME read the index. When the module strips
cookies, or removes a whole Cookie header, both must agree, or a variable
still hands the stripped cookie to the upstream (or to a log).

The e2e suites check the list only; this checks the index, on any nginx
(the packaged 1.22 by default; nginx126_e2e.sh runs it against 1.26 with
CONSENT_E2E_NGINX_BIN).

Run: /usr/bin/python3 tests/compat/test_cookie_index.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
_E2E = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e")
sys.path.insert(0, _E2E)
import harness as H  # noqa: E402
import test_request_path as T  # noqa: E402  (its configuration and base class)

NAMES = ("a", "b", "_ga", "_gid", "_fbp", "vid")

LOC_INDEX = """
        location /ck/ {{ consent on;
            proxy_set_header X-Http-Cookie $http_cookie;
""" + "".join("            proxy_set_header X-C%s $cookie_%s;\n" % (n, n) for n in NAMES) + """
            {proxy} }}
"""


class TestCookieIndex(T.ConsentE2E):
    locations = LOC_INDEX

    def check(self, headers, want_cookies, want_vars):
        """The upstream gets want_cookies (the list), $http_cookie is them
        joined by "; " and $cookie_NAME is want_vars.get(NAME) (the index)."""
        s = self.seen("/ck/x", headers)
        self.assertEqual(s.cookies, want_cookies, "Cookie headers sent (the list)")
        self.assertEqual(s.one("X-Http-Cookie"), "; ".join(want_cookies) or None,
                         "$http_cookie (the index)")
        got = {n: s.one("X-C" + n) for n in NAMES}
        self.assertEqual(got, {n: want_vars.get(n) for n in NAMES}, "$cookie_NAME (the index)")
        return s

    def test_pairs_stripped_in_one_header(self):
        self.check([("Cookie", "a=1; _ga=GA1.2.3; b=2")], ["a=1; b=2"], {"a": "1", "b": "2"})

    def test_whole_headers_removed(self):
        self.check([("Cookie", "a=1; _ga=2"), ("Cookie", "_fbp=1; _gid=2"), ("X-Other", "o"),
                    ("Cookie", "vid=abc"), ("Cookie", "b=2; c=3")],
                   ["a=1", "b=2; c=3"], {"a": "1", "b": "2"})

    def test_first_and_last_header_removed(self):
        self.check([("Cookie", "_ga=2"), ("Cookie", "a=1"), ("Cookie", "_fbp=3")],
                   ["a=1"], {"a": "1"})

    def test_every_header_removed(self):
        self.check([("Cookie", "_ga=2"), ("Cookie", "_fbp=1; vid=x")], [], {})

    def test_nothing_stripped(self):
        self.check([("Cookie", "a=1"), ("Cookie", "b=2")], ["a=1", "b=2"], {"a": "1", "b": "2"})

    def test_many_headers_across_list_parts(self):
        # 45 Cookie headers over three 20-element list parts, every third emptied
        headers, want = [], []
        for i in range(45):
            if i % 3 == 0:
                headers.append(("Cookie", "_ga=%d; vid=x%d" % (i, i)))
            else:
                headers.append(("Cookie", "k%d=v" % i))
                want.append("k%d=v" % i)
            if i % 7 == 0:
                headers.append(("X-Other", str(i)))
        self.check(headers, want, {})
        self.assertEqual(self.ngx.crash_lines(), [])


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
