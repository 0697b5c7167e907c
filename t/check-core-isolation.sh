#!/bin/sh
# The core (mod_kdeleg/kd_*) must not include httpd headers: it is built
# without httpd's include path, and this check names the offending line
# if someone adds one anyway (e.g. by copying a header next to it).
srcdir=${srcdir:-.}
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](httpd|http_[a-z_]+|ap_[a-z_]+|util_[a-z_]+|mod_[a-z_]+|mpm_common|unixd|scoreboard)\.h[>"]' \
      "$srcdir"/mod_kdeleg/kd_*.c "$srcdir"/mod_kdeleg/kd_*.h)
if [ -n "$bad" ]; then
    echo "core files include httpd headers:"
    echo "$bad"
    exit 1
fi
n=$(ls "$srcdir"/mod_kdeleg/kd_*.c | wc -l)
echo "core isolation: $n core files, no httpd headers"
exit 0
