# SPDX-License-Identifier: Apache-2.0
# tmux_lib.sh -- what the view's tmux tests share. Source it after setting sock (the private
# server's socket name) and dir (a scratch directory, removed at exit with the server); the
# session under test is called "view".
t() { tmux -L "$sock" -f /dev/null "$@"; }
cleanup() { t kill-server 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- screen:"
    t capture-pane -p -t view 2>/dev/null
    exit 1
}
# wait_for PATTERN: until the screen shows PATTERN (extended regex), at most 10 s
wait_for() {
    i=0
    while [ $i -lt 100 ]; do
        t capture-pane -p -t view | grep -Eq -- "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    fail "screen never showed '$1'"
}
# wait_gone PATTERN: until the screen no longer shows PATTERN, at most 10 s
wait_gone() {
    i=0
    while [ $i -lt 100 ]; do
        t capture-pane -p -t view | grep -Eq -- "$1" || return 0
        sleep 0.1
        i=$((i + 1))
    done
    fail "screen still shows '$1'"
}
