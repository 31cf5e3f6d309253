"""The tmux engine: the control client, sessions and their state, the command runner, records and
the askpass broker."""
