#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# End to end: the real view (view_driver: seeded synthetic model, live snapshots) in a detached
# tmux session at a fixed size. capture-pane shows the heatmap and layer names, -e shows colour
# escapes, resize-window redraws (and a tiny window says it is too small), keys do what they say.
# Usage: tmux_view.sh VIEW_DRIVER
set -u
driver=$1
dir=$(mktemp -d)
sock=at-view-$$
. "$(dirname "$0")/tmux_lib.sh"
wait_action() {
    i=0
    while [ $i -lt 100 ]; do
        grep -q -- "$1" "$dir/actions" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    fail "the view never reported '$1'"
}

t new-session -d -s view -x 120 -y 32 -e LANG=C.UTF-8 -e LC_ALL=C.UTF-8 -e TERM=tmux-256color \
    "$driver --layers 24 --snapshots 30 --live 300 --max 100000 --actions $dir/actions 2>$dir/err; echo EXITED:\$?; sleep 60" ||
    fail "tmux did not start"
# The server outlives each session this script kills: a new-session that reaches a server still
# exiting after its last session went fails with "server exited unexpectedly".
t set-option -s exit-empty off

# the heatmap with layer names, half of it burnt/healthy/raw coloured, the colour bar
wait_for 'alphatop +run synthetic-1'
wait_for '^0\.attn\.c_attn +█+'
wait_for '^5\.mlp\.c_proj'
# the verdict row, second on the screen
t capture-pane -p -t view | sed -n 2p | grep -Eq 'GROKKING|OVER-FIT|MEMORISED|NO PHASE' || fail "no verdict on row 2"
wait_for 'burnt <█+ 2 █+ 6 █+> raw'
t capture-pane -p -e -t view | grep -q '38;5;[0-9]*m█' || fail "no 256-colour escapes around heat cells"
# live: new snapshots arrive (step grows)
s1=$(t capture-pane -p -t view | sed -n 's/.*step \([0-9]*\).*/\1/p' | head -1)
sleep 1
s2=$(t capture-pane -p -t view | sed -n 's/.*step \([0-9]*\).*/\1/p' | head -1)
[ "$s2" -gt "$s1" ] || fail "step did not advance ($s1 -> $s2)"

# Tab: next metric
t send-keys -t view Tab
wait_for '^h\.\* +alpha_weighted'
t send-keys -t view 1
wait_for '^h\.\* +alpha '
# Enter: detail of the selected layer (j j: the third); Esc back
t send-keys -t view j j Enter
wait_for '^ h\.0\.mlp\.c_fc +linear 768x3072'
wait_for 'ESD, log-log: eigenvalue density'
wait_for 'fit: alpha [0-9.]+ on [0-9]+ eigenvalues'
wait_for 'xmin 0\.5'
t send-keys -t view Escape
wait_for '^h\.\* +alpha'
# help and back, by htop's F1 too
t send-keys -t view '?'
wait_for 'filter layers by name'
t send-keys -t view '?'
wait_gone 'filter layers by name'
t send-keys -t view F1
wait_for 'filter layers by name'
t send-keys -t view Escape
wait_gone 'filter layers by name'
# F6 sorts, the title says how; again three times: model order
t send-keys -t view F6
wait_for 'by worst first'
t send-keys -t view F6 F6 F6
wait_gone 'by (worst|largest|name)'
# F3 searches and jumps: the detail of the match opens
t send-keys -t view F3 3 . m l p . c _ f c Enter Enter
wait_for '^ h\.3\.mlp\.c_fc +linear'
t send-keys -t view Escape

# resize: tiny says so, larger redraws the heatmap (two layers per row when they do not fit)
t resize-window -t view -x 40 -y 10
wait_for 'terminal too small: 40x10'
t resize-window -t view -x 90 -y 20
wait_gone 'too small'
wait_for '^0\.attn\.c_attn/c_proj +▀+'
wait_for 'layers 1-[0-9]+ of 24'
t resize-window -t view -x 120 -y 32
wait_for '^0\.attn\.c_attn +█+'

# filter
t send-keys -t view / m l p Enter
wait_for '\(filtered\)'
wait_gone '^0\.attn\.c_attn '
t send-keys -t view Escape
wait_for '^0\.attn\.c_attn '

# pause and stop (with confirmation) reach the engine
t send-keys -t view p
wait_action 'pause run=0 paused=1'
wait_for 'PAUSED'
t send-keys -t view s
wait_for 'Ask run synthetic-1 to stop training\? \[y/N\]'
t send-keys -t view n
wait_gone 'Ask run'
t send-keys -t view s
wait_for 'Ask run'
t send-keys -t view Enter
wait_gone 'Ask run'
grep -q stop "$dir/actions" && fail "stop reported although the user said no (n, then Enter)"
t send-keys -t view s
wait_for 'Ask run'
t send-keys -t view y
wait_action 'stop run=0'
wait_for 'STOP REQUESTED'

# F10 quits and restores the terminal (the shell's echo appears on a normal screen)
t send-keys -t view F10
wait_for 'EXITED:0'
wait_action 'quit'
t capture-pane -p -t view | grep -q 'alphatop +run' && fail "the view's screen was not cleared on exit"
[ -s "$dir/err" ] && fail "stderr: $(cat "$dir/err")"
# without UTF-8: one layer per row, colour on the background, no Unicode glyphs
t kill-session -t view
t new-session -d -s view -x 100 -y 30 -e LANG=C -e LC_ALL=C -e TERM=tmux-256color \
    "$driver --layers 30 --snapshots 20; echo EXITED:\$?; sleep 60" || fail "tmux did not start"
wait_for '^0\.attn\.c_attn  '
wait_for '^2\.mlp\.c_proj'
t capture-pane -p -t view | grep -q '█\|▀' && fail "Unicode glyphs in a C locale"
t capture-pane -p -e -t view | grep -q '48;5;[0-9]*m ' || fail "no background colours without UTF-8"
t send-keys -t view q
wait_for 'EXITED:0'

# without colour (NO_COLOR): the ASCII ramp, burnt '#'/'@', healthy '+=-.', raw 'oO'
t kill-session -t view
t new-session -d -s view -x 100 -y 30 -e LANG=C.UTF-8 -e NO_COLOR=1 -e TERM=tmux-256color \
    "$driver --layers 12 --snapshots 40; echo EXITED:\$?; sleep 60" || fail "tmux did not start"
wait_for '^0\.attn\.c_attn +O+o+\.+'
wait_for 'burnt <@@@@@@#### 2 \+\+\+\+====----\.\.\.\. 6 ooooOOOOOO> raw'
t capture-pane -p -e -t view | grep -q '38;5;' && fail "colours despite NO_COLOR"
t send-keys -t view q
wait_for 'EXITED:0'

# NO_COLOR with more layers than rows: still one layer a row, in the ASCII ramp (half blocks
# would look all alike without colour)
t kill-session -t view
t new-session -d -s view -x 100 -y 30 -e LANG=C.UTF-8 -e NO_COLOR=1 -e TERM=tmux-256color \
    "$driver --layers 60 --snapshots 40; echo EXITED:\$?; sleep 60" || fail "tmux did not start"
wait_for '^0\.attn\.c_attn +O+o+\.+'
t capture-pane -p -t view | grep -q '▀' && fail "half blocks without colour"
t send-keys -t view q
wait_for 'EXITED:0'

# a collapse: the verdict row says so at once, on a coloured background, even when tiny
t kill-session -t view
t new-session -d -s view -x 80 -y 24 -e LANG=C.UTF-8 -e LC_ALL=C.UTF-8 -e TERM=tmux-256color \
    "$driver --collapse --transformer --layers 150 --snapshots 90 --model LlamaForCausalLM; echo EXITED:\$?; sleep 60" ||
    fail "tmux did not start"
wait_for '^ alphatop +run synthetic-1 \(LlamaForCausalLM\)'
wait_for '^ COLLAPSE since [0-9]+ +weight norm'
t capture-pane -p -e -t view | grep 'COLLAPSE' | grep -q '48;5;160m' || fail "the collapse verdict is not on its colour"
wait_for '27 drops'
t resize-window -t view -x 40 -y 10
wait_for 'terminal too small'
wait_for '^ COLLAPSE'
t send-keys -t view q
wait_for 'EXITED:0'
echo "PASS"
