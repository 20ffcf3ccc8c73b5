#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages say what the programs do: every option that `alphatop --help` and
# `alphatop CMD --help` list is in alphatop.1 (the program's in OPTIONS, each command's in its
# own subsection of COMMANDS), every $ALPHATOP_ variable a help names is in ENVIRONMENT, and
# alphatop-keygen.1 shows the usage line of `alphatop-keygen --help`. Read from the pages as
# man renders them; groff must have no warning.
# Usage: test_man.sh ALPHATOP ALPHATOP.1 ALPHATOP-KEYGEN ALPHATOP-KEYGEN.1
set -euo pipefail
prog=$1 page=$2 keygen=$3 keygen_page=$4
failures=0 checks=0
fail() {
    echo "FAILED: $*" >&2
    failures=$((failures + 1))
}
export MANWIDTH=100
text=$(man -l "$page" 2>&1)
warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
[[ -z $warnings ]] || fail "groff warns about $page: $warnings"

# The lines of a part of the rendered page: from the first line matching start to the next
# line matching a section (unindented) or subsection (3 spaces) heading.
part() {
    awk -v start="$1" '$0 ~ start { on = 1; print; next }
                       on && /^([^ ]|   [^ ])/ { exit }
                       on' <<<"$text"
}

# The options a help text lists: the rows that start with "  -".
options_of() {
    grep -oE '^  (-[[:alnum:]], )?--[[:alnum:]-]+' | tr -d ',' | tr ' ' '\n' | grep .
}

has_options() { # help text on stdin; the part of the page; what it is
    local part=$1 what=$2 o
    while read -r o; do
        checks=$((checks + 1))
        grep -qE -- "(^|[^[:alnum:]-])$o([^[:alnum:]-]|$)" <<<"$part" ||
            fail "$o of $what is not in $page"
    done < <(options_of)
}

has_options "$(part '^OPTIONS$')" "alphatop" < <("$prog" --help)
commands=$("$prog" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
[[ -n $commands ]] || fail "no commands in alphatop --help"
for c in $commands; do
    section=$(part "^   alphatop $c ")
    [[ -n $section ]] || fail "no subsection 'alphatop $c' in $page"
    has_options "$section" "alphatop $c" < <("$prog" "$c" --help)
done

environment=$(part '^ENVIRONMENT$')
for var in $({ "$prog" --help && for c in $commands; do "$prog" "$c" --help; done; } |
    grep -oE '\$ALPHATOP_[A-Z_]+' | sort -u); do
    checks=$((checks + 1))
    grep -q "^       ${var#$}$" <<<"$environment" || fail "${var#$} is not in ENVIRONMENT"
done

usage=$("$keygen" --help | head -n 1)
checks=$((checks + 1))
man -l "$keygen_page" 2>&1 | grep -qF "$usage" || fail "$keygen_page does not show '$usage'"
warnings=$(groff -man -Tutf8 -ww -z "$keygen_page" 2>&1)
[[ -z $warnings ]] || fail "groff warns about $keygen_page: $warnings"

echo "$((checks - failures)) passed, $failures failed"
((failures == 0))
