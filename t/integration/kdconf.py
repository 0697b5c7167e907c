"""A small builder for the httpd configuration and the scripts the tests
install, instead of f-strings patched afterwards with str.replace.

    location("/private", "AuthType Negotiate", "Require valid-user")
    vhost("127.0.0.5:8080", f"ServerName {name}", location(...))
    fill(BACKEND_CGI, BACKEND=name, PORT=port)    # @BACKEND@ and @PORT@

Blocks are text: they nest by passing one block as a line of another."""

import os
import re

INDENT = "    "


def block(tag, arg, *lines):
    """<tag arg> ... </tag>, each line (or nested block) indented once."""
    body = "".join(_indent(line) for line in lines if line)
    return f"<{tag} {arg}>\n{body}</{tag}>\n"


def location(path, *lines):
    return block("Location", path, *lines)


def vhost(address, *lines):
    return block("VirtualHost", address, *lines)


def negotiate(*lines):
    """The lines of a location protected by AuthType Negotiate."""
    return ("AuthType Negotiate", "Require valid-user") + lines


def basic(user_file, *lines):
    """The lines of a location protected by AuthType Basic against a user file."""
    return ("AuthType Basic", 'AuthName "web"', "AuthBasicProvider file",
            f'AuthUserFile "{user_file}"', "Require valid-user") + lines


def fill(template, **values):
    """Put values in the @NAME@ markers of template. Every marker must get a
    value and every value a marker, so a renamed marker fails loudly."""
    markers = set(re.findall(r"@([A-Z_]+)@", template))
    if markers != set(values):
        raise KeyError(f"markers {sorted(markers)}, values {sorted(values)}")
    return re.sub(r"@([A-Z_]+)@", lambda m: str(values[m.group(1)]), template)


def _indent(text):
    return "".join(INDENT + l + "\n" if l.strip() else "\n" for l in text.rstrip("\n").split("\n"))


# A real consumer of KRB5CCNAME: describes the cache it was given (mode,
# owner, what klist sees), then calls the back end (on 127.0.0.4) with
# curl --negotiate; the back end's answer comes prefixed BACKEND_.
BACKEND_CGI = r"""#!/bin/sh
echo "Content-Type: text/plain"
echo
cc="${KRB5CCNAME#FILE:}"
echo "CCACHE=$KRB5CCNAME"
echo "CCACHE_STAT=$(stat -c '%a %U' "$cc" 2>/dev/null)"
klist -c "$KRB5CCNAME" 2>&1 | sed -n 's/^Default principal: /KLIST_CLIENT=/p'
klist -c "$KRB5CCNAME" 2>&1 | sed -n 's/^.*  \([^ ]*@[A-Z.]*\)$/KLIST_TICKET=\1/p'
curl -s --negotiate -u : --resolve @BACKEND@:@PORT@:127.0.0.4 \
     http://@BACKEND@:@PORT@/private/cgi/env.cgi | sed 's/^/BACKEND_/'
"""


def install_script(path, template, **values):
    """Write an executable script from a template (see fill)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(fill(template, **values))
    os.chmod(path, 0o755)


def install_backend_cgi(d, backend_name, backend_port):
    """cgi-bin/backend.cgi under the httpd directory d, calling the back end."""
    install_script(f"{d}/cgi-bin/backend.cgi", BACKEND_CGI, BACKEND=backend_name,
                   PORT=backend_port)
