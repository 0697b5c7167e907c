"""The docs keep up with the source. No server is started.

- Every directive of the module's command table (the AP_INIT_* entries in
  mod_kdeleg/, and what `apache2 -L` lists with the built module loaded)
  has one block in docs/directives.md, in alphabetical order, whose Context
  and Override lines follow its flags; no block, index row or README row
  names a directive that does not exist, nor does any page.
- The handlers, providers and environment variables the module registers
  or sets are listed in docs/directives.md, and nothing else is; the
  module's ?auto names on mod_status's /server-status are listed in
  docs/status-page.md.
- docs/troubleshooting.md lists exactly the causes of the catalogue, and
  docs/log-messages.md exactly the KDLOGNO numbers of the source.
- t/docs/gen finds its generated tables up to date.
- Every link of docs/*.md and of the README to a file or an #anchor
  resolves."""

import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import REPO
from kdlab import sanitizer_env

SRC = os.path.join(REPO, "mod_kdeleg")
DOCS = os.path.join(REPO, "docs")
DIRECTIVES_MD = os.path.join(DOCS, "directives.md")
README = os.path.join(REPO, "README")
CONTEXT_ABBR = {"server config": "S", "virtual host": "V", "directory": "D", ".htaccess": "H"}
OVERRIDES = {"OR_AUTHCFG": "AuthConfig", "OR_LIMIT": "Limit", "OR_OPTIONS": "Options",
             "OR_FILEINFO": "FileInfo", "OR_INDEXES": "Indexes", "OR_ALL": "All"}
FIELDS = ("Description", "Syntax", "Default", "Context", "Override", "Module")


@pytest.fixture(scope="module", autouse=True)
def client_environment():
    """Replaces conftest's fixture of that name: no Kerberos realm here."""
    yield


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------------ the source

def strip_comments(text):
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


@functools.lru_cache(maxsize=None)
def sources(pattern="*.[ch]"):
    return {os.path.basename(p): strip_comments(read(p)).replace("\\\n", "\n")
            for p in sorted(glob.glob(os.path.join(SRC, pattern)))}


def function_body(name):
    for text in sources("*.c").values():
        m = re.search(r"\b%s\s*\([^;{)]*\)\s*\{" % re.escape(name), text)
        if m:
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            return text[m.end():i]
    return ""


@functools.lru_cache(maxsize=None)
def command_table():
    """{directive: (flags, global_only)} from every AP_INIT_* entry."""
    table = {}
    for text in sources().values():
        for m in re.finditer(r'\bAP_INIT_\w+\s*\(\s*"(\w+)"\s*,\s*(\w+)\s*,\s*[^,]+,\s*([^,]+?)\s*,',
                             text):
            name, func, flags = m.groups()
            assert name not in table, f"{name} is in the command table twice"
            body = function_body(func)
            table[name] = (set(re.findall(r"\w+", flags)),
                           "GLOBAL_ONLY" in body or "NOT_IN_VIRTUALHOST" in body)
    assert table, "no AP_INIT_* entry found in mod_kdeleg/"
    return table


def expected_context(flags, global_only):
    parts = []
    if "RSRC_CONF" in flags:
        parts += ["server config"] + ([] if global_only else ["virtual host"])
    if "ACCESS_CONF" in flags or flags & set(OVERRIDES):
        parts.append("directory")
    if flags & set(OVERRIDES):
        parts.append(".htaccess")
    return ", ".join(parts)


def expected_override(flags):
    names = [OVERRIDES[f] for f in sorted(flags & set(OVERRIDES))]
    return ", ".join(names) if names else "not allowed in .htaccess"


def source_providers():
    found = set()
    for text in sources("*.c").values():
        for m in re.finditer(r'\bap_register_(?:auth_)?provider\s*\(\s*[^,]+,\s*([^,]+?)\s*,'
                             r'\s*"([^"]+)"', text):
            found.add(m.group(2))
    return found


def source_env_vars():
    found = set()
    for text in sources("*.c").values():
        found |= set(re.findall(r'\bapr_table_(?:set|setn|add|addn|merge|mergen)\s*\(\s*'
                                r'[\w>.-]*subprocess_env\s*,\s*"([A-Za-z0-9_]+)"', text))
    return found


def source_handlers():
    found = set()
    for text in sources().values():
        found |= set(re.findall(r'#\s*define\s+\w*HANDLER\s+"([^"]+)"', text))
        found |= set(re.findall(r'strc(?:ase)?cmp\s*\(\s*r->handler\s*,\s*"([^"]+)"', text))
    return found


def source_causes():
    text = sources("kd_causes.c")["kd_causes.c"]
    return re.findall(r'\{\s*KD_CAUSE_\w+\s*,\s*"([a-z0-9-]+)"', text)


def source_auto_names():
    """The names of the module's lines on mod_status's /server-status?auto, in order."""
    text = sources("kd_status.c")["kd_status.c"]
    return re.findall(r'\[KD_STAT_\w+\]\s*=\s*"(Kdeleg\w+)"', text)


def source_log_numbers():
    found = set()
    for text in sources("*.c").values():
        found |= set(re.findall(r"\bKDLOGNO\s*\(\s*(\d{5})\s*\)", text))
    return {"KD" + n for n in found}


# ------------------------------------------------------------------ the docs

def section(text, heading):
    """The body of a '## heading' (or '### heading') up to the next heading
    of the same or a higher level."""
    m = re.search(r"^(#+) %s\s*$" % re.escape(heading), text, re.M)
    assert m, f"no heading '{heading}'"
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(r"^#{1,%d} " % level, rest, re.M)
    return rest[:end.start()] if end else rest


def table_first_column(text):
    """Backquoted or linked names in the first cell of a Markdown table's body rows."""
    names, seen_header = [], False
    for line in text.splitlines():
        if not line.startswith("|") or re.match(r"^\|[-| :]+\|$", line):
            continue
        if not seen_header:
            seen_header = True
            continue
        cell = re.split(r"(?<!\\)\|", line)[1].strip()
        m = re.match(r"^\[`?([^`\]]+)`?\]|^`([^`]+)`", cell)
        assert m, f"first cell names nothing: {line}"
        names.append(m.group(1) or m.group(2))
    return names


def directive_blocks():
    """[(name, {field: value})] of the '## Directives' section, in page order."""
    body = section(read(DIRECTIVES_MD), "Directives")
    blocks = []
    for part in re.split(r"^### ", body, flags=re.M)[1:]:
        name = part.split("\n", 1)[0].strip()
        fields = {}
        for m in re.finditer(r"^- \*\*(\w+):\*\* (.*(?:\n  .*)*)", part, re.M):
            fields[m.group(1)] = " ".join(x.strip() for x in m.group(2).split("\n"))
        blocks.append((name, fields))
    return blocks


def context_abbr(context):
    return ", ".join(CONTEXT_ABBR[c.strip()] for c in context.split(","))


def md_pages():
    return sorted(glob.glob(os.path.join(DOCS, "*.md"))) + [README]


def prose(text):
    """Markdown without fenced or indented code blocks."""
    out, fenced, prev_blank = [], False, True
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            prev_blank = False
            continue
        if fenced or (line.startswith("    ") and (prev_blank or (out and out[-1] is None))):
            out.append(None)
            continue
        out.append(line)
        prev_blank = not line.strip()
    return "\n".join(line for line in out if line is not None)


def slugs(text):
    """GitHub's anchors for the headings of a page."""
    counts, found = {}, set()
    for m in re.finditer(r"^#{1,6} (.+?)\s*#*\s*$", prose(text), re.M):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


# ------------------------------------------------------------------ (a) directives

def test_every_directive_has_one_block_and_no_block_is_unknown():
    table = command_table()
    blocks = directive_blocks()
    names = [name for name, _ in blocks]
    assert len(names) == len(set(names)), f"a directive has two blocks: {names}"
    assert not set(table) - set(names), f"no block in docs/directives.md: {sorted(set(table) - set(names))}"
    assert not set(names) - set(table), f"blocks for unknown directives: {sorted(set(names) - set(table))}"
    assert names == sorted(names, key=str.lower), "docs/directives.md is not alphabetical"
    for name, fields in blocks:
        missing = [f for f in FIELDS if f not in fields]
        assert not missing, f"{name}: no {', '.join(missing)} line"
        assert fields["Module"] == "mod_kdeleg", name


def test_context_and_override_follow_the_flags():
    table = command_table()
    for name, fields in directive_blocks():
        flags, global_only = table[name]
        assert fields["Context"] == expected_context(flags, global_only), \
            f"{name}: Context '{fields['Context']}', the flags {sorted(flags)} say " \
            f"'{expected_context(flags, global_only)}'"
        assert fields["Override"] == expected_override(flags), name


def test_index_and_readme_tables_name_every_directive_with_its_context():
    table = command_table()
    contexts = {name: context_abbr(fields["Context"]) for name, fields in directive_blocks()}
    index = section(read(DIRECTIVES_MD), "Directive index")
    readme = section(read(README), "Directives")
    for where, text in (("the index of docs/directives.md", index), ("the README", readme)):
        rows = {}
        for line in text.splitlines():
            m = re.match(r"^\| \[(\w+)\]\(([^)]*)\) \| ([SVDH, ]+) \|", line)
            if m:
                rows[m.group(1)] = (m.group(2), m.group(3).strip())
        assert set(rows) == set(table), \
            f"{where}: missing {sorted(set(table) - set(rows))}, unknown {sorted(set(rows) - set(table))}"
        for name, (link, ctx) in rows.items():
            assert link.endswith("#" + name.lower()), f"{where}: {name} links to {link}"
            assert ctx == contexts[name], f"{where}: {name} context {ctx}, block says {contexts[name]}"


def test_no_page_names_a_directive_that_does_not_exist():
    known = set(command_table()) | set(source_auto_names())
    for path in md_pages() + [os.path.join(REPO, "NEWS")]:
        unknown = set(re.findall(r"\bKdeleg[A-Z]\w*", read(path))) - known
        assert not unknown, f"{os.path.relpath(path, REPO)} names {sorted(unknown)}"


def test_apache2_lists_the_documented_directives(module_path):
    """The command table as httpd itself sees it, with the built module loaded."""
    apache2 = shutil.which("apache2") or shutil.which("httpd")
    if apache2 is None:
        pytest.skip("apache2 is not installed")
    mods = "/usr/lib/apache2/modules"
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "httpd.conf")
        with open(conf, "w") as f:
            f.write(f"ServerRoot {tmp}\nServerName localhost\nPidFile {tmp}/httpd.pid\n"
                    f"ErrorLog {tmp}/error.log\n")
            if os.path.exists(os.path.join(mods, "mod_mpm_event.so")):
                f.write(f"LoadModule mpm_event_module {mods}/mod_mpm_event.so\n")
            f.write(f"LoadModule kdeleg_module {module_path}\n")
        proc = subprocess.run([apache2, "-d", tmp, "-f", conf, "-L"], capture_output=True,
                              text=True, timeout=60, env=sanitizer_env(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = {}
    for m in re.finditer(r"^(\w+) \(mod_kdeleg\.c\)\n(?:\t.*\n)*?\tAllowed in \*\.conf (.*)$",
                         proc.stdout, re.M):
        listed[m.group(1)] = m.group(2)
    assert listed, proc.stdout[-2000:]
    blocks = dict(directive_blocks())
    assert set(listed) == set(blocks), \
        f"apache2 -L: undocumented {sorted(set(listed) - set(blocks))}, " \
        f"not in the module {sorted(set(blocks) - set(listed))}"
    for name, allowed in listed.items():
        in_dirs = "directory" in blocks[name]["Context"]
        assert in_dirs == allowed.startswith("anywhere"), f"{name}: apache2 -L says '{allowed}'"


# ------------------------------------------------------------------ (b) providers, handlers, environment

def test_providers_are_documented():
    documented = set(table_first_column(section(read(DIRECTIVES_MD), "Providers")))
    assert documented == source_providers(), \
        f"providers: registered {sorted(source_providers())}, documented {sorted(documented)}"


def test_handlers_are_documented():
    documented = set(table_first_column(section(read(DIRECTIVES_MD), "Handlers")))
    assert documented == source_handlers(), \
        f"handlers: in the source {sorted(source_handlers())}, documented {sorted(documented)}"


def test_environment_variables_are_documented():
    documented = set(table_first_column(section(read(DIRECTIVES_MD),
                                                "Variables mod_kdeleg sets")))
    assert documented == source_env_vars(), \
        f"environment: set by the source {sorted(source_env_vars())}, documented {sorted(documented)}"


def test_server_status_names_are_documented():
    """docs/status-page.md lists the ?auto names of kd_status.c, in the source's order."""
    names = source_auto_names()
    assert len(names) >= 10, f"the ?auto table of kd_status.c not found: {names}"
    documented = table_first_column(section(read(os.path.join(DOCS, "status-page.md")),
                                            "On mod_status's /server-status"))
    assert documented == names, f"?auto names: source {names}, docs/status-page.md {documented}"


# ------------------------------------------------------------------ (c), (d) causes and log numbers

def generated(path, name):
    text = read(path)
    m = re.search(r"<!-- generated: %s -->(.*?)<!-- end generated -->" % name, text, re.S)
    assert m, f"no generated region '{name}' in {path}"
    return m.group(1)


def test_troubleshooting_lists_exactly_the_catalogue():
    catalogue = source_causes()
    assert catalogue and catalogue[0] == "none"
    region = generated(os.path.join(DOCS, "troubleshooting.md"), "causes")
    listed = table_first_column(region)
    assert sorted(listed) == sorted(catalogue[1:]), \
        f"causes: catalogue {sorted(catalogue[1:])}, page {sorted(listed)}"
    assert "| ? |" not in region, "a cause without 'reported by': fill it in"
    assert "`none`" in read(os.path.join(DOCS, "troubleshooting.md"))


def test_log_messages_list_exactly_the_numbers_in_the_source():
    numbers = source_log_numbers()
    page = read(os.path.join(DOCS, "log-messages.md"))
    region = generated(os.path.join(DOCS, "log-messages.md"), "log-messages")
    rows = table_first_column(region)
    assert sorted(rows) == sorted(numbers), \
        f"log numbers: source {sorted(numbers)}, table {sorted(rows)}"
    assert rows == sorted(rows), "the table is not in order"
    assert set(re.findall(r"\bKD\d{5}\b", page)) == numbers
    assert "(not yet described)" not in region, "a log number without a meaning"
    for path in md_pages():
        unknown = set(re.findall(r"\bKD\d{5}\b", read(path))) - numbers
        assert not unknown, f"{os.path.relpath(path, REPO)} names {sorted(unknown)}"


# ------------------------------------------------------------------ (e) generated tables

def test_generated_tables_are_up_to_date():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "t", "docs", "gen"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------ (f) links

def test_links_resolve():
    broken, checked = [], 0
    for page in md_pages():
        text = re.sub(r"`[^`\n]*`", "", prose(read(page)))
        for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            checked += 1
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            where = f"{os.path.relpath(page, REPO)}: {target}"
            if not os.path.exists(dest):
                broken.append(where + " (no such file)")
            elif anchor and anchor not in slugs(read(dest)):
                broken.append(where + " (no such anchor)")
    assert checked > 100, f"only {checked} links found: is the parser blind?"
    assert not broken, "broken links:\n" + "\n".join(broken)


# ------------------------------------------------------------------ (g) architecture

def test_architecture_names_every_source_file_in_its_layer():
    """One row per .c file of mod_kdeleg/, and the layer its prefix says."""
    rows = {}
    for m in re.finditer(r"^\| `([^`]+\.c)` \| (core|glue) \|", read(os.path.join(DOCS, "architecture.md")),
                         re.M):
        rows[m.group(1)] = m.group(2)
    sources = {os.path.basename(p) for p in glob.glob(os.path.join(SRC, "*.c"))}
    assert sources, "no sources found"
    assert set(rows) == sources, \
        f"architecture.md: missing {sorted(sources - set(rows))}, unknown {sorted(set(rows) - sources)}"
    for name, layer in rows.items():
        assert layer == ("core" if name.startswith("kd_") else "glue"), name


def test_code_names_in_the_docs_exist():
    """A `kd_x` or `kdeleg_x` a page names is in the source or the tests (a trailing `_*`
    names a family)."""
    files = glob.glob(os.path.join(SRC, "*.[ch]")) + glob.glob(os.path.join(REPO, "t", "*", "*.py"))
    source = "".join(read(p) for p in files)
    unknown = set()
    for page in md_pages():
        for name in re.findall(r"\b(kd(?:eleg)?_[a-z0-9_]+)", read(page)):
            if name not in ("kdeleg_module",) and not re.search(r"\b" + re.escape(name), source):
                unknown.add(f"{os.path.relpath(page, REPO)}: {name}")
    assert not unknown, "names not in mod_kdeleg/:\n" + "\n".join(sorted(unknown))


def test_the_version_is_said_once():
    """configure.ac holds the version; the Debian changelog's newest entry and NEWS follow it."""
    version = re.search(r"AC_INIT\(\[mod_kdeleg\], \[([^\]]+)\]", read(os.path.join(REPO, "configure.ac")))
    assert version, "no version in configure.ac"
    version = version.group(1)
    changelog = read(os.path.join(REPO, "debian", "changelog")).splitlines()[0]
    assert re.match(rf"libapache2-mod-kdeleg \({re.escape(version)}(-\d+)?\) ", changelog), changelog
    assert re.search(rf"^{re.escape(version)} ", read(os.path.join(REPO, "NEWS")), re.M)
    sources = "".join(read(p) for p in glob.glob(os.path.join(SRC, "*.[ch]")))
    assert version not in sources, "the module takes its version from configure (KD_PACKAGE_VERSION)"
