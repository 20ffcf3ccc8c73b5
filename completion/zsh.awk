# SPDX-License-Identifier: Apache-2.0
# Writes the zsh completion of alphatop (_alphatop) from the model of its command line
# (cmake/help-model.awk): the commands with their summaries, every command's options with the
# start of their help, what each option's value is, and the commands' file operands.
# Usage: awk -F '\t' -f zsh.awk MODEL > _alphatop
# Text for a single-quoted zsh word.
function quote(s) {
    gsub(/'/, "'\\''", s)
    return s
}

# An option's description: its help without what is in parentheses, up to the first "; ",
# for _arguments' [...].
function describe(help,    cut) {
    while (gsub(/ ?\([^()]*\)/, "", help))
        ;
    cut = index(help, "; ")
    if (cut)
        help = substr(help, 1, cut - 1)
    gsub(/\\/, "\\\\", help)
    gsub(/\[/, "\\[", help)
    gsub(/\]/, "\\]", help)
    return quote(help)
}

# One _arguments spec: --name[help] for a flag, --name=[help]:META:ACTION with a value.
function spec(name, meta, kind, help,    action) {
    if (kind == "-")
        return "'" name "[" describe(help) "]'"
    action = kind == "file" ? "_files" : kind ~ /^words:/ ? "(" substr(kind, 7) ")" : " "
    gsub(/\|/, " ", action)
    gsub(/:/, "\\:", meta)
    return "'" name (name ~ /^--/ ? "=" : "") "[" describe(help) "]:" quote(meta) ":" action "'"
}

$1 == "command" { ncmd++; cmds[ncmd] = $3; summary[$3] = $4 }
$1 == "operands" { operands[$2] = $3 }
$1 == "option" {
    specs[$2] = specs[$2] " \\\n        " spec("--" $4, $5, $6, $7)
    if ($3 != "-")
        specs[$2] = specs[$2] " \\\n        " spec("-" $3, $5, $6, $7)
    if ($2 == "watch")
        watch_opt["--" $4] = 1
    else if ($2 == "")
        main_opt[++nmain] = "--" $4 SUBSEP ($3 != "-" ? spec("-" $3, $5, $6, $7) " " : "") \
                            spec("--" $4, $5, $6, $7)
}

END {
    print "#compdef alphatop"
    print "# SPDX-License-Identifier: Apache-2.0"
    print "# zsh completion for alphatop, generated at build time from the program's own --help"
    print "# (completion/zsh.awk): the commands and options of its option tables."
    for (i = 1; i <= ncmd; i++) {
        c = cmds[i]
        print ""
        print "_alphatop_" c "() {"
        printf "    _arguments -S : \"$@\"%s", specs[c]
        if (operands[c] != "")
            printf " \\\n        '*:%s:_files'", quote(operands[c])
        print ""
        print "}"
    }
    # The program's own options that watch lacks (-V): offered when the first word is an
    # option, since `alphatop --option...` is `alphatop watch --option...` (docs/cli.md).
    extra = ""
    for (k = 1; k <= nmain; k++) {
        split(main_opt[k], m, SUBSEP)
        if (!(m[1] in watch_opt))
            extra = extra " " m[2]
    }
    print ""
    print "_alphatop() {"
    print "    local -a commands=("
    for (i = 1; i <= ncmd; i++) {
        d = summary[cmds[i]]
        print "        '" cmds[i] ":" quote(d) "'"
    }
    print "    )"
    print "    if [[ $words[2] == -* ]]; then"
    print "        _alphatop_watch" extra
    print "    elif ((CURRENT == 2)); then"
    print "        _describe -t commands 'alphatop command' commands"
    print "    else"
    print "        local cmd=$words[2]"
    print "        shift words"
    print "        ((CURRENT--))"
    print "        (($+functions[_alphatop_$cmd])) && _alphatop_$cmd"
    print "    fi"
    print "}"
    print ""
    print "_alphatop \"$@\""
}
