"""A real browser: headless Debian Chromium, the lab's ticket cache and
krb5.conf, host names mapped to 127.0.0.x, through haproxy on the VIP."""

import os
import re

import pytest

import kdclient
from kdlb import RESOLVE
from kdnames import VIP

pytestmark = pytest.mark.skipif(not os.path.exists(kdclient.CHROMIUM),
                                reason="Debian chromium is not installed (t/install-deps)")


def page_env(dom):
    """env.cgi's text/plain output as Chromium renders it (inside <pre>)."""
    text = re.sub(r"<[^>]+>", "\n", dom)
    return kdclient.cgi_env(text.replace("&amp;", "&"))


def test_chromium_reaches_back_end_through_the_vip(site, realm, alice_ccache, lab_dir):
    dom = kdclient.chromium(realm, alice_ccache, RESOLVE, site.url("/deleg/env.cgi"), lab_dir)
    env = page_env(dom)
    # the back end's own page, as alice, reached by delegation from a node
    assert env.get("REMOTE_USER") == "alice@EXAMPLE.TEST", dom[:2000]
    assert env["KDELEG_SPN"] == "HTTP/backend.example.test@EXAMPLE.TEST"


def test_chromium_follows_the_fqdn_fallback(blind_site, realm, alice_ccache, lab_dir):
    site = blind_site
    marks = site.marks()
    dom = kdclient.chromium(realm, alice_ccache, RESOLVE, site.url("/private/cgi/env.cgi?a=1"),
                            lab_dir)
    env = page_env(dom)
    assert env.get("REMOTE_USER") == "alice@EXAMPLE.TEST", dom[:2000]
    assert env["KDELEG_AUTH_METHOD"] == "session"
    # the page was finally served for the VIP name, with the query intact
    assert env["HTTP_HOST"] == f"{VIP}:{site.proxy.port}"
    assert env["QUERY_STRING"] == "a=1"
    assert len(site.lines(marks, "KD00701")) == 1
    assert len(site.lines(marks, "KD00705")) == 1
