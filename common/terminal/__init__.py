"""The pure terminal layer shared by the daemon and the CLI: rendering, markers, shell setup,
question detection, how commands and keys are typed, and watching a log grow."""
