#!/usr/bin/python3
"""Writes the consentctl(1) manual page from its two sources, so that it is
never edited by hand:

- the binary: `consentctl --help` (name line, command list, exit status) and
  `consentctl COMMAND --help` for each command (synopsis, options);
- docs/consentctl.md: the description and a section per command.

    tools/manpage.py --consentctl build/consentctl --doc docs/consentctl.md \
        --version 0.2.0 --output build/consentctl.1

Fails (exit 1) when a command that `consentctl --help` lists has no section in
the document, or when the help output no longer has the expected shape. The
date is SOURCE_DATE_EPOCH's (set by dpkg-buildpackage from debian/changelog)
or today's. Only the Python standard library is used.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys

DOC_DIR = "/usr/share/doc/libnginx-mod-http-consent"


def die(msg):
    sys.stderr.write("manpage.py: %s\n" % msg)
    sys.exit(1)


# ---- roff text ----------------------------------------------------------------

def esc(text, code=False):
    """Escapes plain text for roff. In code, '-' is a minus/hyphen-minus."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-" and code:
            out.append("\\-")
        elif ord(ch) > 127:
            out.append("\\[u%04X]" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def line_safe(s):
    """A line that starts with '.' or "'" would be read as a request."""
    return "\\&" + s if s[:1] in (".", "'") else s


INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)]+)\)|(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])")


def inline(text, links):
    """Markdown inline markup to roff: `code` and **strong** bold, *em*
    italic, [text](target) as its text (documents it names go to SEE ALSO)."""
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(esc(text[pos:m.start()]))
        code, strong, ltext, target, em = m.groups()
        if code is not None:
            out.append("\\fB" + esc(code, code=True) + "\\fR")
        elif strong is not None:
            out.append("\\fB" + inline(strong, links) + "\\fR")
        elif ltext is not None:
            if target.endswith(".md") or ".md#" in target:
                links.add(target.split("#")[0])
            out.append(inline(ltext, links))
        else:
            out.append("\\fI" + inline(em, links) + "\\fR")
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


# ---- the document ---------------------------------------------------------------

def parse_sections(md):
    """[(level, title, [lines])]; level 1 is the document's title and intro."""
    sections, level, title, body, fence = [], 1, "", [], False
    for raw in md.splitlines():
        if raw.lstrip().startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^(#{1,3}) +(.*?) *#*$", raw)
        if m:
            sections.append((level, title, body))
            level, title, body = len(m.group(1)), m.group(2), []
        else:
            body.append(raw)
    sections.append((level, title, body))
    return sections


def blocks(lines):
    """Splits markdown lines into blocks: ('p', text), ('code', [lines]),
    ('list', [(marker, [lines])]), ('table', [cells...])."""
    out, i, n = [], 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.lstrip().startswith("```"):
            indent = len(line) - len(line.lstrip())
            j, code = i + 1, []
            while j < n and not lines[j].lstrip().startswith("```"):
                code.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
                j += 1
            out.append(("code", code))
            i = j + 1
            continue
        if line.startswith("|"):
            rows = []
            while i < n and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            out.append(("table", rows))
            continue
        if re.match(r"^(-|\*|\d+\.) ", line):
            items = []
            while i < n:
                m = re.match(r"^(-|\*|\d+\.) +(.*)$", lines[i])
                if m:
                    items.append((m.group(1), [m.group(2)]))
                elif lines[i].startswith("  ") and items:
                    items[-1][1].append(lines[i][2:] if not lines[i].startswith("   ") else lines[i].lstrip())
                elif not lines[i].strip() and i + 1 < n and (lines[i + 1].startswith("  ") or re.match(r"^(-|\*|\d+\.) ", lines[i + 1])):
                    items[-1][1].append("")
                else:
                    break
                i += 1
            out.append(("list", items))
            continue
        if line.startswith("    "):
            code = []
            while i < n and (lines[i].startswith("    ") or not lines[i].strip()):
                code.append(lines[i][4:])
                i += 1
            while code and not code[-1].strip():
                code.pop()
            out.append(("code", code))
            continue
        para = []
        # Only a bullet or "1." interrupts a paragraph (as in CommonMark): a
        # wrapped line may well start with "64. ".
        while i < n and lines[i].strip() and not lines[i].lstrip().startswith("```") \
                and not lines[i].startswith("|") and not re.match(r"^(-|\*|1\.) ", lines[i]):
            para.append(lines[i].strip())
            i += 1
        out.append(("p", " ".join(para)))
    return out


def render_blocks(bl, links, out):
    for kind, data in bl:
        if kind == "p":
            out.append(".PP")
            out.append(line_safe(inline(data, links)))
        elif kind == "code":
            out += [".PP", ".RS 4", ".nf"]
            out += [line_safe(esc(l, code=True)) for l in data]
            out += [".fi", ".RE"]
        elif kind == "list":
            for marker, item in data:
                out.append(".IP %s 4" % ("\\(bu" if marker in ("-", "*") else marker))
                for idx, (sub_kind, sub) in enumerate(blocks(item)):
                    if sub_kind == "p":
                        if idx:
                            out.append('.IP "" 4')
                        out.append(line_safe(inline(sub, links)))
                    elif sub_kind == "code":
                        out += ['.IP "" 4', ".nf"] + [line_safe(esc(l, code=True)) for l in sub] + [".fi"]
                    else:
                        # a nested list or table: indented under the item
                        out.append(".RS 4")
                        render_blocks([(sub_kind, sub)], links, out)
                        out.append(".RE")
        elif kind == "table":
            header, rows = data[0], data[1:]
            for row in rows:
                tag = inline(row[0], links)
                rest = []
                for h, cell in zip(header[1:], row[1:]):
                    if h.lower() == "default":
                        if cell and cell.lower() != "none":
                            tag += " (default: %s)" % inline(cell, links)
                    elif cell:
                        rest.append(inline(cell, links))
                out += [".TP", line_safe(tag), line_safe("; ".join(rest) or "\\&")]


# ---- the binary -----------------------------------------------------------------

def run_help(consentctl, *args):
    try:
        p = subprocess.run([consentctl, *args, "--help"] if args else [consentctl, "--help"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=30)
    except OSError as e:
        die("cannot run %s: %s" % (consentctl, e))
    if p.returncode != 0:
        die("'%s %s --help' exited %d: %s" % (consentctl, " ".join(args), p.returncode, p.stderr.strip()))
    return p.stdout


def parse_main_help(text):
    lines = text.splitlines()
    if not lines or not lines[0].startswith("usage: "):
        die("'consentctl --help' does not start with 'usage: '")
    try:
        ci = lines.index("commands:")
    except ValueError:
        die("'consentctl --help' has no 'commands:' line")
    summary = " ".join(l.strip() for l in lines[1:ci] if l.strip())
    commands = []
    j = ci + 1
    while j < len(lines) and lines[j].startswith("  "):
        m = re.match(r"^  (\S+) +(.*)$", lines[j])
        if not m:
            die("cannot read the command line %r of 'consentctl --help'" % lines[j])
        commands.append((m.group(1), m.group(2)))
        j += 1
    if not commands:
        die("'consentctl --help' lists no command")
    exit_status = None
    for l in lines[j:]:
        m = re.match(r"^exit status: *(.*)$", l)
        if m:
            exit_status = m.group(1)
    return lines[0][len("usage: "):], summary, commands, exit_status


# "  --suite   text", "  --db N            text", "  --password SECRET text":
# two or more blanks after a bare option; a metavariable after one blank.
OPTION = re.compile(r"^ {2}(--[a-z0-9-]+(?: {2,}| [A-Z][A-Za-z0-9_|.=]* +))(\S.*)$")


def parse_command_help(name, text):
    """usage lines (without 'usage: '), description, [(option, text)]"""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("usage: consentctl " + name):
        die("'consentctl %s --help' does not start with 'usage: consentctl %s'" % (name, name))
    usage = [lines[0][len("usage: "):]]
    i = 1
    while i < len(lines) and lines[i].startswith(" ") and lines[i].strip():
        # an indented "consentctl NAME ..." is another form of the command
        if lines[i].strip().startswith("consentctl " + name + " "):
            usage.append(lines[i].strip())
        else:
            usage[-1] += " " + lines[i].strip()
        i += 1
    desc, options = [], []
    for l in lines[i:]:
        m = OPTION.match(l)
        if m:
            options.append([m.group(1).strip(), m.group(2).strip()])
        elif options and l.startswith("    ") and l.strip():
            options[-1][1] += " " + l.strip()
        elif l.strip():
            desc.append(l.strip())
    return usage, " ".join(desc), options


def synopsis_line(usage):
    # "consentctl mint --key FILE ..." -> bold command, the rest as is
    parts = usage.split(" ", 2)
    head = "\\fB%s %s\\fR" % (esc(parts[0]), esc(parts[1], code=True))
    return head + (" " + esc(parts[2], code=True) if len(parts) > 2 else "")


# ---- the page -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--consentctl", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--output", required=True)
    a = ap.parse_args()

    usage, summary, commands, exit_status = parse_main_help(run_help(a.consentctl))
    helps = {name: parse_command_help(name, run_help(a.consentctl, name)) for name, _ in commands}
    with open(a.doc, encoding="utf-8") as f:
        sections = parse_sections(f.read())

    titles = {t for lvl, t, _ in sections if lvl > 1}
    missing = [name for name, _ in commands if name not in titles]
    if missing:
        die("%s has no section (## or ###) for the command(s) %s that 'consentctl --help' lists"
            % (a.doc, ", ".join(missing)))

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch \
        else datetime.datetime.now(datetime.timezone.utc)

    links = set()
    out = [
        ".\\\" Generated by tools/manpage.py from 'consentctl --help' and docs/consentctl.md.",
        ".\\\" Do not edit: change those sources instead.",
        ".TH CONSENTCTL 1 %s \"consentctl %s\" \"User Commands\"" % (when.strftime("%Y-%m-%d"), esc(a.version)),
        ".SH NAME",
        "consentctl \\- " + esc(summary[:1].lower() + summary[1:].rstrip(".")),
        ".SH SYNOPSIS",
        ".nf",
        synopsis_line(usage.replace("consentctl ", "consentctl ", 1)) if " " in usage else esc(usage),
    ]
    for name, _ in commands:
        for u in helps[name][0]:
            out.append(synopsis_line(u))
    out.append(".fi")

    # The title's section (and anything before it) is the description.
    out.append(".SH DESCRIPTION")
    intro = [l for lvl, _, body in sections if lvl == 1 for l in body + [""]]
    render_blocks(blocks(intro), links, out)

    out.append(".SH COMMANDS")
    for name, summ in commands:
        out += [".TP", "\\fB%s\\fR" % esc(name, code=True), line_safe(esc(summ) + ".")]

    cmd_names = {name for name, _ in commands}

    def command_section(title, body):
        u, desc, opts = helps[title]
        out.append(".SS %s" % esc(title, code=True))
        out.extend([".PP", ".nf"] + [synopsis_line(x) for x in u] + [".fi"])
        render_blocks(blocks(body), links, out)
        if opts:
            out.extend([".PP", "Options (\\fBconsentctl %s \\-\\-help\\fR):" % esc(title, code=True), ".RS 4"])
            for opt, text in opts:
                out.extend([".TP", "\\fB%s\\fR" % esc(opt, code=True), line_safe(esc(text))])
            out.append(".RE")

    # Level-2 sections named after a command go under COMMAND DETAILS; other
    # level-2 sections become sections of their own, with their level-3
    # subsections (a command's, or any other).
    in_details = False
    for level, title, body in sections:
        if level == 1:
            continue
        if level == 2 and title in cmd_names:
            if not in_details:
                out.append(".SH \"COMMAND DETAILS\"")
                in_details = True
            command_section(title, body)
        elif level == 2:
            in_details = False
            out.append(".SH \"%s\"" % esc(title.upper()).replace('"', "\\(dq"))
            render_blocks(blocks(body), links, out)
        elif title in cmd_names:
            command_section(title, body)
        else:
            out.append(".SS \"%s\"" % esc(title).replace('"', "\\(dq"))
            render_blocks(blocks(body), links, out)

    if exit_status:
        out.append(".SH \"EXIT STATUS\"")
        for part in exit_status.split(","):
            m = re.match(r"^\s*(\d+)\s+(.*)$", part)
            if not m:
                die("cannot read the exit status %r of 'consentctl --help'" % part)
            out += [".TP", ".B %s" % m.group(1), line_safe(esc(m.group(2)) + ".")]

    out.append(".SH \"SEE ALSO\"")
    out.append(".BR nginx (8).")
    docs = sorted(os.path.basename(l) for l in links)
    if docs:
        out.append(".PP")
        out.append("The documents named above (%s) are installed by the libnginx\\-mod\\-http\\-consent "
                   "package in \\fI%s/\\fR." % (", ".join(esc(d) for d in docs), esc(DOC_DIR)))

    text = "\n".join(out) + "\n"
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(tmp, a.output)


if __name__ == "__main__":
    main()
