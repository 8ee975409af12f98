"""The CLI's exit codes, the grep/diff convention, defined once."""

OK = 0  # the command did what was asked and any check it performs said yes
CHECK_FAILED = 1  # the command ran and its answer is "no" (validate found problems, ...)
ERROR = 2  # anything that stopped the command: bad input, a usage error, an internal error
INTERRUPTED = 130  # Ctrl-C

HELP_EPILOG = "exit codes: 0 = success, 1 = the check said no, 2 = error (bad input, usage, internal)"
