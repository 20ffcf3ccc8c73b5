# SPDX-License-Identifier: Apache-2.0
# Writes the bash completion of alphatop from the model of its command line
# (cmake/help-model.awk): the commands, every command's options, what each option's value is
# (a file, one of listed words, or anything) and whether the command takes file operands.
# Usage: awk -F '\t' -f bash.awk MODEL > alphatop
function add(list, word) { return list (list == "" ? "" : " ") word }

$1 == "command" { ncmd++; cmds[ncmd] = $3 }
$1 == "operands" { operands[$2] = $3 }
$1 == "option" {
    words = ($3 != "-" ? "-" $3 " " : "") "--" $4
    opts[$2] = add(opts[$2], words)
    if ($6 == "-")
        next
    # Values of the same kind share one case pattern: "CMD --opt1" | "CMD --opt2" ...
    kind = $6
    gsub(/\|/, " ", kind)
    pattern = "\"" $2 " --" $4 "\"" ($3 != "-" ? " | \"" $2 " -" $3 "\"" : "")
    if (!(kind in value_case))
        kinds[++nkinds] = kind
    value_case[kind] = value_case[kind] (value_case[kind] == "" ? "" : " | \\\n    ") pattern
}

END {
    print "# SPDX-License-Identifier: Apache-2.0"
    print "# bash completion for alphatop, generated at build time from the program's own --help"
    print "# (completion/bash.awk): the commands and options of its option tables."
    print "_alphatop_files() { # CUR"
    print "    compopt -o filenames 2>/dev/null"
    print "    mapfile -t COMPREPLY < <(compgen -f -- \"$1\")"
    print "}"
    print ""
    print "_alphatop_words() { # WORDS CUR"
    print "    mapfile -t COMPREPLY < <(compgen -W \"$1\" -- \"$2\")"
    print "}"
    print ""
    print "_alphatop() {"
    print "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} cmd=watch opts"
    print "    COMPREPLY=()"
    print "    # --name=VALUE: bash splits it at '=' (COMP_WORDBREAKS)."
    print "    if [[ $cur == = ]]; then"
    print "        cur="
    print "    elif [[ $prev == = ]] && ((COMP_CWORD > 2)); then"
    print "        prev=${COMP_WORDS[COMP_CWORD - 2]}"
    print "    fi"
    list = ""
    for (i = 1; i <= ncmd; i++)
        list = add(list, cmds[i])
    print "    if ((COMP_CWORD == 1)) && [[ $cur != -* ]]; then"
    print "        _alphatop_words '" list "' \"$cur\""
    print "        return"
    print "    fi"
    print "    # A first word that is an option: the options are watch's (docs/cli.md)."
    print "    [[ ${COMP_WORDS[1]} == -* ]] || cmd=${COMP_WORDS[1]}"
    print "    case \"$cmd $prev\" in"
    for (k = 1; k <= nkinds; k++) {
        kind = kinds[k]
        if (kind == "file")
            action = "_alphatop_files \"$cur\""
        else if (kind ~ /^words:/)
            action = "_alphatop_words '" substr(kind, 7) "' \"$cur\""
        else
            action = ":"
        print "    " value_case[kind] ")"
        print "        " action
        print "        return ;;"
    }
    print "    esac"
    print "    case $cmd in"
    for (i = 1; i <= ncmd; i++) {
        c = cmds[i]
        # The program's own options (-V) join watch's when the first word is an option.
        extra = ""
        if (c == "watch") {
            n = split(opts[""], w, " ")
            for (j = 1; j <= n; j++)
                if (index(" " opts[c] " ", " " w[j] " ") == 0)
                    extra = add(extra, w[j])
        }
        print "    " c ")"
        print "        opts='" opts[c] "'"
        if (extra != "")
            print "        [[ ${COMP_WORDS[1]} == -* ]] && opts+=' " extra "'"
        print "        ;;"
    }
    print "    *) return ;;"
    print "    esac"
    print "    if [[ $cur == -* ]]; then"
    print "        _alphatop_words \"$opts\" \"$cur\""
    print "        return"
    print "    fi"
    print "    case $cmd in"
    files = ""
    for (i = 1; i <= ncmd; i++)
        if (operands[cmds[i]] != "")
            files = files (files == "" ? "" : " | ") cmds[i]
    if (files != "")
        print "    " files ") _alphatop_files \"$cur\" ;;"
    print "    esac"
    print "}"
    print "complete -F _alphatop alphatop"
}
