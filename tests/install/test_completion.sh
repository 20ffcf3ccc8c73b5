#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bash completion completes what the program accepts: its commands, every option of every
# command as `alphatop CMD --help` lists them (and watch's for `alphatop --...`, with -V),
# files for file values and operands, the listed choices of --trainer, nothing for a number.
# The zsh completion (when zsh is here) parses and registers for alphatop.
# Usage: test_completion.sh ALPHATOP BASH_COMPLETION ZSH_COMPLETION
set -euo pipefail
prog=$1 bash_completion=$2 zsh_completion=$3
failures=0 checks=0
fail() {
    echo "FAILED: $*" >&2
    failures=$((failures + 1))
}
# shellcheck source=/dev/null
source "$bash_completion"

# The words bash would offer for a command line ending at the cursor, one per line. Bash
# splits words at '=' too (COMP_WORDBREAKS): "--a=b" is "--a" "=" "b", and "--a=" ends in "=".
complete_line() {
    local line=${1//=/ = }
    [[ $1 == *= ]] && line=${line% }
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _alphatop
    printf '%s\n' "${COMPREPLY[@]}" | sort
}

expect() { # command line, expected words (sorted, one per line)
    checks=$((checks + 1))
    local got
    got=$(complete_line "$1")
    [[ $got == "$2" ]] || fail "'$1': got [$(echo $got)], expected [$(echo $2)]"
}

options_of() {
    "$prog" "$@" --help | grep -oE '^  (-[[:alnum:]], )?--[[:alnum:]-]+' | tr -d ',' |
        tr ' ' '\n' | grep . | sort
}

commands=$("$prog" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
expect "alphatop " "$(sort <<<"$commands")"
expect "alphatop sc" "scan"
for c in $commands; do
    expect "alphatop $c -" "$(options_of "$c")"
done
expect "alphatop -" "$( (options_of watch && echo -V && echo --version) | sort)"
expect "alphatop demo --trainer " "$(printf 'c\ntorch\n')"
expect "alphatop demo --trainer=t" "torch"
expect "alphatop demo --trainer=" "$(printf 'c\ntorch\n')"
expect "alphatop scan --min-evals " ""
expect "alphatop watch " ""

cd "$(mktemp -d /tmp/alphatop-completion.XXXXXX)"
trap 'rm -rf "$PWD"' EXIT
touch run.atlog model.safetensors
expect "alphatop replay r" "run.atlog"
expect "alphatop scan --json m" "model.safetensors"
expect "alphatop scan --base m" "model.safetensors"
expect "alphatop --record r" "run.atlog"

if command -v zsh >/dev/null; then
    checks=$((checks + 1))
    zsh -n "$zsh_completion" || fail "zsh cannot parse $zsh_completion"
    checks=$((checks + 1))
    zsh -f -c "fpath=('$(dirname "$zsh_completion")' \$fpath); autoload -Uz compinit
               compinit -u -D; [[ \$_comps[alphatop] == _alphatop ]]" ||
        fail "$zsh_completion does not register for alphatop"
else
    echo "zsh is not installed: its completion is not checked"
fi
echo "$((checks - failures)) passed, $failures failed"
((failures == 0))
