#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Writes the model of the alphatop program's command line (cmake/help-model.awk) from its own
# --help texts, for the man page and the shell completions: so they say what the program's
# option tables say. Usage: help-model.sh PROGRAM OUTPUT
set -eu
prog=$1
out=$2
awk=${AWK:-awk}
model=$(dirname "$0")/help-model.awk
tmp=$out.tmp
"$prog" --help | $awk -v cmd= -f "$model" >"$tmp"
for c in $($awk -F '\t' '$1 == "command" { print $3 }' "$tmp"); do
    "$prog" "$c" --help | $awk -v cmd="$c" -f "$model" >>"$tmp"
done
if ! grep -q '^command' "$tmp" || ! grep -q '^option' "$tmp"; then
    echo "help-model.sh: no commands or options in the help of $prog" >&2
    exit 1
fi
mv "$tmp" "$out"
