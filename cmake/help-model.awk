# SPDX-License-Identifier: Apache-2.0
# Reads one --help text of the alphatop program (cmd="" for `alphatop --help`, else the
# command's name) and writes what it says as tab-separated records, one per line, for the
# man page and completion generators (cmake/help-model.sh):
#   version  CMD VERSION                      (the program's first line "alphatop V -- TAGLINE")
#   tagline  CMD TAGLINE
#   usage    CMD SYNOPSIS                     ("Usage: alphatop [CMD] SYNOPSIS")
#   operands CMD OPERANDS                     (the synopsis without its [...] groups)
#   command  CMD NAME SUMMARY                 (the program's "Commands:" list)
#   option   CMD SHORT LONG META VALUE HELP   (VALUE: how to complete META: -, file, none, or
#                                              words:A|B for a META that lists its choices)
#   about    CMD PARAGRAPH                    (text before "Options:")
#   notes    CMD PARAGRAPH                    (text after the options)
#   exit     CMD PARAGRAPH                    (the "Exit status:" paragraph)
# The help's layout is the one at_args_help (tui/cmd/args.c) and the program's usage() print:
# a section title ends with ':', option rows start with "  -", continuation lines with 4
# spaces or more, paragraphs are separated by blank lines.
BEGIN { OFS = "\t"; section = "about"; para = ""; opt = "" }

function flush_para() {
    if (para == "")
        return
    print (para ~ /^Exit status:/ ? "exit" : section), cmd, para
    para = ""
}

function flush_opt() {
    if (opt != "")
        print opt, help
    opt = ""
}

# What a shell should complete for an option's value, from its name in the help (META).
function value_kind(meta) {
    if (meta == "")
        return "-"
    if (meta ~ /\|/)
        return "words:" meta
    if (meta ~ /^(FILE|LOG|CHECKPOINT|BASE|DIR)$/)
        return "file"
    return "none"
}

function trim(s) {
    sub(/^ +/, "", s)
    sub(/ +$/, "", s)
    return s
}

NR == 1 && cmd == "" && /^alphatop [^ ]+ -- / {
    print "version", cmd, $2
    line = $0
    sub(/^alphatop [^ ]+ -- /, "", line)
    print "tagline", cmd, line
    next
}

/^Usage: alphatop / {
    syn = substr($0, length("Usage: alphatop ") + 1)
    if (cmd != "")
        syn = substr(syn, length(cmd) + 2)
    print "usage", cmd, syn
    gsub(/\[[^]]*\]/, "", syn)
    print "operands", cmd, trim(syn)
    next
}

/^(Commands|Options):$/ { flush_para(); list = $1; next }

/^$/ {
    flush_para()
    flush_opt()
    if (list == "Options:")
        section = "notes"
    list = ""
    next
}

list == "Commands:" {
    name = $1
    summary = trim(substr($0, index($0, name) + length(name)))
    print "command", cmd, name, summary
    next
}

list == "Options:" && /^  -/ {
    flush_opt()
    line = substr($0, 3)
    # The label ends at two spaces (or the line, when the text starts on the next one).
    cut = index(line, "  ")
    label = cut ? substr(line, 1, cut - 1) : line
    help = cut ? trim(substr(line, cut)) : ""
    short = "-"
    if (label ~ /^-[^-], /) {
        short = substr(label, 2, 1)
        label = substr(label, 5)
    }
    sp = index(label, " ")
    long = substr(sp ? substr(label, 1, sp - 1) : label, 3)
    meta = sp ? substr(label, sp + 1) : ""
    opt = "option" OFS cmd OFS short OFS long OFS (meta == "" ? "-" : meta) OFS value_kind(meta)
    next
}

list == "Options:" && /^    / {
    help = help (help == "" ? "" : " ") trim($0)
    next
}

{ para = para (para == "" ? "" : " ") trim($0) }

END { flush_para(); flush_opt() }
