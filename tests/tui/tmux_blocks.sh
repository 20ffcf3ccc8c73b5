#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# End to end: the block view (b) of the real view (view_driver: a seeded synthetic run, live
# snapshots) in a detached tmux session. A 16-block Llama-style run at 200 x 50: b shows a row
# per block with its attention and MLP matrices side by side under the verdict row, coloured
# sparklines, the arrows select a matrix, Enter opens it; 120 x 40 keeps the history, 80 x 24
# shows values only, 40 x 10 is too small and comes back; b again is the heatmap. Then the
# modular-arithmetic transformer with NO_COLOR (the ASCII ramp) and in a C locale (colours on
# the background, no Unicode).
# Usage: tmux_blocks.sh VIEW_DRIVER
set -u
driver=$1
dir=$(mktemp -d)
sock=at-blocks-$$
. "$(dirname "$0")/tmux_lib.sh"
# row N of the screen (1-based)
row() { t capture-pane -p -t view | sed -n "$1p"; }
verdict='^ (GROKKING|OVER-FIT|MEMORISED|PRE-GROKKING|COLLAPSE|NO PHASE)'

t new-session -d -s view -x 200 -y 50 -e LANG=C.UTF-8 -e LC_ALL=C.UTF-8 -e TERM=tmux-256color \
    "$driver --transformer --layers 114 --model LlamaForCausalLM --snapshots 30 --live 300 --max 100000 2>$dir/err; echo EXITED:\$?; sleep 60" ||
    fail "tmux did not start"
t set-option -s exit-empty off

# the heatmap first; its key bar offers the block view
wait_for '^model\.layers\.\*\.weight +alpha '
wait_for ' b blocks '
t send-keys -t view b
wait_for '^block q_proj +k_proj +v_proj +o_proj +│ gate_proj +up_proj +down_proj'
wait_for '^model\.embed_tokens +[▁▂▃▄▅▆▇█░ ]+ +[0-9]\.[0-9]{2}'
wait_for '^ +0 [▁▂▃▄▅▆▇█░ ]+ +[0-9]\.[0-9]{2}. [▁▂▃▄▅▆▇█░ ]+ +[0-9]\.[0-9]{2}'
wait_for '^ +15 [▁▂▃▄▅▆▇█░ ]+ '
wait_for '^lm_head +[▁▂▃▄▅▆▇█░ ]+ +[0-9]\.[0-9]{2}'
wait_for 'model\.layers\.\*\.weight  alpha by block  16 blocks'
wait_for ' b heatmap '
row 2 | grep -Eq "$verdict" || fail "no verdict on row 2 of the block view"
t capture-pane -p -e -t view | grep -Eq '38;5;[0-9]+m[▁▂▃▄▅▆▇█]' ||
    fail "no 256-colour escapes around the sparklines"
# live: the step goes on growing in the block view
s1=$(row 1 | sed -n 's/.*step \([0-9]*\).*/\1/p')
sleep 1
s2=$(row 1 | sed -n 's/.*step \([0-9]*\).*/\1/p')
[ "$s2" -gt "$s1" ] || fail "step did not advance in the block view ($s1 -> $s2)"
# the arrows select a matrix (the title row names it), Enter opens it, Esc comes back
t send-keys -t view Down Right Right
wait_for '^model\.layers\.\*\.weight  alpha by block .* 0\.self_attn\.v_proj'
t send-keys -t view Down Enter
wait_for '^ model\.layers\.1\.self_attn\.v_proj\.weight +linear 1024x1024'
t send-keys -t view Escape
wait_for '^block q_proj'

# smaller: 120 x 40 keeps the history, 80 x 24 the values, 40 x 10 is too small
t resize-window -t view -x 120 -y 40
wait_for '^ +0 [▁▂▃▄▅▆▇█░ ]{8} +[0-9]\.[0-9]{2}'
wait_for '^block q_proj +k_proj'
t resize-window -t view -x 80 -y 24
wait_for '^block Q +K +V +O +│ gate +up +down'
wait_for '^ +0 [█░] +[0-9]\.[0-9]{2}. [█░] +[0-9]\.[0-9]{2}'
wait_for 'rows [0-9]+-[0-9]+ of 18'
row 2 | grep -Eq "$verdict" || fail "no verdict on row 2 at 80x24"
t resize-window -t view -x 40 -y 10
wait_for 'terminal too small: 40x10'
row 1 | grep -Eq "$verdict" || fail "no verdict on row 1 of a too-small terminal"
t resize-window -t view -x 200 -y 50
wait_for '^block q_proj'
# b again: the heatmap
t send-keys -t view b
wait_gone '^block q_proj'
wait_for '^model\.layers\.\*\.weight +alpha '
wait_for ' b blocks '
t send-keys -t view F10
wait_for 'EXITED:0'
[ -s "$dir/err" ] && fail "stderr: $(cat "$dir/err")"

# the modular transformer without colour: one block ("-"), the ASCII ramp, no colour escapes
t kill-session -t view
t new-session -d -s view -x 80 -y 24 -e LANG=C.UTF-8 -e NO_COLOR=1 -e TERM=tmux-256color \
    "$driver --modular --snapshots 40; echo EXITED:\$?; sleep 60" || fail "tmux did not start"
wait_for '^\*\.weight +alpha '
t send-keys -t view b
wait_for '^block W_Q +W_K +W_V +W_O +│ W_in +W_out'
wait_for '^ +- [-+=.#@oOx]{4} +[0-9]\.[0-9]{2}. [-+=.#@oOx]{4} +[0-9]\.[0-9]{2}'
wait_for '^embed +[-+=.#@oOx]{4} +[0-9]\.[0-9]{2}'
wait_for '^unembed [-+=.#@oOx]{4} +[0-9]\.[0-9]{2}'
wait_for 'burnt <@@@@@@#### 2 \+\+\+\+====----\.\.\.\. 6 ooooOOOOOO> raw'
t capture-pane -p -e -t view | grep -q '38;5;' && fail "colours despite NO_COLOR"
t send-keys -t view q
wait_for 'EXITED:0'

# the modular transformer in a C locale: colours on the background, no Unicode
t kill-session -t view
t new-session -d -s view -x 120 -y 40 -e LANG=C -e LC_ALL=C -e TERM=tmux-256color \
    "$driver --modular --snapshots 40; echo EXITED:\$?; sleep 60" || fail "tmux did not start"
wait_for '^\*\.weight +alpha '
t send-keys -t view b
wait_for '^block W_Q +W_K +W_V +W_O +\| W_in +W_out'
wait_for '^ +- +[0-9]\.[0-9]{2}. +[0-9]\.[0-9]{2}'
t capture-pane -p -t view | grep -q '[▁▂▃▄▅▆▇█│]' && fail "Unicode glyphs in a C locale"
t capture-pane -p -e -t view | grep -q '48;5;[0-9]*m ' || fail "no background colours without UTF-8"
t send-keys -t view q
wait_for 'EXITED:0'
echo "PASS"
