# SPDX-License-Identifier: Apache-2.0
# Writes alphatop.1 from the model of the program's command line (cmake/help-model.awk) and
# the page's template (man/alphatop.1.in): the template's lines @NAME@, @SYNOPSIS@,
# @DESCRIPTION@, @OPTIONS@, @COMMANDS@ and @EXIT_STATUS@ become the generated text, and
# @VERSION@ the program's version. Usage: awk -F '\t' -f man.awk MODEL alphatop.1.in
# Words that start with '-' are options: their hyphens are written \- (a minus sign in roff, so
# they copy and paste as typed); other hyphens stay hyphens.
function esc(s,    n, w, i, out) {
    gsub(/\\/, "\\e", s)
    n = split(s, w, " ")
    out = ""
    for (i = 1; i <= n; i++) {
        if (w[i] ~ /^[[(\{'"]*-/)
            gsub(/-/, "\\-", w[i])
        out = out (i > 1 ? " " : "") w[i]
    }
    return out ~ /^[.']/ ? "\\&" out : out
}

function label(short, long, meta,    l) {
    l = (short != "-" ? "-" short ", " : "") "--" long
    gsub(/-/, "\\-", l)
    if (meta == "-")
        return ".B \"" l "\""
    gsub(/-/, "\\-", meta)
    return ".BI \"" l " \" \"" meta "\""
}

# The options of cmd (the program itself when cmd is empty).
function options(cmd,    i) {
    for (i = 1; i <= nopt; i++)
        if (opt_cmd[i] == cmd)
            printf ".TP\n%s\n%s\n", label(opt_short[i], opt_long[i], opt_meta[i]), esc(opt_help[i])
}

function paragraphs(kind, cmd,    i) {
    for (i = 1; i <= npara; i++)
        if (para_kind[i] == kind && para_cmd[i] == cmd)
            printf ".PP\n%s\n", esc(para_text[i])
}

# "Exit status: 0 success; 1 ...; 2 ..." as one tagged paragraph per code.
function exit_status(text,    n, part, i, code) {
    sub(/^Exit status: */, "", text)
    sub(/\.$/, "", text)
    gsub(/; [0-9]+ /, "\n&", text)
    n = split(text, part, "\n")
    for (i = 1; i <= n; i++) {
        sub(/^; /, "", part[i])
        code = part[i]
        sub(/ .*/, "", code)
        printf ".TP\n.B %s\n%s.\n", code, esc(substr(part[i], length(code) + 2))
    }
}

FNR == NR {
    if ($1 == "option") {
        nopt++
        opt_cmd[nopt] = $2; opt_short[nopt] = $3; opt_long[nopt] = $4; opt_meta[nopt] = $5
        opt_help[nopt] = $7
    } else if ($1 == "about" || $1 == "notes") {
        npara++
        para_kind[npara] = $1; para_cmd[npara] = $2; para_text[npara] = $3
    } else if ($1 == "command") {
        ncmd++
        cmds[ncmd] = $3
    } else if ($1 == "usage") {
        usage[$2] = $3
    } else if ($1 == "exit" && $2 == "") {
        exit_text = $3
    } else if ($1 == "version") {
        version = $3
    } else if ($1 == "tagline") {
        tagline = $3
    }
    next
}

{ gsub(/@VERSION@/, version) }

$0 == "@NAME@" { print "alphatop \\- " esc(tagline); next }

$0 == "@SYNOPSIS@" {
    printf ".B alphatop\n%s\n", esc(usage[""])
    for (i = 1; i <= ncmd; i++)
        printf ".br\n.B alphatop %s\n%s\n", cmds[i], esc(usage[cmds[i]])
    next
}

$0 == "@DESCRIPTION@" { paragraphs("about", ""); paragraphs("notes", ""); next }

$0 == "@OPTIONS@" { options(""); next }

$0 == "@COMMANDS@" {
    for (i = 1; i <= ncmd; i++) {
        c = cmds[i]
        printf ".SS \"alphatop %s %s\"\n", c, esc(usage[c])
        paragraphs("about", c)
        options(c)
        paragraphs("notes", c)
    }
    next
}

$0 == "@EXIT_STATUS@" { exit_status(exit_text); next }

{ print }
