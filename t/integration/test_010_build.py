"""The build itself: what the .so exports, the core/glue split, configure's
hints, and Debian's own apache2 loading the module the way a2enmod would."""

import base64
import glob
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import REPO
from kdlab import sanitizer_env


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def run_apache2(args):
    # A sanitized module (t/run-tests' sanitizer stage) needs its runtime
    # preloaded in every apache2 that loads it, -t included.
    return run(args, env=sanitizer_env(os.environ))


def test_only_the_module_record_is_exported(module_path):
    out = run(["nm", "-D", "--defined-only", module_path]).stdout
    symbols = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert symbols == {"kdeleg_module"}


def test_core_isolation_check_catches_httpd_include():
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(REPO, "mod_kdeleg"), os.path.join(tmp, "mod_kdeleg"),
                        ignore=shutil.ignore_patterns(".libs", ".deps", "*.o", "*.lo", "*.la"))
        script = os.path.join(REPO, "t", "check-core-isolation.sh")
        ok = run(["sh", script], env={**os.environ, "srcdir": tmp})
        assert ok.returncode == 0, ok.stdout
        with open(os.path.join(tmp, "mod_kdeleg", "kd_log.c"), "a") as f:
            f.write('\n#include "http_log.h"\n')
        bad = run(["sh", script], env={**os.environ, "srcdir": tmp})
        assert bad.returncode == 1 and "kd_log.c" in bad.stdout


def test_core_does_not_compile_with_httpd_header():
    """The core's include path has no httpd headers: the compiler enforces it."""
    flags = run(["apr-1-config", "--cppflags", "--includes"]).stdout.split()
    src = '#include <httpd.h>\nint main(void) { return 0; }\n'
    proc = run(["cc", "-fsyntax-only", "-x", "c", "-", *flags], input=src)
    assert proc.returncode != 0 and "httpd.h" in proc.stderr


@pytest.mark.skipif(not os.path.exists(os.path.join(REPO, "configure")),
                    reason="configure not generated (run ./autogen.sh)")
def test_configure_names_the_missing_package():
    # A minimal copy: a configured source tree refuses out-of-tree runs.
    with tempfile.TemporaryDirectory() as build:
        for name in ("configure", "Makefile.in", "build-aux", "mod_kdeleg/mod_kdeleg.c"):
            src, dst = os.path.join(REPO, name), os.path.join(build, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, dst)
        proc = run(["./configure", "--with-apxs=/nonexistent/apxs"], cwd=build)
        assert proc.returncode != 0
        assert "apache2-dev" in proc.stderr


def test_debian_apache2_loads_module(module_path):
    """conf/kdeleg.load + conf/kdeleg.conf as a2enmod would enable them, on
    top of Debian's own /etc/apache2/apache2.conf (nothing written to /etc)."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(REPO, "conf", "kdeleg.load")) as f:
            load = f.read().replace("/usr/lib/apache2/modules/mod_kdeleg.so", module_path)
        conf = os.path.join(tmp, "test.conf")
        with open(conf, "w") as f:
            f.write("Include /etc/apache2/apache2.conf\n" + load +
                    f"Include {REPO}/conf/kdeleg.conf\n")
            # The examples' session key file, made where the test can write.
            keys = os.path.join(tmp, "kdeleg-session.keys")
            with open(keys, "w") as k:
                k.write(base64.b64encode(os.urandom(32)).decode() + "\n")
            os.chmod(keys, 0o600)
            for example in sorted(os.listdir(os.path.join(REPO, "conf", "examples"))):
                with open(os.path.join(REPO, "conf", "examples", example)) as e:
                    text = e.read().replace("/etc/apache2/kdeleg-session.keys", keys)
                copy = os.path.join(tmp, example)
                with open(copy, "w") as c:
                    c.write(text)
                f.write(f"Include {copy}\n")
        script = (f". /etc/apache2/envvars && APACHE_LOG_DIR={tmp} APACHE_RUN_DIR={tmp} "
                  f"APACHE_LOCK_DIR={tmp} /usr/sbin/apache2 -t -f {conf}")
        proc = run_apache2(["sh", "-c", script])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Syntax OK" in proc.stderr
        mods = run_apache2(["sh", "-c", script.replace("-t -f", "-M -f")])
        assert re.search(r"kdeleg_module \(shared\)", mods.stdout), mods.stdout + mods.stderr


@pytest.mark.parametrize("line,named", [
    ("KdelegServiceNames HTTP", "KdelegServiceNames"),
    ("KdelegRemoteUser nickname", "KdelegRemoteUser"),
    ("KdelegDelegateTo backend.example.test", "KdelegDelegateTo"),
    ("KdelegProxyNegotiate HTTP/", "KdelegProxyNegotiate"),
    ("KdelegDelegationFailure maybe", "KdelegDelegationFailure"),
    ("KdelegUserRealm EXAMPLE/TEST", "KdelegUserRealm"),
    ("KdelegReplayCache 12", "KdelegReplayCache"),
    ("KdelegCache nosuchprovider", "KdelegCache"),
    ("<Location /x>\nKdelegCache shmcb\n</Location>", "KdelegCache"),
    ("KdelegVirtualName vip.example.test/x", "KdelegVirtualName"),
    ("KdelegNodeName ftp://node1.example.test", "KdelegNodeName"),
    ("KdelegNodeName http://evil@node1.example.test", "KdelegNodeName"),
    ("KdelegSessionLifetime 5", "KdelegSessionLifetime"),
    ("KdelegCookieDomain test", "KdelegCookieDomain"),
    ("KdelegSessionKeyFile /nonexistent/keys", "KdelegSessionKeyFile"),
    ("<Location /x>\nKdelegSession On\n</Location>", "KdelegSession"),
    ("KdelegChannelBinding maybe", "KdelegChannelBinding"),
    ("KdelegChannelBindingCert /nonexistent/cert.pem", "KdelegChannelBindingCert"),
    ("KdelegChannelBindingCert /etc/hostname", "KdelegChannelBindingCert"),
    ("<Location /x>\nKdelegChannelBindingCert /etc/hostname\n</Location>",
     "KdelegChannelBindingCert"),
])
def test_bad_directive_values_name_the_directive(module_path, line, named):
    """httpd refuses to start and the message names the directive."""
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "t.conf")
        with open(conf, "w") as f:
            f.write(f'ServerRoot "{tmp}"\nLoadModule mpm_event_module '
                    f'/usr/lib/apache2/modules/mod_mpm_event.so\n'
                    f'LoadModule kdeleg_module {module_path}\n{line}\n')
        proc = run_apache2(["/usr/sbin/apache2", "-t", "-f", conf])
        assert proc.returncode != 0
        assert named in proc.stderr, proc.stderr


def test_no_format_apr_cannot_print():
    """APR's formatter (apr_psprintf, ap_log_*, ap_rprintf) has no ll or z
    length modifier: "%lld" prints "%ld" and shifts every later argument
    (a "%s" after it reads a number as a pointer). 64-bit values use
    APR_INT64_T_FMT / APR_UINT64_T_FMT, sizes APR_SIZE_T_FMT."""
    bad = []
    for path in sorted(glob.glob(os.path.join(REPO, "mod_kdeleg", "*.c"))):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if re.search(r'"[^"]*%[-+ #0-9.]*(ll|z|j|t)[diouxX][^"]*"', line) \
                        and "snprintf(" not in line:
                    bad.append(f"{os.path.relpath(path, REPO)}:{n}: {line.strip()}")
    assert not bad, "formats APR cannot print:\n" + "\n".join(bad)
